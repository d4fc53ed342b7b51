"""`ray job submit` against a head started with `ray start --head`, as a nightly run is launched."""

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.storage import Store
from tests.conftest import DATA, ROOT, free_port

pytestmark = pytest.mark.slow  # whole pubmine runs in other processes

RUNTIME_EXCLUDES = [".git", ".venv", "store", ".cache", "**/__pycache__", "*.egg-info", ".pytest_cache"]


def _ray(*args, env, timeout=120):
    ray_bin = str(Path(sys.executable).parent / "ray")
    return subprocess.run([ray_bin, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def ray_head():
    temp = tempfile.mkdtemp(prefix="rj", dir="/tmp")  # short: Ray's socket paths must fit in 107 chars
    # every port the head opens is chosen here: another Ray on the machine (the session's in-process
    # one) already holds the defaults, e.g. the dashboard agent's 52365
    ports: list[int] = []
    while len(ports) < 7:
        p = free_port()
        if p not in ports:
            ports.append(p)
    port, dash, agent, agent_grpc, metrics, renv, client = ports
    token = secrets.token_hex(16)  # token auth on, as a real cluster should run
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    env.pop("RAY_ADDRESS", None)
    log = open(os.path.join(temp, "head.log"), "wb")
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", f"--port={port}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--include-dashboard=true", "--num-cpus=2",
         f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
         f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={renv}", f"--ray-client-server-port={client}",
         f"--temp-dir={temp}", "--disable-usage-stats"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                req = urllib.request.Request(f"{url}/api/version", headers={"Authorization": f"Bearer {token}"})
                with urllib.request.urlopen(req, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if head.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"ray head did not come up: {Path(temp, 'head.log').read_text(errors='replace')[-3000:]}")
            time.sleep(1)
        yield {"url": url, "env": env}
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # stop the head by PID: --block tears down what it started
        try:
            head.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_job_submit_publishes_a_snapshot(ray_head, tiny_model, tmp_path):
    store_dir = tmp_path / "store"
    source = DATA / "pubmed_xml/ncbiutils/efetch_5_articles.xml"
    runtime_env = {"excludes": RUNTIME_EXCLUDES,
                   "env_vars": {"PUBMINE_HOME": str(tmp_path / "home"), "PUBMINE_DATA": str(DATA)}}
    entrypoint = (f"{sys.executable} -m pipeline.cli run --config configs/local.yaml --input {source} "
                  f"--store {store_dir} --set extract.model={tiny_model} --set extract.normalizer=none --set extract.relations=[] --set extract.precision=fp32 "
                  f"--set run_id=job-run --set report.gold={DATA / 'bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz'} "
                  f"--set report.gold_documents=5")
    for _ in range(30):  # the head's job agent may need a few seconds after the dashboard answers
        out = _ray("job", "submit", "--address", ray_head["url"], "--no-wait", "--working-dir", str(ROOT),
                   "--runtime-env-json", json.dumps(runtime_env), "--submission-id", "pubmine-test-job", "--",
                   *entrypoint.split(), env=ray_head["env"])
        if out.returncode == 0 or "No available agent" not in out.stdout + out.stderr:
            break
        time.sleep(2)
    assert out.returncode == 0, out.stdout + out.stderr
    deadline = time.time() + 300
    status = ""
    while time.time() < deadline:
        st = _ray("job", "status", "--address", ray_head["url"], "pubmine-test-job", env=ray_head["env"])
        status = (st.stdout + st.stderr).lower()
        if any(f"job 'pubmine-test-job' {s}" in status for s in ("succeeded", "failed", "stopped")):
            break
        time.sleep(3)
    logs = _ray("job", "logs", "--address", ray_head["url"], "pubmine-test-job", env=ray_head["env"]).stdout
    assert "job 'pubmine-test-job' succeeded" in status, f"job did not succeed: {status}\n{logs[-4000:]}"
    assert "pubmine run job-run" in logs and "documents" in logs
    # not a terminal: progress is one line per step with run id, stage and counts; the report is named
    for stage in ("parse", "resolve", "publish text", "extract", "publish entities", "knowledge tables"):
        assert re.search(rf"run=job-run stage={stage} done=\S+ .*finished", logs), (stage, logs[-4000:])
    assert re.search(r"run=job-run stage=extract done=\d+/\d+ block documents=5 entities=\d+", logs)
    assert f"run report: {store_dir}/snapshots/job-run/report.html" in logs
    store = Store(str(store_dir))
    assert store.read_text("LATEST").strip() == "job-run"
    manifest = store.read_json("snapshots", "job-run", "_manifest.json")
    assert manifest["counts"]["documents"] == 5
    assert manifest["spotcheck"]["documents"] == 5 and manifest["report"] == "report.html"
    assert store.read_table("snapshots", "job-run", "documents").num_rows == 5
