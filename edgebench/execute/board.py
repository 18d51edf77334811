"""An emulated aarch64 board: a Debian arm64 root file system run under qemu-user, serving
TVM's own `tvm.exec.rpc_server` on 127.0.0.1 (optionally registered with a host-side
`tvm.exec.rpc_tracker`).

Why: the RPC path, the tracker farm and the fault handling need a board on every submission,
and CI has none. The root file system is built once (debootstrap + the aarch64 TVM wheels from
PyPI, ~5 min) and cached, so `edgebench board up` afterwards only starts processes. Its times
are qemu's, not a Cortex-A72's: rows from it are marked emulated.

State lives in `board_dir()`: `rootfs-arm64/` and `run/*.json` (one record per process we
started, with its pid; `down` stops exactly those). Needs root (chroot, mount) and the Debian
packages debootstrap, qemu-user-static and binfmt-support.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from edgebench.paths import cache_dir

SUITE = "bookworm"  # its python3 is 3.11, the version the host's wheels are for
PY = "3.11"
HOST = "127.0.0.1"
TRACKER_PORT = 9190
SERVER_PORT = 9091
APT_PACKAGES = ("debootstrap", "qemu-user-static", "binfmt-support")
Log = Callable[[str], None]


class BoardSetupError(RuntimeError):
    """The emulated board cannot be built or started here (the message says what is missing)."""


def board_dir() -> Path:
    """$EDGEBENCH_BOARD_DIR, else <cache>/board: separate from the tuning cache so CI (which
    points EDGEBENCH_CACHE into its fresh checkout) still reuses the machine's root fs."""
    env = os.environ.get("EDGEBENCH_BOARD_DIR")
    path = Path(env).expanduser() if env else cache_dir() / "board"
    path.mkdir(parents=True, exist_ok=True)
    return path


def rootfs() -> Path:
    return board_dir() / "rootfs-arm64"


def _recipe() -> str:
    """What the cached root fs was built from; a different recipe rebuilds it."""
    tvm = importlib.metadata.version("apache-tvm")
    ffi = importlib.metadata.version("apache-tvm-ffi")
    return f"debian-{SUITE}-arm64 python{PY} apache-tvm=={tvm} apache-tvm-ffi=={ffi} v1"


def _wheels() -> list[str]:
    tvm = importlib.metadata.version("apache-tvm")
    ffi = importlib.metadata.version("apache-tvm-ffi")
    return [f"apache-tvm=={tvm}", f"apache-tvm-ffi=={ffi}", "numpy", "psutil", "tornado",
            "cloudpickle"]


def debian_mirror() -> str:
    """The Debian mirror the host's apt uses (deb822 or one-line sources)."""
    sources = [*Path("/etc/apt/sources.list.d").glob("*.sources"),
               *Path("/etc/apt/sources.list.d").glob("*.list"), Path("/etc/apt/sources.list")]
    for path in sources:
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                words = line.split()
                urls = (words[1:] if words[:1] == ["URIs:"] else
                        [w for w in words if "://" in w] if words[:1] == ["deb"] else [])
                for url in urls:
                    if "security" not in url:
                        return url
    raise BoardSetupError("no Debian mirror found in /etc/apt sources")


