"""Targets: TOML files that say where and how a variant is compiled and run.

A target file holds the TVM target dict, the thread count and pinned cores, and for boards the
cross compiler and RPC settings. Files are validated on load; every error names the file and
the key, because a silently ignored typo in a target file means benchmarking the wrong thing.
"""

from __future__ import annotations

import functools
import os
import platform
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The shipped target files (package data); a user's own are found by path or in ./targets.
TARGETS_DIR = Path(__file__).resolve().parent / "target_files"
USER_TARGETS_DIR = Path("targets")
_ARCHES = {"x86_64", "aarch64", "armv7"}
_KEYS = {"name", "description", "arch", "threads", "cores", "tvm", "cross_compiler",
         "rpc", "emulated", "requires", "conv_layout"}
_LAYOUTS = ("NCHW", "NHWC")
# The LLVM features a kernel family asks about, per arch (Target.has answers for these only).
_FEATURES = {
    "x86_64": ("avx2", "fma", "avx512f", "avx512bw", "avx512vnni", "avx512fp16", "avx512bf16",
               "amx-int8", "amx-bf16", "amx-tile"),
    "aarch64": ("neon", "dotprod", "fullfp16", "i8mm", "bf16"),
    "armv7": ("neon",),
}
_RPC_KEYS = {"host", "port", "tracker", "key", "session_timeout", "connect_timeout"}


class TargetError(ValueError):
    """A target file is missing or invalid; the message names the file and key."""


@dataclass(frozen=True)
class RPCConfig:
    """How to reach a board: directly (host:port) or through a tracker (tracker + key)."""

    host: str | None = None
    port: int | None = None
    tracker: str | None = None
    key: str | None = None
    session_timeout: int = 600
    connect_timeout: int = 10

    @property
    def address(self) -> str:
        if self.tracker:
            return f"tracker {self.tracker} key {self.key}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Target:
    """One validated target file."""

    name: str
    path: Path
    tvm: dict[str, Any]
    arch: str = "x86_64"
    description: str = ""
    threads: int = 1
    cores: tuple[int, ...] = (0,)
    cross_compiler_name: str | None = None  # as the file says, e.g. "aarch64-linux-gnu-g++"
    rpc: RPCConfig | None = None
    emulated: bool = False
    requires: tuple[str, ...] = field(default=())
    conv_layout: str = "NCHW"

    @property
    def is_local(self) -> bool:
        return self.rpc is None

    @property
    def cross_compiler(self) -> str | None:
        """The command that links code for this target: the file's compiler if installed,
        else zig c++ from the `ziglang` wheel (compile/toolchain.py); ToolchainError naming
        what to install if neither."""
        if self.cross_compiler_name is None:
            return None
        from edgebench.compile.toolchain import resolve

        return resolve(self.cross_compiler_name)

    # --- What the compiled code may use. One place for every kernel family's question
    # "does this target have X?", answered from the resolved TVM target (so `mattr = ["-amx-int8"]`
    # in a file turns AMX off), never from the host's /proc/cpuinfo.

    def has(self, feature: str) -> bool:
        """The TVM target has this LLVM feature (e.g. "avx512f", "avx512vnni", "amx-int8",
        "avx512fp16", "neon", "dotprod", "fullfp16"); False for non-LLVM targets."""
        return feature in self._features

    @functools.cached_property
    def _features(self) -> frozenset[str]:
        import tvm

        tvm_target = self.tvm_target()
        if str(tvm_target.kind.name) != "llvm":
            return frozenset()
        names = _FEATURES.get(self.arch, ())
        return frozenset(f for f in names
                         if tvm.target.codegen.target_has_features(f, tvm_target))

    @property
    def vnni(self) -> bool:
        """x86 AVX512-VNNI: our vpdpbusd int8 kernels."""
        return self.arch == "x86_64" and self.has("avx512vnni")

    @property
    def amx(self) -> bool:
        """x86 AMX-INT8 (Sapphire Rapids and later): our tdpbusd tile kernel."""
        return self.arch == "x86_64" and self.has("amx-int8")

    @property
    def dotprod(self) -> bool:
        """aarch64 Armv8.2 dot product: our sdot int8 kernels."""
        return self.arch == "aarch64" and self.has("dotprod")

    @property
    def avx512(self) -> bool:
        """x86 AVX-512 (F): 16-lane FP32 vectors."""
        return self.arch == "x86_64" and self.has("avx512f")

    @property
    def fp16_feature(self) -> str:
        """The LLVM feature that gives FP16 arithmetic on this arch."""
        return "avx512fp16" if self.arch == "x86_64" else "fullfp16"

    @property
    def fp16_arith(self) -> bool:
        """The target computes in float16 (x86 avx512fp16, aarch64 +fullfp16); elsewhere FP16
        is storage only."""
        return self.arch in ("x86_64", "aarch64") and self.has(self.fp16_feature)

    def tvm_target(self):
        """tvm.target.Target (tvm imported lazily so `edgebench targets` stays cheap)."""
        import tvm

        return tvm.target.Target(self.tvm_dict())

    def tvm_dict(self) -> dict[str, Any]:
        """The TVM target dict with `mcpu = "native"` resolved and num-cores set to threads."""
        d = dict(self.tvm)
        if d.get("mcpu") == "native":
            import tvm

            d["mcpu"] = str(tvm.target.codegen.llvm_get_system_cpu())
        d.setdefault("num-cores", self.threads)
        return d

    def check_runnable_here(self) -> None:
        """Refuse a local target this machine cannot run (wrong ISA or missing CPU features)."""
        if not self.is_local:
            return
        host = platform.machine()
        if host != self.arch:
            raise TargetError(f"{self.path}: target '{self.name}' is {self.arch} but this machine "
                              f"is {host}; add an [rpc] section to run it on a board")
        flags = cpu_flags()
        missing = [f for f in self.requires if f not in flags]
        if missing:
            raise TargetError(f"{self.path}: target '{self.name}' requires CPU features "
                              f"{', '.join(missing)} that this machine lacks")
        bad = [c for c in self.cores if c not in os.sched_getaffinity(0)]
        if bad:
            raise TargetError(f"{self.path}: key 'cores': cores {bad} are not available here "
                              f"(available: {sorted(os.sched_getaffinity(0))})")


