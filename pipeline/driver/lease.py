"""One run per store at a time. A run holds ``<store>/state/LEASE`` (its run id, host, pid, start time
and an expiry) from before it writes anything until it has committed or failed, renewed by a
background thread every third of ``lease.ttl_s``. A second run refuses at once, naming the running
run and its start time, or waits for it (``lease.wait``). A lease whose holder stopped renewing it
(a killed run) is taken over once it expires, or at once when it was held by a process of this
machine that is gone (a killed driver rerun on the same head node). Creating the lease is exclusive where the store can
(O_EXCL locally, a conditional put on S3); every take is read back after a pause, so two runs that
raced on a store without conditional writes still end with one holder. A run whose lease was taken
from it (it stalled past the expiry) does not commit."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid

from pipeline.errors import PublishError, RunInProgress
from pipeline.layout import LEASE
from pipeline.storage import Store, is_local

log = logging.getLogger("pubmine")


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="seconds")


# the leases this process's runs held and have ended (a release the store was down for leaves one)
_ENDED: set[str] = set()


def _dead_here(held: dict) -> bool:
    """The holder ran on this machine and its process is gone (a killed driver), or it was a run of
    this process that has ended: its lease need not be waited out. A holder on another machine is
    only known dead by its lease expiring."""
    from pipeline.driver.session import alive

    if held.get("token") in _ENDED:
        return True
    pid = held.get("pid")
    return held.get("host") == socket.gethostname() and isinstance(pid, int) and pid != os.getpid() and not alive(pid)


class Lease:
    def __init__(self, store: Store, run_id: str, ttl_s: float = 600.0, settle_s: float | None = None):
        self.store, self.run_id, self.ttl_s = store, run_id, ttl_s
        self.token = uuid.uuid4().hex
        self.settle_s = (0.2 if is_local(store.fs) else 1.0) if settle_s is None else settle_s
        self.started_at = time.time()
        self.lost: dict | None = None       # the holder that took it from us, if one did
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        now = time.time()
        return json.dumps({"run_id": self.run_id, "token": self.token, "host": socket.gethostname(), "pid": os.getpid(),
                           "started_at": _when(self.started_at), "renewed_at": _when(now),
                           "expires_at": now + self.ttl_s}).encode()

    def holder(self) -> dict | None:
        """The lease as the store has it now (None: no run holds the store)."""
        try:
            return json.loads(self.store.read_text(*LEASE)) if self.store.exists(*LEASE) else None
        except (FileNotFoundError, ValueError):  # removed between the two calls, or a half-written file
            return None

    def _take(self, held: dict | None) -> bool:
        if held is None:
            if not self.store.create_bytes(self._body(), *LEASE):
                return False
        else:  # an expired lease: overwritten, and the read-back below decides a race
            self.store.write_bytes(self._body(), *LEASE)
        time.sleep(self.settle_s)
        now = self.holder()
        return bool(now) and now.get("token") == self.token

    def acquire(self, wait: bool = False, timeout_s: float = 86400.0, poll_s: float = 5.0) -> "Lease":
        try:
            return self._acquire(wait, timeout_s, poll_s)
        except BaseException:
            # a take can fail after its write landed (the store went down before the read-back): the
            # lease it may have left is this process's, ended, and must not block this process's next run
            _ENDED.add(self.token)
            raise

    def _acquire(self, wait: bool, timeout_s: float, poll_s: float) -> "Lease":
        deadline = time.time() + timeout_s
        announced = False
        while True:
            held = self.holder()
            if held and held.get("expires_at", 0) > time.time() and not _dead_here(held):
                what = (f"another pubmine run ({held.get('run_id')}, started {held.get('started_at')} on "
                        f"{held.get('host')}, pid {held.get('pid')}) is in progress in the store {self.store.uri()}: "
                        f"its lease {self.store.uri(*LEASE)} runs until {_when(held['expires_at'])} and is renewed "
                        "while it works")
                if not wait:
                    raise RunInProgress(f"{what}. Nothing was written and LATEST is untouched. Wait for it to finish, "
                                        "or run with --wait (lease.wait=true) to start when it has; a lease left by "
                                        "a killed run is taken over once it expires (lease.ttl_s).")
                if time.time() > deadline:
                    raise RunInProgress(f"{what}; waited {timeout_s:.0f} s (lease.wait_timeout_s) and gave up.")
                if not announced:
                    log.info("%s; waiting for it", what)
                    announced = True
                time.sleep(min(poll_s, max(0.05, held["expires_at"] - time.time())))
                continue
            if held:
                log.warning("taking over the lease of run %s (started %s on %s, last renewed %s): %s",
                            held.get("run_id"), held.get("started_at"), held.get("host"), held.get("renewed_at"),
                            f"its process {held.get('pid')} on this machine is gone" if _dead_here(held) else
                            "it expired: that run stopped renewing it")
            if self._take(held):
                self._thread = threading.Thread(target=self._renew, name="pubmine-lease", daemon=True)
                self._thread.start()
                return self

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                held = self.holder()
                if not held or held.get("token") != self.token:
                    self.lost = held or {"run_id": None}
                    log.error("this run's lease on %s was taken by run %s", self.store.uri(),
                              (held or {}).get("run_id"))
                    return
                self.store.write_bytes(self._body(), *LEASE)
            except Exception as exc:  # noqa: BLE001 - an outage is the run's to report; the next renewal retries
                log.warning("could not renew the run lease: %s", exc)

    def check(self) -> None:
        """Before commit: this run still holds the store (a PublishError if another took it over)."""
        held = self.lost or self.holder()
        if not held or held.get("token") != self.token:
            raise PublishError(
                f"this run's lease on {self.store.uri()} was taken over by run {(held or {}).get('run_id')} (this run "
                f"stopped renewing it for over lease.ttl_s={self.ttl_s:g} s): not publishing, so the two never "
                "write LATEST over each other. Run again once that run has finished.")

    def release(self) -> None:
        _ENDED.add(self.token)
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        try:
            held = self.holder()
            if held and held.get("token") == self.token:
                self.store.remove(*LEASE)
        except Exception as exc:  # noqa: BLE001 - best effort on the way out: it expires on its own
            log.warning("could not release the run lease (it expires in %.0f s): %s", self.ttl_s, exc)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
