"""Remote execution on a board through TVM's own RPC server (directly or through its tracker).

The artifact is cross-compiled on the host; here it is uploaded, loaded into the Relax VM on
the board, run on every evaluation input (outputs come back for verification on the host) and
timed with TVM's remote time evaluator, so the figures are the board's own clock, not the
network's. The result has the same shape as the local worker's, so verification, scoring and
the CSV are shared. Only the TVM runtime runs on a board: the peers need Python packages a
board does not have, so the pipeline skips them for RPC targets.
"""

from __future__ import annotations

import gc
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebench.execute.local import WorkerResult
from edgebench.measure import MeasureConfig, latency_stats
from edgebench.targets import RPCConfig, Target

_ELF_MACHINE = {"x86_64": 62, "aarch64": 183, "armv7": 40}  # e_machine of each arch's ELF


class BoardError(RuntimeError):
    """The board cannot be reached, has no free slot, or dropped the session."""


@dataclass
class Board:
    """An open RPC session and which board it is (the row's `board` column)."""

    session: object
    name: str
    emulated: bool = False


def _probe(host: str, port: int, timeout: float, what: str) -> None:
    """Fail in `timeout` seconds with one line naming the address (TVM's own connect retries
    for minutes on an unreachable host)."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise BoardError(f"{what} {host}:{port} unreachable ({why} within {timeout:g} s); "
                         f"is the board up? (`edgebench board up` for the emulated one)") from None


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


def probe_board(target: Target) -> None:
    """Is the target's board (or its tracker) accepting connections? BoardError if not."""
    rpc = target.rpc
    if rpc is None:
        return
    if rpc.tracker:
        _probe(*_split(rpc.tracker), rpc.connect_timeout, "RPC tracker")
    else:
        _probe(rpc.host or "", rpc.port or 0, rpc.connect_timeout, "board")


def request_board(rpc: RPCConfig, wait_s: float | None = None) -> tuple[object, str]:
    """A session from the tracker for `rpc.key`, waiting at most `wait_s` for a free board.

    TrackerSession.request blocks forever when every board of the key is busy and hides which
    board it picked; this sends the same REQUEST over TVM's tracker protocol with a socket
    timeout and keeps the board's address for the row.
    """
    from tvm import rpc as tvm_rpc
    from tvm.rpc import base

    host, port = _split(rpc.tracker or "")
    _probe(host, port, rpc.connect_timeout, "RPC tracker")
    wait = rpc.session_timeout if wait_s is None else wait_s
    tracker = tvm_rpc.connect_tracker(host, port)
    try:
        tracker._sock.settimeout(wait)
        base.sendjson(tracker._sock, [base.TrackerCode.REQUEST, rpc.key, "", 1])
        try:
            value = base.recvjson(tracker._sock)
        except TimeoutError:
            raise BoardError(f"no free board of key '{rpc.key}' at tracker {rpc.tracker} within "
                             f"{wait:g} s") from None
        if value[0] != base.TrackerCode.SUCCESS:
            raise BoardError(f"tracker {rpc.tracker} refused key '{rpc.key}': {value}")
        url, bport, matchkey = value[1]
    finally:
        tracker.close()
    try:
        session = tvm_rpc.connect(url, bport, matchkey, session_timeout=rpc.session_timeout)
    except Exception as e:
        raise BoardError(f"board {url}:{bport} (key '{rpc.key}') dropped before the session "
                         f"started: {_last_line(e)}") from None
    return session, f"{rpc.key}@{url}:{bport}"


def connect_board(target: Target, wait_s: float | None = None) -> Board:
    """Open a session on the target's board: direct host:port, or any free board of the key."""
    from tvm import rpc as tvm_rpc

    rpc = target.rpc
    if rpc is None:
        raise BoardError(f"target '{target.name}' has no [rpc] section")
    if rpc.tracker:
        session, name = request_board(rpc, wait_s)
    else:
        _probe(rpc.host or "", rpc.port or 0, rpc.connect_timeout, "board")
        try:
            session = tvm_rpc.connect(rpc.host, rpc.port, rpc.key or "",
                                      session_timeout=rpc.session_timeout)
        except Exception as e:
            raise BoardError(f"board {rpc.address} refused the session: {_last_line(e)}") from None
        name = f"{target.name}@{rpc.address}"
    return Board(session, name, target.emulated)


