"""Full-corpus scale, rehearsed on one machine: a synthetic dump through every stage, at two sizes,
measuring what must not grow with the corpus: the driver's peak memory and Ray's object store.

The dump: the real MEDLINE records in ../shared/data/pubmed_xml, cycled, each copy with a new PMID
(``benchmarks.parse.build_file``), in files of 30,000 citations like NLM's baseline files (the last
one smaller), named pubmed26nNNNN.xml.gz, written once under .cache/bench/scale/. The models: a tiny
random-weight BERT (2 layers, hidden 32, the real MiniLM tokenizer, its "O" logit raised so that it
tags a few words, as a real model does), a tiny normalizer over a six-name dictionary and a tiny CID
relation classifier, so extraction runs every code path and the model is not the cost.

Each size runs in a process of its own (``--one N``), so the driver's peak RSS is that process's own;
a thread samples Ray's object store (plasma in use + spilled) every half second.

    python -m benchmarks.scale [--sizes 100000 1000000]

Last line: RESULT scale citations=<largest> driver_peak_mb=<m> object_store_peak_mb=<m> seconds=<s>
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cache" / "bench" / "scale"
PER_FILE = 30_000  # citations per NLM baseline file
FIRST_PMID = 50_000_000


def dump(n: int) -> list[Path]:
    """n citations in files of PER_FILE (cached): the same files serve every size, so the 100k dump
    is the first files of the 1M one."""
    from benchmarks.parse import build_file

    files = []
    for k in range(-(-n // PER_FILE)):
        count = min(PER_FILE, n - k * PER_FILE)
        name = f"pubmed26n{k + 1:04d}.xml.gz" if count == PER_FILE else f"pubmed26n{k + 1:04d}-{count}.xml.gz"
        files.append(build_file(count, WORK / "dump" / name, first_pmid=FIRST_PMID + k * PER_FILE))
    return files


def models() -> dict[str, str]:
    from workers.inference.normalize import Dictionary
    from workers.training.normalizer import build_normalizer
    from workers.training.tiny import tiny_bert, tiny_relation_bert

    folder = WORK / "models"
    ner, norm, cid = folder / "ner", folder / "normalizer", folder / "cid"
    if not (ner / "pubmine.json").exists():
        tiny_bert(ner, o_bias=0.25, name="scale-tiny-ner")
    if not (cid / "pubmine.json").exists():
        tiny_relation_bert(cid, name="scale-tiny-cid")
    if not (norm / "pubmine.json").exists():
        d = Dictionary()
        for kind, cid_, name, rank in [("Chemical", "MESH:D009270", "naloxone", 1), ("Chemical", "MESH:D003000", "clonidine", 1),
                                       ("Chemical", "MESH:D002118", "calcium", 1), ("Disease", "MESH:D003693", "delirium", 1),
                                       ("Disease", "MESH:D006973", "hypertension", 1), ("Disease", "MESH:D009369", "cancer", 1)]:
            d.add(kind, cid_, name, rank, preferred=True)
        d.sources.append("scale-benchmark")
        build_normalizer(str(norm), encoder=str(ner), threshold=0.9, progress=False, log=lambda *_: None, dictionary=d)
    return {"ner": str(ner), "normalizer": str(norm), "cid": str(cid)}


class ObjectStoreSampler(threading.Thread):
    """Ray's object store in use (plasma + spilled), every ``every`` seconds, through Ray's own summary."""

    def __init__(self, every: float = 0.5):
        super().__init__(daemon=True)
        self.every, self.peak_mb, self.samples, self._done = every, 0.0, 0, threading.Event()

    def run(self) -> None:
        import ray
        from ray._private.internal_api import memory_summary

        while not self._done.is_set():
            if ray.is_initialized():
                try:
                    text = memory_summary(stats_only=True)
                    used = sum(_mib(m) for m in re.findall(r"Plasma memory usage ([\d.]+ \w+)", text))
                    spilled = sum(_mib(m) for m in re.findall(r"Spilled ([\d.]+ \w+)", text))
                    self.peak_mb = max(self.peak_mb, used + spilled)
                    self.samples += 1
                except Exception:
                    pass
            self._done.wait(self.every)

    def stop(self) -> None:
        self._done.set()
        self.join(5)


def _mib(text: str) -> float:
    value, unit = text.split()
    return float(value) * {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}.get(unit, 1)


def du(path: Path) -> dict[str, int]:
    """Bytes under each top folder of the store: snapshots/<run> tables, state/parsed, state/extracted."""
    out: dict[str, int] = {}
    for f in path.rglob("*"):
        if f.is_file():
            rel = f.relative_to(path).parts
            key = "/".join(rel[:3:2]) if rel[0] == "snapshots" and len(rel) > 2 else "/".join(rel[:2])
            out[key] = out.get(key, 0) + f.stat().st_size
    return out


def one(n: int) -> dict:
    """One size, in this process: a clean store, a run, the measurements (one JSON line)."""
    import ray

    from pipeline.config import load_config
    from pipeline.driver import run

    files, m = dump(n), models()
    store = WORK / f"store-{n}"
    shutil.rmtree(store, ignore_errors=True)
    config = load_config(ROOT / "configs" / "local.yaml", [
        f"extract.model={m['ner']}", f"extract.normalizer={m['normalizer']}", f"extract.relations=[{m['cid']}]",
        "extract.precision=fp32", "extract.batch_size=2048", "extract.max_tokens_per_batch=8192",
        "extract.doc_actors=1", "extract.doc_num_cpus=0.5", "run_id=scale",
        "report.gold=none"], inputs=[str(f) for f in files], store=str(store))
    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False,
             object_store_memory=2 * 2**30)
    sampler = ObjectStoreSampler()
    sampler.start()
    t0 = time.time()
    summary = run(config)
    seconds = time.time() - t0
    sampler.stop()
    ray.shutdown()
    manifest = json.loads((store / "snapshots" / "scale" / "_manifest.json").read_text())
    return {"citations": n, "files": len(files), "seconds": round(seconds, 1),
            "driver_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "object_store_peak_mb": round(sampler.peak_mb, 1), "samples": sampler.samples,
            "documents": summary.counts.documents, "sentences": summary.counts.sentences,
            "entities": sum(summary.counts.entities_by_type.values()), "relations": summary.counts.relations,
            "timings": manifest["timings_s"], "bytes": du(store)}


def extrapolate(small: dict, big: dict, target: int = 38_000_000) -> dict:
    """Time, storage and cost at ``target`` citations on infra/ray/cluster.yaml's cluster, from the
    per-citation cost between the two sizes (the fixed start-up cost cancels) and that cluster's cores."""
    per_citation = (big["seconds"] - small["seconds"]) / (big["citations"] - small["citations"])
    cores_here, cluster_cpu_cores = 2, 8 * 32 + 3 * 48  # cpu_workers 8 x c6i.8xlarge, gpu_workers 3 x g5.12xlarge
    cpu_seconds = per_citation * target * cores_here
    hours = cpu_seconds / cluster_cpu_cores / 3600
    bytes_per = sum(big["bytes"].values()) / big["citations"]
    # on-demand us-east-1 list prices (USD/hour) of the node types in infra/ray/cluster.yaml
    price = 0.384 + 8 * 1.36 + 3 * 5.672
    return {"target": target, "seconds_per_citation_here": per_citation, "cluster_hours": hours,
            "storage_gb": bytes_per * target / 1e9, "cost_usd": hours * price, "price_per_hour": price}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("SCALE " + json.dumps(one(args.one)), flush=True)
        return
    results = []
    for n in sorted(args.sizes):
        print(f"scale: {n:,} citations ...", file=sys.stderr, flush=True)
        out = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--one", str(n)], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, env={**os.environ, "RAY_ADDRESS": ""})
        line = next((l for l in out.stdout.splitlines() if l.startswith("SCALE ")), None)
        if out.returncode or line is None:
            sys.exit(f"scale: the {n:,}-citation run failed (exit {out.returncode}); its log is above")
        results.append(json.loads(line[6:]))
        (WORK / f"result-{n}.json").write_text(json.dumps(results[-1], indent=2))
    small, big = results[0], results[-1]
    table = Table(title="benchmarks.scale (2 cores, tiny random-weight models)")
    for col in ("citations", "files", "seconds", "citations/s", "driver peak MB", "object store peak MB",
                "sentences", "entities", "store MB"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(f"{r['citations']:,}", str(r["files"]), f"{r['seconds']:.0f}", f"{r['citations'] / r['seconds']:.0f}",
                      f"{r['driver_peak_mb']:.0f}", f"{r['object_store_peak_mb']:.0f}", f"{r['sentences']:,}",
                      f"{r['entities']:,}", f"{sum(r['bytes'].values()) / 2**20:.0f}")
    if len(results) > 1:
        table.add_row(f"ratio {big['citations'] / small['citations']:.0f}x", "", f"{big['seconds'] / small['seconds']:.2f}", "",
                      f"{big['driver_peak_mb'] / small['driver_peak_mb']:.2f}",
                      f"{big['object_store_peak_mb'] / max(small['object_store_peak_mb'], 1):.2f}", "", "", "")
    console = Console()
    console.print(table)
    for r in results:
        console.print(f"{r['citations']:,}: stage seconds " + ", ".join(f"{k} {v:.0f}" for k, v in r["timings"].items()))
    if len(results) > 1:
        x = extrapolate(small, big)
        console.print(f"38M citations on infra/ray/cluster.yaml's CPUs (400 cores; the per-citation cost between the two "
                      f"sizes, {x['seconds_per_citation_here'] * 1e3:.2f} ms on 2 cores here): ~{x['cluster_hours']:.1f} h, "
                      f"~{x['storage_gb']:.0f} GB in the store, ~${x['cost_usd']:.0f} at ${x['price_per_hour']:.2f}/h on demand. "
                      "Extraction with the real models runs on the GPU group: see benchmarks/results/nightly.md.")
    print(f"RESULT scale citations={big['citations']} driver_peak_mb={big['driver_peak_mb']:.0f} "
          f"object_store_peak_mb={big['object_store_peak_mb']:.0f} seconds={big['seconds']:.0f}")


if __name__ == "__main__":
    main()
