"""The sandbox that runs student code: bubblewrap (``bwrap``), hard limits, nothing of the course in sight.

:func:`run` executes one test group: the student's answer cells and the group's cases, in a fresh
``bwrap`` sandbox that sees, read-only, only

- the system's ``/usr`` (and ``/lib``, ``/lib64``, ``/bin``) and the Python runtime, with every
  site-packages folder replaced by an empty one into which only NumPy and threadpoolctl (which
  :mod:`lenet_core.parallel` uses), and for a group that needs it PyTorch with its dependencies,
  are mounted;
- the student build of :mod:`lenet_core` for the assignment (:mod:`lenet_core.grading.build`);
- the job: the answer cells as text, the cases' inputs (``.npz``) and the runner script.

It has a private ``/tmp`` (a small tmpfs), no network (every namespace unshared), its own PID
namespace (when the group ends, every process it started ends), a new session (no terminal),
and no capabilities: run as root, the runner switches to ``nobody`` before any student code runs
(so the process cap counts only the sandbox's processes); run as another user, bubblewrap maps
the student to ``nobody`` in a user namespace. Limits set before ``bwrap`` starts, soft = hard so
they cannot be raised: address space, CPU seconds, processes, file size; the grader reads at most
:data:`Limits.result_bytes` per case and kills the sandbox at its wall-clock deadline. Results come
back as ``.npz`` read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import shutil
import signal
import site
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

from .report import Model, Opaque, Outcome

RUNNER = Path(__file__).with_name("_runner.py")


class SandboxError(RuntimeError):
    """The sandbox could not run at all (not the student's doing): bwrap missing or refused."""


@dataclass(frozen=True)
class Limits:
    case_seconds: float = 10.0         # wall clock per case
    retry_seconds: float = 2.0         # ... once the same function has run out of time on an earlier case
    cpu_seconds: int = 10              # CPU per case (RLIMIT_CPU of each case's process)
    memory_bytes: int = 3 * 1024 ** 3  # address space (RLIMIT_AS): PyTorch reserves ~2 GiB it never uses
    processes: int = 64                # RLIMIT_NPROC of the sandbox's user
    file_bytes: int = 16 * 1024 ** 2   # RLIMIT_FSIZE: the largest file it may write (in its own /tmp)
    tmp_bytes: int = 32 * 1024 ** 2    # size of its /tmp
    result_bytes: int = 32 * 1024 ** 2  # the most the grader reads back per case
    startup_seconds: float = 30.0      # importing NumPy (and PyTorch) before the first case


def available() -> str | None:
    """None when bwrap can run a sandbox here, else the reason (one line)."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        probe = subprocess.run(_bwrap_args(torch=False) + [sys.executable, "-I", "-c", "pass"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bwrap failed to start: {e}"
    if probe.returncode != 0:
        return "bwrap cannot create a sandbox here: " + (probe.stderr.strip().splitlines() or ["?"])[-1]
    return None


@lru_cache(maxsize=None)
def _distribution_paths(names: tuple[str, ...]) -> tuple[Path, ...]:
    """The top-level files and folders in site-packages of these distributions and their dependencies."""
    seen, todo, paths = set(), list(names), set()
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        base = Path(dist.locate_file(""))
        for f in dist.files or []:
            parts = Path(f).parts
            if parts and parts[0] != ".." and not parts[0].endswith(".pth") and parts[0] != "__pycache__":
                paths.add(base / parts[0])
        for text in dist.requires or []:
            requirement, _, marker = text.partition(";")
            if "extra" not in marker:          # optional extras stay out; other markers: bind if installed
                todo.append(re.match(r"[A-Za-z0-9._-]+", requirement.strip()).group(0))
    return tuple(sorted(p for p in paths if p.exists()))


def _site_dirs() -> list[Path]:
    dirs = [*site.getsitepackages(), site.getusersitepackages(), sysconfig.get_paths()["purelib"],
            sysconfig.get_paths()["platlib"]]
    return sorted({Path(d) for d in dirs if Path(d).is_dir()})


def isolation_args(root: bool) -> list[str]:
    """bwrap and its namespaces: run by root, the sandbox keeps only the capabilities the runner
    needs to switch each case to nobody; run by another user, a user namespace maps it to nobody."""
    args = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if root:
        # the runner's switch to nobody, and its clean-up of what a case left behind
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_KILL"]
    else:
        args += ["--unshare-user", "--uid", "65534", "--gid", "65534"]
    return args


def system_args() -> list[str]:
    """The system's programs and libraries, read-only (``/usr`` and what links into it)."""
    args = []
    for d in ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"]:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    return args


def _bwrap_args(torch: bool, binds=()) -> list[str]:
    args = isolation_args(os.geteuid() == 0) + system_args()
    for prefix in sorted({sys.prefix, sys.base_prefix, sys.exec_prefix}):
        if not prefix.startswith("/usr"):
            for parent in reversed(Path(prefix).parents[:-1]):      # traversable by nobody (e.g. /root)
                args += ["--perms", "0755", "--dir", str(parent)]
            args += ["--ro-bind", prefix, prefix]
    sites = _site_dirs()
    for d in sites:
        args += ["--tmpfs", str(d)]
    wanted = ("numpy", "threadpoolctl") + (("torch",) if torch else ())
    for path in _distribution_paths(wanted):
        if any(path.parent == d for d in sites):
            args += ["--ro-bind", str(path), str(path)]
    for source, target in binds:
        args += ["--ro-bind", str(source), target]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(Limits.tmp_bytes), "--tmpfs", "/tmp",
             "--remount-ro", "/", "--clearenv", "--setenv", "HOME", "/tmp", "--setenv", "PATH", "/usr/bin:/bin",
             "--setenv", "OMP_NUM_THREADS", "1", "--setenv", "OPENBLAS_NUM_THREADS", "1",
             "--setenv", "MKL_NUM_THREADS", "1", "--chdir", "/tmp"]
    if "OPENBLAS_CORETYPE" in os.environ:
        args += ["--setenv", "OPENBLAS_CORETYPE", os.environ["OPENBLAS_CORETYPE"]]
    return args


