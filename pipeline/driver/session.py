"""The Ray session a run works in: join the configured cluster or start one in-process (reaping what a
killed driver left of an earlier in-process Ray first), and ``gather``, which waits for a stage's
tasks with progress."""

from __future__ import annotations

import contextlib
import logging
import os

from pipeline.config import RunConfig
from pipeline.progress import Progress

log = logging.getLogger("pubmine")


RAY_MARKER = "pubmine-driver"  # in an in-process Ray's session folder: the pid of the pubmine driver that started it


def _ray_temp_root() -> str:
    import tempfile

    return os.path.join(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir(), "ray")


def alive(pid: int) -> bool:
    """A process of this machine with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphaned_ray(temp_root: str | None = None) -> list[int]:
    """Kill what is left of in-process Ray sessions whose pubmine driver is gone (a SIGKILLed driver
    leaves its Ray agents running, parentless). Only sessions a pubmine driver marked are touched: a
    cluster from `ray start` or another program's Ray is never reaped. Returns the pids killed."""
    import glob
    import signal

    if not os.path.isdir("/proc"):
        return []
    dead = []
    for marker in glob.glob(os.path.join(temp_root or _ray_temp_root(), "session_*", RAY_MARKER)):
        if os.path.islink(os.path.dirname(marker)):  # session_latest
            continue
        try:
            pid = int(open(marker).read().strip())
        except (OSError, ValueError):
            continue
        if not alive(pid):
            dead.append((marker, os.path.basename(os.path.dirname(marker))))
    killed = []
    if dead:
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                cmdline = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if any(session in cmdline for _, session in dead):
                try:
                    os.kill(int(entry), signal.SIGKILL)
                    killed.append(int(entry))
                except OSError:
                    pass
    for marker, _ in dead:
        with contextlib.suppress(OSError):
            os.remove(marker)
    return killed


def _mark_session() -> None:
    """Name this driver in the session folder of the Ray it just started (see reap_orphaned_ray)."""
    try:
        from ray._private import worker

        session = worker._global_node.get_session_dir_path()
        with open(os.path.join(session, RAY_MARKER), "w") as f:
            f.write(str(os.getpid()))
    except Exception as exc:  # pragma: no cover - a Ray without this private API: nothing to reap later
        log.debug("could not mark the Ray session: %s", exc)


def connect_ray(config: RunConfig) -> bool:
    """Join the configured cluster or start one in-process. Returns True when we started it; then
    the leftovers of an earlier in-process Ray whose driver was killed are reaped first."""
    import ray

    if ray.is_initialized():
        return False
    address = config.ray.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return False
    reaped = reap_orphaned_ray()
    if reaped:
        log.warning("stopped %d Ray processes left by a killed pubmine run: %s", len(reaped), reaped)
    # the in-process Ray sends no usage report home (RAY_USAGE_STATS_ENABLED=1 to allow it)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=config.ray.num_cpus, include_dashboard=False,
             log_to_driver=True, configure_logging=False)
    _mark_session()
    return True


def gather(refs: list, stage: str, run_id: str | None, unit: str = "task", count=None) -> list:
    """``ray.get(refs)`` in their order, with progress as they finish (``count(result)``: the counts
    shown). A task's error is raised as soon as it arrives."""
    import ray

    index = {ref: i for i, ref in enumerate(refs)}
    out: list = [None] * len(refs)
    pending = list(refs)
    with Progress(stage, total=len(refs), unit=unit, run_id=run_id) as bar:
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
            for ref, result in zip(ready, ray.get(ready)):
                out[index[ref]] = result
                bar.update(1, **(count(result) if count else {}))
    return out


# Lines Ray's C++ core worker writes to the driver's stderr that say nothing went wrong. Ray Data
# passes every actor pool's UDF to its actors as an object reference and restarts them (max_restarts
# -1), and core_worker.cc logs an "E" line for each actor created that way (ray#53727: a restart fails
# if the argument were lost; the driver holds it for the whole run, and the fault tests restart actors).
HARMLESS_RAY_LINES = (b"has constructor arguments in the object store and max_restarts > 0",)


@contextlib.contextmanager
def without_harmless_ray_lines(drop: tuple[bytes, ...] = HARMLESS_RAY_LINES):
    """Within the block, lines on file descriptor 2 (where Ray's C++ logging writes) that contain one
    of ``drop`` are left out; everything else reaches the real stderr as before. Python's own
    ``sys.stderr`` keeps writing to the real stderr directly (a terminal stays a terminal for the
    progress bar). How many lines were left out is logged at debug level."""
    import sys
    import threading

    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (an embedded interpreter): nothing to filter
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    python_stderr, left_out = sys.stderr, []
    sys.stderr = open(os.dup(real), "w", buffering=1, encoding=getattr(python_stderr, "encoding", None) or "utf-8",
                      errors="backslashreplace")

    def pump() -> None:
        with os.fdopen(read_end, "rb", buffering=0) as src:
            for line in iter(src.readline, b""):
                if any(d in line for d in drop):
                    left_out.append(line)
                else:
                    os.write(real, line)

    thread = threading.Thread(target=pump, name="pubmine-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(real, 2)  # the pipe's last write end closes: the pump reads to its end and stops
        thread.join(timeout=5)
        if not thread.is_alive():
            os.close(real)
        if left_out:
            log.debug("left out %d line(s) of Ray's that say nothing failed, e.g. %s", len(left_out),
                      left_out[0].decode(errors="replace").strip())
