"""Target files: the shipped ones load, and each kind of bad file names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgebench.targets import TargetError, find_target, list_targets, load_target


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.toml"
    path.write_text(text)
    return path


def test_shipped_targets_load():
    names = {t.name for t in list_targets()}
    assert {"x86-native", "x86-avx512", "rpi4", "rpi5"} <= names
    native = find_target("x86-native")
    assert native.is_local and native.threads == 1 and native.cores == (0,)
    assert native.tvm_dict()["mcpu"] != "native"  # resolved to the host CPU
    rpi5 = find_target("rpi5")
    assert rpi5.arch == "aarch64" and rpi5.cross_compiler and rpi5.rpc is not None
    assert "+dotprod" in rpi5.tvm["mattr"]


def test_threads_override_pins_that_many_cores():
    t = find_target("x86-native", threads=2)
    assert t.threads == 2 and len(t.cores) == 2
    assert t.tvm_dict()["num-cores"] == 2


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('name = "x"\n', "key 'tvm' is missing"),
        ('tvm = {kind = "llvm"}\nthreds = 2\n', "unknown key(s): threds"),
        ('tvm = {kind = "llvm"}\nthreads = 0\n', "key 'threads' must be >= 1"),
        ('tvm = {kind = "llvm"}\nthreads = "two"\n', "key 'threads' must be int"),
        ('tvm = {kind = "llvm"}\nthreads = 2\ncores = [0]\n', "key 'cores' must list 2"),
        ('tvm = {kind = "llvm"}\narch = "mips"\n', "key 'arch' must be one of"),
        ('tvm = {mcpu = "znver4"}\n', "key 'tvm.kind' is missing"),
        ('tvm = {kind = "no-such-kind"}\n', "key 'tvm' is not a valid TVM target"),
        ('tvm = {kind = "llvm"}\n[rpc]\nhost = "127.0.0.1"\n', "[rpc] needs host and port"),
        ('tvm = {kind = "llvm"}\n[rpc]\ntracker = "127.0.0.1:9190"\n', "'rpc.key' is required"),
        ('tvm = {kind = "llvm"\n', "not valid TOML"),
        ('conv_layout = "NCWH"\ntvm = {kind = "llvm"}\n', "key 'conv_layout' must be one of"),
        ('[tvm]\nkind = "llvm"\nconv_layout = "NHWC"\n', "Unknown config option 'conv_layout'"),
    ],
)
def test_bad_target_file_names_file_and_key(tmp_path, text, needle):
    path = _write(tmp_path, text)
    with pytest.raises(TargetError) as err:
        load_target(path)
    assert str(path) in str(err.value)
    assert needle in str(err.value)


def test_missing_and_unknown_targets(tmp_path):
    with pytest.raises(TargetError, match="target file not found"):
        load_target(tmp_path / "nope.toml")
    with pytest.raises(TargetError, match=r"unknown target 'pi9'; known targets: .*x86-native"):
        find_target("pi9")


def test_target_this_machine_cannot_run(tmp_path):
    arm = _write(tmp_path, 'arch = "aarch64"\n[tvm]\nkind = "llvm"\n'
                 'mtriple = "aarch64-linux-gnu"\n')
    with pytest.raises(TargetError, match="is aarch64 but this machine is x86_64"):
        load_target(arm).check_runnable_here()
    sve = tmp_path / "sve.toml"
    sve.write_text('requires = ["sve2_imaginary_feature"]\n[tvm]\nkind = "llvm"\n')
    with pytest.raises(TargetError, match="requires CPU features sve2_imaginary_feature"):
        load_target(sve).check_runnable_here()
