"""The board cross compiler: the apt one when installed, else zig from the ziglang wheel."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from edgebench.compile import toolchain
from edgebench.targets import find_target
from tests.helpers import need_board

GNU = "aarch64-linux-gnu-g++"


def _hide_apt_compiler(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """PATH without the apt cross compilers (a directory of links to everything else)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            if name.startswith(("aarch64-linux-gnu-", "arm-linux-gnueabihf-")):
                continue
            link = bin_dir / name
            if not link.exists():
                link.symlink_to(os.path.join(d, name))
    monkeypatch.setenv("PATH", str(bin_dir))


def test_installed_compiler_is_used_as_named(monkeypatch, tmp_path) -> None:
    fake = tmp_path / GNU
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert toolchain.resolve(GNU) == GNU


def test_without_apt_compiler_zig_wrapper_serves(monkeypatch, tmp_path) -> None:
    pytest.importorskip("ziglang")
    _hide_apt_compiler(monkeypatch, tmp_path)
    assert shutil.which(GNU) is None
    cc = find_target("arm").cross_compiler
    assert cc is not None and cc.endswith("zig-aarch64-linux-gnu-cc") and os.access(cc, os.X_OK)
    assert "-target aarch64-linux-gnu" in open(cc).read()


def test_without_any_compiler_the_error_names_what_to_install(monkeypatch, tmp_path) -> None:
    _hide_apt_compiler(monkeypatch, tmp_path)
    monkeypatch.setattr(toolchain, "zig_available", lambda: False)
    with pytest.raises(toolchain.ToolchainError) as e:
        _ = find_target("arm").cross_compiler
    msg = str(e.value)
    assert "apt-get install g++-aarch64-linux-gnu" in msg and "pip install ziglang" in msg
    assert toolchain.available(GNU) == msg
    assert find_target("x86-native").cross_compiler is None  # local targets need none


@pytest.mark.arm
def test_zig_built_library_runs_on_the_board(monkeypatch, tmp_path) -> None:
    """A TVM kernel linked by zig (apt compiler hidden) loads and computes on the emulated
    aarch64 board (Debian bookworm's glibc): the pip toolchain is a real substitute."""
    pytest.importorskip("ziglang")
    import tvm
    from tvm import te
    from tvm.support import cc

    from edgebench.execute.rpc import connect_board

    _hide_apt_compiler(monkeypatch, tmp_path)
    target = need_board(find_target("arm"))
    a = te.placeholder((16,), name="a")
    b = te.compute((16,), lambda i: a[i] * 2.0 + 1.0, name="b")
    func = te.create_prim_func([a, b]).with_attr("global_symbol", "axpb")
    lib = tvm.compile(tvm.IRModule({"axpb": func}), target=target.tvm_target())
    path = tmp_path / "axpb.so"
    lib.export_library(str(path), fcompile=cc.cross_compiler(target.cross_compiler))
    head = subprocess.run(["file", str(path)], capture_output=True, text=True).stdout \
        if shutil.which("file") else "aarch64"
    assert "aarch64" in head
    board = connect_board(target)
    sess = board.session
    sess.upload(str(path), "axpb.so")
    fn = sess.load_module("axpb.so")["axpb"]
    dev = sess.cpu()
    x = np.arange(16, dtype="float32")
    out = tvm.runtime.tensor(np.zeros(16, dtype="float32"), dev)
    fn(tvm.runtime.tensor(x, dev), out)
    np.testing.assert_array_equal(out.numpy(), x * 2 + 1)
