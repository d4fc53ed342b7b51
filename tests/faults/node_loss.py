"""A worker node removed while the parse tasks run, on a simulated multi-node cluster
(``ray.cluster_utils.Cluster``: a head that runs only the driver, two 1-CPU workers, each running one
of the two 1-CPU parse tasks; one worker is removed once the parse has started, so its task is lost
and retried on the other, which then also runs extraction alone). Run by tests/test_faults.py in its own process: a
second Ray cannot start beside the test session's. Nodes are only removed from the helper thread
(Ray adds nodes from the main thread only).

    python -m tests.faults.node_loss STORE MODEL INPUT...   -> the run's summary as one JSON line
"""

import json
import sys
import threading
import time

import ray
from ray.cluster_utils import Cluster

from pipeline.config import load_config
from pipeline.driver import run
from pipeline.storage import Store
from tests.conftest import ROOT


def main(store: str, model: str, inputs: list[str]) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1, memory=6 * 2**30) for _ in range(2)]
    ray.init(address=cluster.address, log_to_driver=True)  # the retry of the lost parse task shows on stderr
    cfg = load_config(ROOT / "configs" / "local.yaml",
                      [f"extract.model={model}", "extract.normalizer=none", "extract.relations=[]",
                       "extract.precision=fp32", "run_id=node-loss", "parse.group_mb=0.001",
                       "extract.doc_actors=1", "extract.doc_memory_gb=1", "report.gold=none"],
                      inputs=inputs, store=store)
    removed = []

    def remove_a_worker_mid_parse():
        s = Store(store)
        while not removed:
            if s.glob("state", "parsed", "*") and len(s.glob("state", "parsed", "*", "_SUCCESS")) < len(inputs):
                cluster.remove_node(workers[0])  # a parse task dies with it; Ray retries it elsewhere
                removed.append(time.time())
            time.sleep(0.01)

    threading.Thread(target=remove_a_worker_mid_parse, daemon=True).start()
    summary = run(cfg)
    print(json.dumps({"removed": bool(removed), "documents": summary.documents, "failed_files": summary.failed_files}),
          flush=True)
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