# A bare rpc_server offers no way to read the board's /proc (its download stats file sizes,
# and /proc files report 0), so a tiny library built with the target's cross compiler asks the
# serving process itself. Exported as TVM FFI functions: load_module finds `__tvm_ffi_<name>`.
_PROBE_C = r"""
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <tvm/ffi/c_api.h>
#ifdef __cplusplus
extern "C" {
#endif
static int64_t status_kb(const char* field) {
  char line[256];
  long long kb = -1;
  size_t n = strlen(field);
  FILE* f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, field, n) == 0 && line[n] == ':') {
      sscanf(line + n + 1, "%lld", &kb);
      break;
    }
  fclose(f);
  return kb;
}
static int ret_kb(TVMFFIAny* ret, const char* field) {
  memset(ret, 0, sizeof *ret);
  ret->type_index = kTVMFFIInt;
  ret->v_int64 = status_kb(field);
  return 0;
}
int __tvm_ffi_vm_hwm_kb(void* h, const TVMFFIAny* a, int32_t n, TVMFFIAny* r) {
  return ret_kb(r, "VmHWM");
}
int __tvm_ffi_vm_rss_kb(void* h, const TVMFFIAny* a, int32_t n, TVMFFIAny* r) {
  return ret_kb(r, "VmRSS");
}
/* qemu-user passes the host's /proc/cpuinfo through: x86 fields on an Arm board = emulated. */
int __tvm_ffi_emulated(void* h, const TVMFFIAny* a, int32_t n, TVMFFIAny* r) {
  char line[512];
  int found = 0;
  FILE* f = fopen("/proc/cpuinfo", "r");
  while (f && !found && fgets(line, sizeof line, f)) found = strncmp(line, "vendor_id", 9) == 0;
  if (f) fclose(f);
  memset(r, 0, sizeof *r);
  r->type_index = kTVMFFIInt;
  r->v_int64 = found;
  return 0;
}
/* The CPU features the kernel grants this process (what the board can execute). */
int __tvm_ffi_hwcap(void* h, const TVMFFIAny* a, int32_t n, TVMFFIAny* r) {
  memset(r, 0, sizeof *r);
  r->type_index = kTVMFFIInt;
  r->v_int64 = (int64_t)getauxval(AT_HWCAP);
  return 0;
}
#ifdef __cplusplus
}
#endif
"""

# AT_HWCAP bits on aarch64 (asm/hwcap.h): FP16 scalar / vector arithmetic, the dot product.
AARCH64_HWCAP = {"fphp": 1 << 9, "asimdhp": 1 << 10, "asimddp": 1 << 20}


def probe_library(compiler: str) -> Path:
    """The board probe built for a board's compiler (cached per compiler and source)."""
    import hashlib
    import subprocess

    import tvm_ffi

    from edgebench.paths import cache_dir

    version = hashlib.sha1(_PROBE_C.encode()).hexdigest()[:8]  # a changed probe is rebuilt
    out = cache_dir() / "boardprobe" / f"{Path(compiler).name}-{version}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        src = out.with_suffix(".c")
        src.write_text(_PROBE_C)
        include = Path(tvm_ffi.__file__).parent / "include"
        tmp = out.with_suffix(".tmp")
        subprocess.run([compiler, "-O2", "-shared", "-fPIC", f"-I{include}", "-x", "c", str(src),
                        "-o", str(tmp)], check=True, capture_output=True)
        tmp.replace(out)
    return out


def _memory_probe(sess, target: Target):
    """Functions returning the serving process's VmRSS / VmHWM in kB, or None if the probe
    cannot be built or loaded (the row then has no memory figure rather than a wrong one)."""
    try:
        lib = probe_library(target.cross_compiler or "g++")
        sess.upload(str(lib), "edgebench_probe.so")
        return sess.load_module("edgebench_probe.so")
    except Exception:
        return None