def _own_processes() -> int:
    uid = os.getuid()
    return sum(1 for p in Path("/proc").iterdir() if p.name.isdigit() and _owner(p) == uid)


def _owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except OSError:
        return None


def _limit(limits: Limits):
    processes = limits.processes if os.geteuid() == 0 else _own_processes() + limits.processes

    def apply():
        for what, value in [(resource.RLIMIT_AS, limits.memory_bytes), (resource.RLIMIT_NPROC, processes),
                            (resource.RLIMIT_FSIZE, limits.file_bytes), (resource.RLIMIT_CORE, 0)]:
            resource.setrlimit(what, (value, value))
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    return apply


# ----------------------------------------------------------------------------------------------
# Encoding the cases, decoding the results
# ----------------------------------------------------------------------------------------------

def _encode(obj, arrays: list):
    if isinstance(obj, Model):
        return {"__model__": obj.kind, "dtype": obj.dtype, "params": _encode(dict(obj.params), arrays)}
    if isinstance(obj, (np.ndarray, np.generic)):
        arrays.append(np.asarray(obj))
        return {"__array__": len(arrays) - 1}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(o, arrays) for o in obj]}
    if isinstance(obj, list):
        return [_encode(o, arrays) for o in obj]
    if isinstance(obj, dict):
        return {"__dict__": {str(k): _encode(v, arrays) for k, v in obj.items()}}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot send a {type(obj).__name__} into the sandbox")


def _decode(tree, arrays):
    if isinstance(tree, list):
        return [_decode(t, arrays) for t in tree]
    if isinstance(tree, dict):
        if "__array__" in tree:
            return arrays[f"arr_{int(tree['__array__'])}"]
        if "__tuple__" in tree:
            return tuple(_decode(t, arrays) for t in tree["__tuple__"])
        if "__object__" in tree:
            return Opaque(str(tree["__object__"]))
        return {str(k): _decode(v, arrays) for k, v in tree.get("__dict__", {}).items()}
    return tree


def _outcome(payload: bytes) -> Outcome:
    import io

    try:
        (size,) = struct.unpack(">I", payload[:4])
        header = json.loads(payload[4:4 + size])
        arrays = np.load(io.BytesIO(payload[4 + size:]), allow_pickle=False)
        missing = header.get("missing")
        if missing:
            return Outcome(error={"timeout": "your code ran out of time on this case (the time limit per case)",
                                  "too large": "your result was larger than the grader reads back",
                                  "ended": "your code ended the process (a crash, exit or os._exit) "
                                           "before it returned"}.get(missing, missing))
        warnings = tuple(str(w)[:300] for w in header.get("warnings", [])[:5])
        changed = tuple(str(c) for c in header.get("changed", []))
        if "error" in header:
            return Outcome(error=str(header["error"])[:2000], warnings=warnings)
        return Outcome(result=_decode(header.get("result"), arrays), warnings=warnings, changed=changed)
    except Exception as e:                  # noqa: BLE001 (a malformed frame is the student's code's doing)
        return Outcome(error=f"the sandbox sent back a result the grader cannot read ({type(e).__name__})")


# ----------------------------------------------------------------------------------------------
# Running a group
# ----------------------------------------------------------------------------------------------

def run(cells: list[tuple[str, str]], prelude: str, cases: list, build: Path, *, torch: bool = False,
        limits: Limits = Limits()) -> list[Outcome]:
    """Run ``cases`` (:class:`~lenet_core.grading.report.Case`) against the answer ``cells``
    (``(name, source)``) in one sandbox; one :class:`Outcome` per case, in order.

    Raises :class:`SandboxError` when the sandbox cannot start at all.
    """
    return run_many([cells], prelude, [(0, case) for case in cases], build, torch=torch, limits=limits)