def cpu_flags() -> set[str]:
    """CPU feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _expect(path: Path, key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TargetError(f"{path}: key '{key}' must be {want}, got {value!r}")
    return value


def _rpc(path: Path, raw: Any) -> RPCConfig:
    _expect(path, "rpc", raw, dict)
    unknown = set(raw) - _RPC_KEYS
    if unknown:
        raise TargetError(f"{path}: unknown key(s) in [rpc]: {', '.join(sorted(unknown))}")
    if "tracker" in raw:
        tracker = _expect(path, "rpc.tracker", raw["tracker"], str)
        if ":" not in tracker:
            raise TargetError(f"{path}: key 'rpc.tracker' must be host:port, got {tracker!r}")
        if "key" not in raw:
            raise TargetError(f"{path}: key 'rpc.key' is required with rpc.tracker")
    elif "host" not in raw or "port" not in raw:
        raise TargetError(f"{path}: [rpc] needs host and port, or tracker and key")
    cfg = RPCConfig(**raw)
    if cfg.port is not None:
        _expect(path, "rpc.port", cfg.port, int)
    return cfg


def load_target(path: str | Path) -> Target:
    """Read and validate one target TOML file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise TargetError(f"{path}: target file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise TargetError(f"{path}: not valid TOML: {e}") from e
    unknown = set(raw) - _KEYS
    if unknown:
        raise TargetError(f"{path}: unknown key(s): {', '.join(sorted(unknown))} "
                          f"(allowed: {', '.join(sorted(_KEYS))})")
    if "tvm" not in raw:
        raise TargetError(f"{path}: key 'tvm' is missing (a table such as kind = \"llvm\")")
    tvm_dict = _expect(path, "tvm", raw["tvm"], dict)
    if "kind" not in tvm_dict:
        raise TargetError(f"{path}: key 'tvm.kind' is missing")
    arch = _expect(path, "arch", raw.get("arch", "x86_64"), str)
    if arch not in _ARCHES:
        raise TargetError(f"{path}: key 'arch' must be one of {sorted(_ARCHES)}, got {arch!r}")
    threads = _expect(path, "threads", raw.get("threads", 1), int)
    if threads < 1:
        raise TargetError(f"{path}: key 'threads' must be >= 1, got {threads}")
    cores = tuple(_expect(path, "cores", raw.get("cores", list(range(threads))), list))
    if len(cores) != threads or not all(isinstance(c, int) and c >= 0 for c in cores):
        raise TargetError(f"{path}: key 'cores' must list {threads} core ids (one per thread), "
                          f"got {list(cores)}")
    layout = _expect(path, "conv_layout", raw.get("conv_layout", "NCHW"), str)
    if layout not in _LAYOUTS:
        raise TargetError(f"{path}: key 'conv_layout' must be one of {_LAYOUTS}, got {layout!r}")
    target = Target(
        name=_expect(path, "name", raw.get("name", path.stem), str),
        path=path,
        tvm=tvm_dict,
        arch=arch,
        description=_expect(path, "description", raw.get("description", ""), str),
        threads=threads,
        cores=cores,
        cross_compiler_name=_expect(path, "cross_compiler", raw["cross_compiler"], str)
        if "cross_compiler" in raw else None,
        rpc=_rpc(path, raw["rpc"]) if "rpc" in raw else None,
        emulated=_expect(path, "emulated", raw.get("emulated", False), bool),
        requires=tuple(_expect(path, "requires", raw.get("requires", []), list)),
        conv_layout=layout,
    )
    try:
        import tvm

        tvm.target.Target(target.tvm_dict())
    except Exception as e:  # TVM raises a variety of errors for a bad target dict
        raise TargetError(f"{path}: key 'tvm' is not a valid TVM target: "
                          f"{str(e).strip().splitlines()[-1]}") from e
    return target


def _target_files() -> dict[str, Path]:
    """Target name -> file: the shipped ones, overridden by ./targets/<name>.toml."""
    files = {p.stem: p for p in sorted(TARGETS_DIR.glob("*.toml"))}
    if USER_TARGETS_DIR.is_dir():
        files.update({p.stem: p for p in sorted(USER_TARGETS_DIR.glob("*.toml"))})
    return files


def target_path(ref: str | Path) -> Path:
    """The file of a target given by path (`*.toml`) or by name, without loading it (cheap:
    the CLI checks names before importing TVM)."""
    path = Path(ref)
    if path.suffix == ".toml":
        if not path.exists():
            raise TargetError(f"{path}: target file not found")
        return path
    files = _target_files()
    if str(ref) not in files:
        raise TargetError(f"unknown target '{ref}'; known targets: {', '.join(sorted(files))} "
                          "(or give a path to a .toml file)")
    return files[str(ref)]


def find_target(ref: str | Path, threads: int | None = None) -> Target:
    """A target by file path or by name (shipped, or ./targets/<name>.toml); threads
    overrides."""
    target = load_target(target_path(ref))
    if threads is not None and threads != target.threads:
        from dataclasses import replace

        target = replace(target, threads=threads, cores=tuple(range(threads)))
    return target


def list_targets() -> list[Target]:
    return [load_target(p) for p in _target_files().values()]