def board_hwcaps(sess, target: Target) -> set[str]:
    """The aarch64 features (AARCH64_HWCAP names) the board's kernel grants its processes:
    proof that a board (emulated or real) executes FP16 or dot-product code."""
    probe = _memory_probe(sess, target)
    if probe is None:
        raise BoardError(f"target '{target.name}': the board probe could not be loaded")
    bits = int(probe["hwcap"]())
    return {name for name, bit in AARCH64_HWCAP.items() if bits & bit}


def check_artifact_arch(artifact: Path, arch: str) -> None:
    """Refuse to upload a library built for another architecture (the board's loader would
    fail with a cryptic dlopen error, or worse, the wrong target file was used)."""
    head = artifact.read_bytes()[:20]
    if head[:4] != b"\x7fELF":
        raise BoardError(f"{artifact} is not an ELF shared library")
    machine = int.from_bytes(head[18:20], "little")
    if machine != _ELF_MACHINE[arch]:
        built = {v: k for k, v in _ELF_MACHINE.items()}.get(machine, f"e_machine {machine}")
        raise BoardError(f"{artifact.name} was built for {built} but the board is {arch}: "
                         "compile with the target's cross_compiler")


def _last_line(e: BaseException) -> str:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


def _measure_on(board: Board, artifact: Path, inputs: np.ndarray, measure: MeasureConfig,
                target: Target, log: Callable[[str], None]) -> tuple[dict, list]:
    import tvm
    from tvm.runtime.vm import VirtualMachine

    sess = board.session
    stats: dict = {"peak_rss_mb": None, "model_rss_mb": None}
    probe = _memory_probe(sess, target)
    base_kb = probe["vm_rss_kb"]() if probe is not None else -1
    board.emulated = board.emulated or bool(probe is not None and probe["emulated"]())
    t0 = time.perf_counter()
    sess.upload(str(artifact))
    log(f"uploaded {artifact.name} to {board.name}")
    lib = sess.load_module(artifact.name)
    dev = sess.cpu()
    vm = VirtualMachine(lib, dev)
    stats["load_s"] = time.perf_counter() - t0

    def run(x: np.ndarray) -> list[np.ndarray]:
        vm.set_input("main", tvm.runtime.tensor(np.ascontiguousarray(x), dev))
        vm.invoke_stateful("main")
        out = vm.get_outputs("main")
        return [o.numpy() for o in (out if isinstance(out, tuple | list) else (out,))]

    t0 = time.perf_counter()
    run(inputs[0])
    stats["first_ms"] = (time.perf_counter() - t0) * 1e3
    outs = [run(x) for x in inputs]
    vm.set_input("main", tvm.runtime.tensor(np.ascontiguousarray(inputs[0]), dev))
    timer = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=max(measure.min_runs, 2))
    secs = np.asarray(timer("main").results, dtype=np.float64)
    stats.update(latency_stats(secs * 1e3))
    peak_kb = probe["vm_hwm_kb"]() if probe is not None else -1
    if peak_kb > 0 and base_kb > 0:
        stats["peak_rss_mb"] = peak_kb / 1024
        stats["model_rss_mb"] = (peak_kb - base_kb) / 1024
    return stats, outs


def run_remote(artifact: Path, inputs: np.ndarray, target: Target, measure: MeasureConfig,
               log: Callable[[str], None] = lambda _m: None) -> tuple[WorkerResult, Board]:
    """Upload, load, run every input (outputs back for verification), time on the board.

    Latencies are the board's time evaluator (number=1, one sample per repeat), as many
    samples as the local worker's minimum count. first_ms and load_s are host wall clock,
    round trips included. Memory is the serving session process's own VmHWM, read on the board
    (it includes the server's Python and TVM runtime; under qemu-user it is the emulator
    process, qemu included); model_rss_mb is that peak minus its VmRSS before loading.
    """
    check_artifact_arch(artifact, target.arch)
    board = connect_board(target)
    error = ""
    try:
        stats, outs = _measure_on(board, artifact, inputs, measure, target, log)
    except Exception as e:  # a dropped board surfaces as a TVM RPC error: name the board
        error = _last_line(e)
    finally:
        board.session = None
        gc.collect()  # the session closes when its last reference goes: free the board now
    if error:
        raise BoardError(f"board {board.name} failed mid-run: {error}")
    outputs = [np.stack([o[i] for o in outs]) for i in range(len(outs[0]))]
    return WorkerResult(stats, outputs), board