def _run(cmd: list[str], log: Log, what: str) -> None:
    log(f"board: {what}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise BoardSetupError(f"{what} failed ({' '.join(cmd[:3])} ...):\n{tail}")


def ensure_binfmt(log: Log = print) -> None:
    """qemu-aarch64 registered with the kernel, so the chroot's arm64 binaries just run."""
    missing = [t for t in ("debootstrap", "qemu-aarch64-static", "update-binfmts")
               if shutil.which(t) is None]
    if missing:
        raise BoardSetupError(f"missing {', '.join(missing)}: apt-get install -y "
                              f"{' '.join(APT_PACKAGES)}")
    misc = Path("/proc/sys/fs/binfmt_misc")
    if not (misc / "register").exists():
        _run(["mount", "binfmt_misc", "-t", "binfmt_misc", str(misc)], log, "mount binfmt_misc")
    entry = misc / "qemu-aarch64"
    if not entry.exists() or "enabled" not in entry.read_text():
        _run(["update-binfmts", "--enable", "qemu-aarch64"], log, "enable qemu-aarch64")


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    return [p for p in points if p.startswith(prefix)]


def build(log: Log = print, force: bool = False) -> Path:
    """Build the root fs once (debootstrap arm64 + python3 + TVM's aarch64 wheels); cached."""
    root = rootfs()
    stamp = root / ".edgebench-recipe"
    if not force and stamp.exists() and stamp.read_text() == _recipe():
        return root
    ensure_binfmt(log)
    part = root.with_name(root.name + ".partial")
    for old in (part, root):
        if old.exists():
            if _mounts_under(old):
                raise BoardSetupError(f"{old} has mounts; run `edgebench board down` first")
            shutil.rmtree(old)
    start = time.perf_counter()
    _run(["debootstrap", "--arch=arm64", "--foreign", "--variant=minbase", "--include=python3",
          SUITE, str(part), debian_mirror()], log, f"debootstrap {SUITE} arm64 (first stage)")
    # binfmt's interpreter path is resolved inside the chroot: put qemu there too.
    shutil.copy2(shutil.which("qemu-aarch64-static") or "", part / "usr/bin/qemu-aarch64-static")
    libexec = Path("/usr/libexec/qemu-binfmt")
    if libexec.is_dir():
        (part / "usr/libexec/qemu-binfmt").mkdir(parents=True, exist_ok=True)
        for link in libexec.glob("aarch64-*"):
            shutil.copy2(link, part / "usr/libexec/qemu-binfmt" / link.name,
                         follow_symlinks=False)
    _run(["chroot", str(part), "/debootstrap/debootstrap", "--second-stage"], log,
         "debootstrap second stage (under qemu, minutes)")
    site = part / f"usr/local/lib/python{PY}/dist-packages"
    _run([sys.executable, "-m", "pip", "install", "-q", "--target", str(site),
          "--platform", "manylinux_2_28_aarch64", "--platform", "manylinux_2_17_aarch64",
          "--platform", "manylinux2014_aarch64", "--python-version", PY, "--implementation",
          "cp", "--only-binary=:all:", *_wheels()], log, "pip install the aarch64 TVM runtime")
    (part / ".edgebench-recipe").write_text(_recipe())
    part.rename(root)
    log(f"board: root fs built in {time.perf_counter() - start:.0f} s at {root}")
    return root


def _mount(root: Path) -> None:
    """/proc (the server and our memory figure read it) and a private /dev/shm
    (multiprocessing); the rootfs's own /dev nodes from debootstrap serve the rest."""
    have = _mounts_under(root)
    for point, cmd in ((root / "proc", ["mount", "-t", "proc", "proc"]),
                       (root / "dev/shm", ["mount", "-t", "tmpfs", "tmpfs"])):
        if str(point.resolve()) not in have:
            point.mkdir(parents=True, exist_ok=True)
            _run([*cmd, str(point)], lambda _m: None, f"mount {point}")


def _unmount(root: Path) -> None:
    for point in sorted(_mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


@dataclass
class Proc:
    """One process `board up` started (a server in the chroot or the host-side tracker)."""

    kind: str  # "server" | "tracker"
    pid: int
    port: int
    host: str = HOST
    key: str = ""
    tracker: str = ""
    log: str = ""
    started: float = 0.0

    @property
    def record(self) -> Path:
        return board_dir() / "run" / f"{self.kind}-{self.port}.json"

    def alive(self) -> bool:
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except (OSError, IndexError):
            return False
        # Not a zombie, and not a recycled pid (the cmdline is empty only mid-exec).
        return state != "Z" and (not cmdline or b"tvm.exec.rpc_" in cmdline)

    def listening(self) -> bool:
        with contextlib.suppress(OSError):
            socket.create_connection((self.host, self.port), timeout=1).close()
            return True
        return False

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the process group (server + its forked listener and sessions), then KILL."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, os.WNOHANG)  # reap it if this process started it
        self.record.unlink(missing_ok=True)


def processes() -> list[Proc]:
    """The processes `board up` started that are still recorded (alive or not)."""
    run = board_dir() / "run"
    return [Proc(**json.loads(p.read_text())) for p in sorted(run.glob("*.json"))]


def _spawn(kind: str, cmd: list[str], port: int, env: dict[str, str], **fields) -> Proc:
    run = board_dir() / "run"
    run.mkdir(parents=True, exist_ok=True)
    for p in processes():
        if p.port == port and p.alive():
            raise BoardSetupError(f"{kind} port {port} is already served by pid {p.pid}")
    logfile = run / f"{kind}-{port}.log"
    with open(logfile, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    rec = Proc(kind, proc.pid, port, log=str(logfile), started=time.time(), **fields)
    rec.record.write_text(json.dumps(asdict(rec)))
    return rec


def start_tracker(port: int = TRACKER_PORT, host: str = HOST) -> Proc:
    """TVM's tracker, run by the host's Python (it only brokers; no board code in it)."""
    cmd = [sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", host, "--port", str(port),
           "--port-end", str(port + 1)]
    return _spawn("tracker", cmd, port, dict(os.environ), host=host)


def start_server(port: int = SERVER_PORT, tracker: str = "", key: str = "", threads: int = 1,
                 host: str = HOST) -> Proc:
    """TVM's rpc_server inside the chroot. TVM_USE_RUNTIME_LIB loads libtvm_runtime only (as a
    deployed board would), which also cuts the start under qemu to seconds."""
    ensure_binfmt(lambda _m: None)  # a reboot forgets the registration, not the root fs
    root = build()
    _mount(root)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": "/root", "LANG": "C.UTF-8", "TVM_USE_RUNTIME_LIB": "1",
           "TVM_NUM_THREADS": str(threads),
           # qemu-user's CPU model (its default, pinned): max has the Armv8.2 dot product, so
           # +dotprod code (targets/arm-dotprod.toml) runs; cortex-a72 would SIGILL on sdot
           "QEMU_CPU": "max"}
    cmd = [shutil.which("chroot") or "/usr/sbin/chroot", str(root), "python3", "-m",
           "tvm.exec.rpc_server", "--host", host, "--port", str(port), "--port-end",
           str(port + 1)]
    if tracker:
        cmd += ["--tracker", tracker, "--key", key]
    return _spawn("server", cmd, port, env, host=host, key=key, tracker=tracker)


def wait_ready(procs: list[Proc], timeout_s: float = 300.0) -> None:
    """Until every process listens (servers also registered when there is a tracker)."""
    deadline = time.monotonic() + timeout_s
    pending = list(procs)
    while pending:
        for p in list(pending):
            if not p.alive():
                tail = Path(p.log).read_text().strip().splitlines()[-3:] if p.log else []
                raise BoardSetupError(f"{p.kind} on port {p.port} exited: {' | '.join(tail)}")
            if p.listening():
                pending.remove(p)
        if pending and time.monotonic() > deadline:
            raise BoardSetupError(f"not listening after {timeout_s:.0f} s: "
                                  f"{', '.join(f'{p.kind}:{p.port}' for p in pending)}")
        time.sleep(0.2)
    trackers = {p.tracker for p in procs if p.tracker}
    for addr in trackers:
        keys = [p.key for p in procs if p.tracker == addr]
        while True:
            free = tracker_free(addr)
            if all(free.get(k, 0) >= keys.count(k) for k in set(keys)):
                break
            if time.monotonic() > deadline:
                raise BoardSetupError(f"servers did not register with tracker {addr}: {free}")
            time.sleep(0.5)


def tracker_free(addr: str) -> dict[str, int]:
    """Free servers per key at the tracker."""
    from tvm import rpc

    host, _, port = addr.rpartition(":")
    tracker = rpc.connect_tracker(host, int(port))
    try:
        queue = tracker.summary()["queue_info"]
    finally:
        tracker.close()
    return {k: int(v["free"]) for k, v in queue.items()}


def up(servers: int = 1, port: int = SERVER_PORT, tracker: bool = False,
       tracker_port: int = TRACKER_PORT, key: str = "arm", threads: int = 1, host: str = HOST,
       log: Log = print, timeout_s: float = 300.0) -> list[Proc]:
    """Start `servers` rpc servers on consecutive ports from `port` (registered with a
    tracker under `key` if `tracker`); return once all serve."""
    if host != HOST:
        log(f"board: binding to {host} as asked (default is {HOST} only)")
    build(log)
    procs: list[Proc] = []
    try:
        addr = ""
        if tracker:
            procs.append(start_tracker(tracker_port, host))
            wait_ready(procs[-1:], 30)
            addr = f"{host}:{tracker_port}"
        procs += [start_server(port + i, addr, key if tracker else "", threads, host)
                  for i in range(servers)]
        wait_ready(procs, timeout_s)
    except BaseException:
        for p in procs:
            p.stop()
        raise
    return procs


def down(log: Log = print) -> list[Proc]:
    """Stop every process `board up` recorded, then unmount the chroot's /proc and /dev/shm."""
    procs = processes()
    for p in sorted(procs, key=lambda p: p.kind != "server"):  # servers before the tracker
        p.stop()
        log(f"board: stopped {p.kind} {p.host}:{p.port} (pid {p.pid})")
    if rootfs().exists():
        _unmount(rootfs())
    return procs


def status() -> list[tuple[Proc, str]]:
    """Each recorded process with its state: serving, starting, or dead."""
    out = []
    for p in processes():
        state = "dead" if not p.alive() else "serving" if p.listening() else "starting"
        out.append((p, state))
    return out
