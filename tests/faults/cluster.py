"""Faults on a simulated multi-node cluster writing to the store given (the tests give it the real
SeaweedFS server): ``ray.cluster_utils.Cluster``, a head that runs only the driver and two 1-CPU
worker nodes. Run by tests/test_faults.py in its own process: a second Ray cannot start beside the
test session's. Nodes are only removed from the helper thread (Ray adds nodes from the main thread only).

    python -m tests.faults.cluster FAULT[,FAULT...] STORE_BASE STORAGE_OPTIONS_JSON MODEL INPUT...
        -> a FAULT-RESULT {json} line per fault, each run into STORE_BASE/fault-<fault>

FAULT is ``node``: a worker node removed once parsing has started (each node runs one of the two
1-CPU parse tasks, so one is lost and retried on the other, which then also runs extraction alone);
or an actor class, ``NerPredictor`` or ``DocumentStage``: that actor's process SIGKILLed once the
first extracted part is in the store (Ray restarts the actor and retries the blocks it held).
"""

import json
import os
import signal
import sys
import threading
import time

import ray
from ray.cluster_utils import Cluster

from pipeline.config import load_config
from pipeline.driver import run
from pipeline.storage import Store
from tests.conftest import ROOT


def actor_pids(name: str) -> list[int]:
    """Worker processes of a Ray actor class (Ray titles an actor's process ray::<Class>...)."""
    out = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{entry}/cmdline", "rb").read()
        except OSError:
            continue
        if cmd.startswith(b"ray::") and name.encode() in cmd:
            out.append(int(entry))
    return out


def run_with_fault(cluster: Cluster, workers: list, fault: str, store: str, storage_options: str, model: str,
                   inputs: list[str]) -> dict:
    cfg = load_config(ROOT / "configs" / "local.yaml",
                      [f"extract.model={model}", "extract.normalizer=none", "extract.relations=[]",
                       "extract.precision=fp32", "run_id=fault", "parse.group_mb=0.001",
                       "extract.doc_actors=1", "extract.doc_memory_gb=1", "report.gold=none", "index.enabled=false",
                       f"storage_options={storage_options}"],
                      inputs=inputs, store=store)
    s = Store(store, json.loads(storage_options))
    done: list = []

    def remove_a_worker_mid_parse():
        while not done:
            if s.glob("state", "parsed", "*") and len(s.glob("state", "parsed", "*", "_SUCCESS")) < len(inputs):
                cluster.remove_node(workers[0])  # a parse task dies with it; Ray retries it elsewhere
                done.append(time.time())
            time.sleep(0.01)

    def kill_an_actor_mid_extraction():
        deadline = time.time() + 300
        while not done and time.time() < deadline:
            if s.glob("state", "extracted", "*", "parts", "*", "docs.parquet"):
                for pid in actor_pids(fault)[:1]:
                    os.kill(pid, signal.SIGKILL)
                    done.append(pid)
            time.sleep(0.02)

    watcher = threading.Thread(target=remove_a_worker_mid_parse if fault == "node" else kill_an_actor_mid_extraction,
                               daemon=True)
    watcher.start()
    summary = run(cfg)
    happened = bool(done)
    done.append("run over")  # the watcher stops
    return {"fault": fault, "happened": happened, "documents": summary.counts.documents,
            "failed_files": summary.failed_files}


def main(faults: str, store_base: str, storage_options: str, model: str, inputs: list[str]) -> None:
    """Each fault in turn on one cluster (the node fault last: it takes a worker away), each run into
    ``<store_base>/fault-<fault>``."""
    order = sorted(faults.split(","), key=lambda f: f == "node")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1, memory=6 * 2**30) for _ in range(2)]
    ray.init(address=cluster.address, log_to_driver=True)  # the retry of the lost parse task shows on stderr
    for fault in order:
        result = run_with_fault(cluster, workers, fault, f"{store_base}/fault-{fault.lower()}", storage_options,
                                model, inputs)
        # one marked line each: Ray's own messages (log_to_driver) may still arrive on stdout after it
        print("FAULT-RESULT " + json.dumps(result), flush=True)
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
