"""Faults on a simulated multi-node cluster: the run either succeeds with the tables a clean run
publishes (nothing lost, nothing twice) or fails without moving LATEST."""

import json
import os
import subprocess
import sys

from benchmarks.parse import build_file
from pipeline.driver import run
from tests.conftest import ROOT
from tests.test_nightly import _cfg, table


def test_a_worker_node_removed_mid_parse(ray_local, tiny_model, tmp_path):
    first = build_file(1500, tmp_path / "in" / "pubmed26n0001.xml.gz")
    second = tmp_path / "in" / "pubmed26n0002.xml.gz"
    second.write_bytes(first.read_bytes())  # the same records again: the later file supersedes them
    inputs = [first, second]
    out = subprocess.run([sys.executable, "-m", "tests.faults.node_loss", str(tmp_path / "store"), str(tiny_model),
                          *map(str, inputs)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "RAY_ADDRESS": ""})
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["removed"] and result["failed_files"] == [] and result["documents"] == 1500
    assert "node it was running on is dead" in out.stdout + out.stderr  # a parse task really was lost, and retried
    run(_cfg(tmp_path / "clean", inputs, tiny_model, "node-loss", "extract.batch_size=512"))
    for name in ("documents", "sentences", "entities", "relations", "rejects"):
        assert table(tmp_path / "store", "node-loss", name, ("run_id", "parsed_at")) == table(
            tmp_path / "clean", "node-loss", name, ("run_id", "parsed_at")), name
