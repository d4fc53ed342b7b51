"""S3 credentials never reach an output: whole `pubmine run`s against a SeaweedFS server of their own
whose credentials are sentinels, with the inputs, the model and the store all on S3; every object
the runs wrote, everything they printed and every Ray log they left is scanned for the sentinels."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import s3fs

from tests.conftest import DATA, ROOT, S3Server
from tests.test_hostile import _holds

pytestmark = pytest.mark.slow  # whole pubmine runs in other processes

KEY_ID = f"AKIASENTINEL{uuid.uuid4().hex[:8].upper()}"
SECRET = f"sentinel-secret-{uuid.uuid4().hex}"
WRONG = f"sentinel-wrong-{uuid.uuid4().hex}"
INPUTS = [DATA / "pubmed_xml" / "ncbiutils" / "efetch_5_articles.xml", ROOT / "tests" / "data" / "hostile" / "wrong-root.xml",
          ROOT / "tests" / "data" / "hostile" / "mismatched-inline-tags.xml"]


@pytest.fixture(scope="module")
def sentinel_s3(tmp_path_factory):
    """A SeaweedFS of this module's own, whose only identity is the sentinel key pair."""
    server = S3Server(tmp_path_factory.mktemp("s3-sentinel"))
    server.env.update({"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _fs(server, secret=SECRET) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(key=KEY_ID, secret=secret, client_kwargs={"endpoint_url": server.endpoint})


def _pubmine(server, tmp: Path, run_id: str, storage_options: dict, env_creds: dict, *inputs: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"RAY_ADDRESS": "", "TMPDIR": str(tmp), "AWS_DEFAULT_REGION": "us-east-1", **env_creds})
    argv = [sys.executable, "-m", "pipeline.cli", "run", "-c", str(ROOT / "configs" / "local.yaml"),
            "--store", f"s3://pubmine/{run_id}-store", "--set", f"run_id={run_id}",
            "--set", f"extract.model=s3://pubmine/models/tiny", "--set", "extract.normalizer=none",
            "--set", "extract.relations=[]", "--set", "extract.precision=fp32", "--set", "report.gold=none", "--set", "index.enabled=false",
            "--set", "ray.num_cpus=2", "--set", f"storage_options={json.dumps(storage_options)}", *inputs]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _scan(blob: bytes, where: str, found: list) -> None:
    for needle in (KEY_ID, SECRET, WRONG):
        if needle.encode() in blob:
            found.append(f"{needle[:16]}... in {where}")


def _scan_store(fs: s3fs.S3FileSystem, found: list) -> int:
    n = 0
    for path in fs.find("pubmine"):
        blob = fs.cat_file(path)
        n += 1
        _scan(blob, f"s3://{path}", found)
        if path.endswith(".parquet"):  # compressed pages hide strings from a byte scan: decode them
            found.extend(f"{n[:16]}... in s3://{path} (rows)"
                         for n in _holds(pq.read_table(io.BytesIO(blob)), (KEY_ID, SECRET, WRONG)))
    return n


def _scan_tree(root: Path, found: list) -> int:
    n = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                _scan(path.read_bytes(), str(path), found)
                n += 1
            except OSError:
                pass  # a socket or a file Ray removed meanwhile
    return n


def test_untrusted_s3_credentials_never_appear_in_outputs_logs_or_errors(sentinel_s3, tiny_model, tmp_path):
    fs = _fs(sentinel_s3)
    fs.makedirs("pubmine", exist_ok=True)  # infra/local/s3.sh may have made the bucket already
    fs.put(str(tiny_model), "pubmine/models/tiny", recursive=True)
    for p in INPUTS:
        fs.put_file(str(p), f"pubmine/inputs/{p.name}")
    inputs = [f"s3://pubmine/inputs/{p.name}" for p in INPUTS]
    endpoint = {"s3": {"endpoint_url": sentinel_s3.endpoint}}
    tmp = Path(tempfile.mkdtemp(prefix="pm-", dir="/tmp"))  # short: Ray's socket paths live below it
    found: list[str] = []
    try:
        # 1. the standard chain: credentials only in the environment
        env_run = _pubmine(sentinel_s3, tmp, "env", endpoint, {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET},
                           *inputs)
        assert env_run.returncode == 0, env_run.stderr[-3000:]
        # 2. credentials in the config's storage_options (masked wherever the config is recorded)
        cfg_run = _pubmine(sentinel_s3, tmp, "cfg", {"s3": {**endpoint["s3"], "key": KEY_ID, "secret": SECRET}}, {},
                           *inputs)
        assert cfg_run.returncode == 0, cfg_run.stderr[-3000:]
        # 3. a wrong secret: the run fails with a message that names the store, not the credentials
        bad_run = _pubmine(sentinel_s3, tmp, "bad", {"s3": {**endpoint["s3"], "key": KEY_ID, "secret": WRONG,
                                                           "retries": 1}}, {}, *inputs)
        assert bad_run.returncode != 0
        assert "access was refused" in bad_run.stderr and "s3://pubmine/bad-store" in bad_run.stderr, bad_run.stderr[-2000:]
        for run, name in ((env_run, "env"), (cfg_run, "cfg"), (bad_run, "bad")):
            _scan((run.stdout + run.stderr).encode(), f"the {name} run's output", found)
        objects = _scan_store(fs, found)
        logs = _scan_tree(tmp, found)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert found == []
    for run_id in ("env", "cfg"):  # the runs did write what the scan read
        manifest = json.loads(fs.cat_file(f"pubmine/{run_id}-store/snapshots/{run_id}/_manifest.json"))
        assert manifest["counts"]["documents"] == 7 and manifest["counts"]["rejects"] == 2
    assert "***" in json.dumps(json.loads(fs.cat_file("pubmine/cfg-store/snapshots/cfg/_manifest.json"))["config"])
    assert objects > 50 and logs > 20, (objects, logs)