def run_many(submissions: list, prelude: str, cases: list, build: Path, *, torch: bool = False,
             limits: Limits = Limits()) -> list[Outcome]:
    """:func:`run` for several submissions in one sandbox (the tests grade many variants of one
    assignment): ``cases`` are ``(submission index, Case)``; each case still runs in a process of
    its own, with the answer cells of its submission only."""
    arrays: list = []
    job = {"prelude": prelude, "torch": torch, "submissions": [[list(c) for c in cells] for cells in submissions],
           "limits": {"cpu_seconds": limits.cpu_seconds, "case_seconds": limits.case_seconds,
                      "retry_seconds": limits.retry_seconds, "result_bytes": limits.result_bytes},
           "cases": [{"submission": i, "function": c.function, "args": _encode(tuple(c.args), arrays)["__tuple__"],
                      "then": c.then, "then_args": _encode(tuple(c.then_args), arrays)["__tuple__"],
                      "unchanged": [list(u) for u in c.unchanged]} for i, c in cases]}
    with tempfile.TemporaryDirectory(prefix="lenet-grading-") as tmp:
        jobdir = Path(tmp) / "job"
        jobdir.mkdir()
        (jobdir / "job.json").write_text(json.dumps(job))
        np.savez(jobdir / "inputs.npz", *arrays)
        shutil.copy(RUNNER, jobdir / "runner.py")
        for path in [Path(tmp), jobdir, *jobdir.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        command = _bwrap_args(torch, [(jobdir, "/job"), (build, "/build")]) + [
            os.path.realpath(sys.executable), "-I", "-B", "/job/runner.py",
            "/job", "/build"]
        return _collect(command, len(cases), limits)


def _namespace(info_fd: int) -> str | None:
    """The sandbox's PID namespace (``pid:[...]``), from bwrap's ``--info-fd`` report of its child."""
    data = b""
    while select.select([info_fd], [], [], 10)[0]:
        chunk = os.read(info_fd, 4096)
        if not chunk:
            break
        data += chunk
        try:
            return os.readlink(f"/proc/{int(json.loads(data)['child-pid'])}/ns/pid")
        except (ValueError, KeyError, OSError):
            continue
    return None


def _alive(pid: str) -> bool:
    """False for a process that has ended (a zombie waiting for its parent to reap it runs no code)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] not in "ZX"
    except (OSError, IndexError):
        return False


def _end_namespace(namespace: str | None, seconds: float = 10.0) -> None:
    """Wait until no process of the sandbox's PID namespace is left (killing any that is): nothing the
    student started outlives grading, even for the moment the kernel takes to tear the namespace down.
    (The namespace's first process, orphaned by bwrap's end, stays a zombie until init reaps it.)"""
    if namespace is None:
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if os.readlink(f"/proc/{entry.name}/ns/pid") == namespace and _alive(entry.name):
                        left.append(int(entry.name))
                except OSError:
                    pass
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.02)


def _collect(command, n, limits: Limits) -> list[Outcome]:
    deadline = time.monotonic() + limits.startup_seconds + n * (limits.case_seconds + 1)
    info_r, info_w = os.pipe()
    command = command[:1] + ["--info-fd", str(info_w)] + command[1:]
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=_limit(limits), start_new_session=True, pass_fds=(info_w,))
    except OSError as e:
        os.close(info_r)
        raise SandboxError(f"bwrap could not start: {e}") from None
    finally:
        os.close(info_w)
    try:
        namespace = _namespace(info_r)
    finally:
        os.close(info_r)
    data, err, outcomes = b"", b"", {}
    cap = n * (limits.result_bytes + 64) + 4096
    streams = [proc.stdout, proc.stderr]
    try:
        while streams and time.monotonic() < deadline:
            ready, _, _ = select.select(streams, [], [], max(0.0, min(1.0, deadline - time.monotonic())))
            for stream in ready:
                chunk = os.read(stream.fileno(), 1 << 20)
                if not chunk:
                    streams.remove(stream)
                elif stream is proc.stdout:
                    data += chunk
                    if len(data) > cap:
                        streams.clear()
                elif len(err) < 20000:
                    err += chunk
            while len(data) >= 8:
                index, size = struct.unpack(">II", data[:8])
                if len(data) < 8 + size:
                    break
                outcomes[index] = _outcome(data[8:8 + size])
                data = data[8 + size:]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        _end_namespace(namespace)
    ended_early = time.monotonic() < deadline
    if not outcomes and ended_early:
        message = err.decode(errors="replace").strip().splitlines()
        raise SandboxError(f"the sandbox ended with status {proc.returncode} before any case ran: "
                           f"{message[-1] if message else 'no message'}")
    missing = ("the sandbox ended before this case ran" if ended_early else
               "the group ran out of time before this case (the wall-clock limit of the sandbox)")
    return [outcomes.get(i, Outcome(error=missing)) for i in range(n)]
