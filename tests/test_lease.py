"""One run per store at a time: the lease on a local folder and on the real SeaweedFS server, and two
real `pubmine run`s started into one store."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from pipeline.driver import Lease, run
from pipeline.errors import PublishError, RunInProgress
from pipeline.layout import LATEST, LEASE
from pipeline.storage import Store
from tests.conftest import ROOT, write_medline
from tests.test_nightly import ABSTRACT, _cfg


def _check_lease(store: Store) -> None:
    store.remove(*LEASE)
    first = Lease(store, "night-1", ttl_s=30).acquire()
    try:
        with pytest.raises(RunInProgress, match=r"night-1, started \d{4}-\d\d-\d\dT.*is in progress") as err:
            Lease(store, "manual-rerun", ttl_s=30).acquire()
        assert "Nothing was written and LATEST is untouched" in str(err.value)
        assert store.exists(*LEASE) and json.loads(store.read_text(*LEASE))["run_id"] == "night-1"
        first.check()  # still ours
    finally:
        first.release()
    assert not store.exists(*LEASE)
    # released: the next run takes it at once
    with Lease(store, "night-2", ttl_s=30).acquire() as second:
        second.check()


@pytest.mark.parametrize("where", ["local", pytest.param("s3", marks=pytest.mark.slow)])
def test_a_second_run_refuses_at_once_naming_the_running_one(where, tmp_path, request):
    store = (Store(str(tmp_path / "local")) if where == "local" else
             Store("s3://pubmine/lease-test", request.getfixturevalue("s3_server")["storage_options"]))
    started = time.time()
    _check_lease(store)
    assert time.time() - started < 15  # refusing takes no waiting


@pytest.mark.parametrize("where", ["local", pytest.param("s3", marks=pytest.mark.slow)])
def test_a_killed_runs_lease_is_taken_over_once_it_expires(where, tmp_path, request):
    store = (Store(str(tmp_path / "local")) if where == "local" else
             Store("s3://pubmine/lease-test-2", request.getfixturevalue("s3_server")["storage_options"]))
    store.remove(*LEASE)
    killed = Lease(store, "killed", ttl_s=3).acquire()
    killed._stop.set()  # the run died: nobody renews its lease any more
    killed._thread.join()
    with pytest.raises(RunInProgress):
        Lease(store, "too-soon", ttl_s=3).acquire()
    time.sleep(3.2)
    taker = Lease(store, "after-expiry", ttl_s=30).acquire()
    assert json.loads(store.read_text(*LEASE))["run_id"] == "after-expiry"
    with pytest.raises(PublishError, match="taken over by run after-expiry"):
        killed.check()  # the killed run, if it came back, would not commit
    killed.release()  # and its release leaves the new holder's lease alone
    assert json.loads(store.read_text(*LEASE))["run_id"] == "after-expiry"
    taker.release()


def test_a_run_asked_to_wait_starts_when_the_running_one_releases(tmp_path):
    store = Store(str(tmp_path))
    running = Lease(store, "running", ttl_s=30).acquire()
    threading.Timer(1.5, running.release).start()
    started = time.time()
    with Lease(store, "waiting", ttl_s=30).acquire(wait=True, poll_s=0.2):
        assert 1.2 < time.time() - started < 10
        assert json.loads(store.read_text(*LEASE))["run_id"] == "waiting"
    with pytest.raises(RunInProgress, match="gave up"):
        other = Lease(store, "holder", ttl_s=30).acquire()
        try:
            Lease(store, "impatient", ttl_s=30).acquire(wait=True, timeout_s=0.5, poll_s=0.1)
        finally:
            other.release()


def test_two_runs_started_into_one_store_one_publishes_the_other_refuses(ray_local, tiny_model, tmp_path):
    """A real `pubmine run` in another process holds the store; a run started meanwhile refuses at
    once, writes nothing, and the first publishes as if alone."""
    f = write_medline(tmp_path / "in" / "pubmed26n0001.xml", [(p, f"Title {p} on clonidine.", ABSTRACT) for p in (1, 2, 3)])
    store = tmp_path / "store"
    argv = [sys.executable, "-m", "pipeline.cli", "run", "-c", str(ROOT / "configs" / "local.yaml"), "--store", str(store),
            "--set", "run_id=nightly", "--set", f"extract.model={tiny_model}", "--set", "extract.normalizer=none",
            "--set", "extract.relations=[]", "--set", "extract.precision=fp32", "--set", "report.gold=none", "--set", "index.enabled=false",
            "--set", "ray.num_cpus=1", str(f)]
    env = {**os.environ, "RAY_ADDRESS": "", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    nightly = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (store / "state" / "LEASE").exists():
            assert nightly.poll() is None and time.time() < deadline, nightly.communicate()[1][-3000:]
            time.sleep(0.05)
        started = time.time()
        with pytest.raises(RunInProgress, match="nightly, started .* is in progress"):
            run(_cfg(store, [f], tiny_model, "manual"))
        assert time.time() - started < 10
        out, err = nightly.communicate(timeout=600)
    finally:
        if nightly.poll() is None:
            nightly.kill()
    assert nightly.returncode == 0, err[-3000:]
    assert Store(str(store)).read_text(LATEST).strip() == "nightly"
    assert not (store / "snapshots" / "manual").exists() and not (store / "state" / "LEASE").exists()
    summary = run(_cfg(store, [f], tiny_model, "manual"))  # once it is done, the next run goes ahead
    assert summary.counts.documents == 3 and Store(str(store)).read_text(LATEST).strip() == "manual"


def test_a_lease_whose_process_on_this_machine_is_gone_is_taken_over_at_once(tmp_path):
    """A killed driver rerun on the same machine need not wait its lease out."""
    import socket

    store = Store(str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    store.write_text(json.dumps({"run_id": "killed", "token": "t", "host": socket.gethostname(), "pid": gone.pid,
                                 "started_at": "2026-12-01T03:00:00+00:00", "expires_at": time.time() + 3600}), *LEASE)
    with Lease(store, "rerun", ttl_s=30).acquire():
        assert json.loads(store.read_text(*LEASE))["run_id"] == "rerun"
    store.write_text(json.dumps({"run_id": "elsewhere", "token": "t", "host": "another-machine", "pid": gone.pid,
                                 "started_at": "2026-12-01T03:00:00+00:00", "expires_at": time.time() + 3600}), *LEASE)
    with pytest.raises(RunInProgress, match="elsewhere"):  # another machine's: only its expiry says it is dead
        Lease(store, "rerun-2", ttl_s=30).acquire()


def test_a_lease_this_process_could_not_release_does_not_block_its_next_run(tmp_path, monkeypatch):
    """The store went down while a run ended (its lease stays behind); when it is back, the next run of
    the same process goes ahead instead of waiting the lease out."""
    store = Store(str(tmp_path))
    first = Lease(store, "during-outage", ttl_s=600).acquire()
    with monkeypatch.context() as m:
        m.setattr(Store, "remove", lambda *a, **k: (_ for _ in ()).throw(ConnectionRefusedError("store down")))
        first.release()  # logged, not raised
    assert json.loads(store.read_text(*LEASE))["run_id"] == "during-outage"
    with Lease(store, "after", ttl_s=30).acquire():
        assert json.loads(store.read_text(*LEASE))["run_id"] == "after"


def test_a_lease_written_by_a_take_that_failed_does_not_block_this_processs_next_run(tmp_path, monkeypatch):
    """The store went down between a take's write and its read-back (the S3-down-for-good fault test
    hit it): the take fails and leaves its lease behind; the same process's next run, store back,
    goes ahead instead of being refused until the lease expires."""
    store = Store(str(tmp_path))
    real_read = Store.read_text

    def down_after_the_write(self, *parts):
        if tuple(parts) == tuple(LEASE):
            raise ConnectionRefusedError("store down")
        return real_read(self, *parts)

    with monkeypatch.context() as m:
        m.setattr(Store, "read_text", down_after_the_write)
        with pytest.raises(ConnectionRefusedError):
            Lease(store, "during-outage", ttl_s=600).acquire()
    assert json.loads(store.read_text(*LEASE))["run_id"] == "during-outage"   # left behind, unexpired
    with Lease(store, "after", ttl_s=30).acquire():
        assert json.loads(store.read_text(*LEASE))["run_id"] == "after"
