#!/usr/bin/env bash
# The ARM tests with the apt cross compiler hidden (a private mount namespace binds /dev/null over
# every aarch64-linux-gnu-* / arm-linux-gnueabihf-* binary): they must link with zig from the
# ziglang wheel and run on the emulated board (127.0.0.1:9091), not skip. Usage, as root, from a
# clone with its venv (fresh-check.sh makes both): bash arm-subset-check.sh CLONE VENV
set -u
CLONE=${1:?clone}; VENV=${2:?venv}
unshare -m --propagation private bash -c "
for f in /usr/bin/aarch64-linux-gnu-* /usr/bin/arm-linux-gnueabihf-*; do [ -e \"\$f\" ] && mount --bind /dev/null \"\$f\"; done
export PATH=$VENV/bin:\$PATH EDGEBENCH_BOARD_DIR=\${EDGEBENCH_BOARD_DIR:-/root/.cache/edgebench/board}
cd $CLONE
python -c 'import shutil; print(\"shutil.which(aarch64-linux-gnu-g++):\", shutil.which(\"aarch64-linux-gnu-g++\"))'
echo '\$ python -m pytest -p no:cacheprovider -q -rs ${TESTS:-tests/test_toolchain.py tests/test_rpc.py::test_cross_compiled_cnn_runs_on_board_and_matches_pytorch tests/test_rpc.py::test_sparse_kernels_cross_compiled_run_on_the_board}'
/usr/bin/time -f '[exit %x, wall %e s, cpu %U+%S s]' python -m pytest -p no:cacheprovider -q -rs ${TESTS:-tests/test_toolchain.py tests/test_rpc.py::test_cross_compiled_cnn_runs_on_board_and_matches_pytorch tests/test_rpc.py::test_sparse_kernels_cross_compiled_run_on_the_board} 2>&1 | tail -n 15
"
