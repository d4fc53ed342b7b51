"""Whole-run throughput: `pubmine run` on a local Ray against the sum of its stage kernels run alone.

    python -m benchmarks.e2e_throughput [--docs 3000] [--files 3]

The dump: 3,000 real abstracts (BC5CDR, NCBI-disease and BioRED, every split, one copy of each
PMID; cycled with new PMIDs only if the corpora run short) written as ``--files`` MEDLINE update
files. The pipeline is configs/local.yaml with the default models (NER, normalizer, the one-pass
BioRED relation model; ``--per-pair`` runs the same dump again with the per-pair CID stage):
plan, parse (Beam in a Ray task), resolve, publish, tokenizer/NER/document actor pools, commit.

The kernels are the same functions, called in this process one after another on the same input,
with the thread counts the stages get and their models already loaded: parse_shards, resolve,
publish_parsed_shard, Tokenize, NerPredictor, DocumentStage. Orchestration overhead = pipeline wall /
kernel sum - 1: what Ray, Ray Data, task and actor start-up, model loading in the actors, object
transfer and scheduling cost on top of the work itself. The pipeline runs its stages side by side on
every core, so it can beat the kernel sum; the stricter yardstick is printed too: the kernels' thread
seconds spread perfectly over the machine's cores (``overhead_vs_bound``), which no schedule beats.
Last line: RESULT e2e_throughput documents_per_s=<pipeline> kernels_documents_per_s=<v> overhead=<fraction>
overhead_vs_bound=<fraction> [per_pair_documents_per_s=<v> ratio=<per-pair wall / one-pass wall> extract_ratio=<v>]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipeline.config import default_artifact_dir, load_config, shared_data_dir

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ("bc5cdr/pubtator/CDR_TrainingSet.PubTator.txt.gz", "bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt.gz",
           "bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", "ncbi_disease/pubtator/NCBItrainset_corpus.txt.gz",
           "ncbi_disease/pubtator/NCBIdevelopset_corpus.txt", "ncbi_disease/pubtator/NCBItestset_corpus.txt",
           "biored/pubtator/Train.PubTator.gz", "biored/pubtator/Dev.PubTator.gz")


def build_dump(n: int, n_files: int, out: Path) -> list[str]:
    from pipeline.parse.pubtator import read_pubtator, write_medline_xml

    docs, seen = [], set()
    for rel in CORPORA:
        for d in read_pubtator(shared_data_dir() / rel):
            if d.pmid not in seen:
                seen.add(d.pmid)
                docs.append(d)
    base = list(docs)
    k = 1
    while len(docs) < n:  # only if the corpora run short: copies with new PMIDs
        docs.extend(dataclasses.replace(d, pmid=d.pmid + 90_000_000 * k) for d in base[: n - len(docs)])
        k += 1
    docs = docs[:n]
    files = []
    per = -(-n // n_files)
    for i in range(n_files):
        path = out / f"pubmed26n{1501 + i:04d}.xml.gz"
        write_medline_xml(docs[i * per : (i + 1) * per], path)
        files.append(str(path))
    return files


def kernels(cfg, work: Path) -> dict[str, float]:
    """Each stage's function alone, in this process, on the same input; model loading not timed."""
    import pyarrow as pa
    import torch

    from pipeline import publish, resolve
    from pipeline.beam.run import parse_shards
    from pipeline.layout import DOCUMENTS_FILE, live_file, parsed_prefix, partition_groups
    from pipeline.plan import list_inputs, plan_shards
    from pipeline.storage import Store
    from workers.inference.stages import DocumentStage, NerPredictor, StageResources, Tokenize

    ex = cfg.extract
    store = Store(str(work / "kstore"))
    run_id = "kernel-run"
    shards = plan_shards(list_inputs(cfg.inputs, {}), {})
    out: dict[str, float] = {}
    t = time.perf_counter()
    parse_shards(shards, store, reuse=False)
    out["parse"] = time.perf_counter() - t

    # the driver's resolve tasks, called here one after another: keys per shard, then each group
    t = time.perf_counter()
    for s in shards:
        resolve.write_keys(store.root, {}, s.fingerprint)
    records = sum(store.parquet_rows(*parsed_prefix(s.fingerprint), DOCUMENTS_FILE) for s in shards)
    groups = partition_groups(-(-records // cfg.resolve.group_documents))
    listed = [(i, s.fingerprint) for i, s in enumerate(shards)]
    for g, parts in enumerate(groups):
        resolve.resolve_group(store.root, {}, run_id, g, parts, listed, None, False)
    out["resolve"] = time.perf_counter() - t

    t = time.perf_counter()
    blocks = []
    for i, s in enumerate(shards):
        counts = publish.publish_parsed_shard(store.root, {}, run_id, i, s.fingerprint,
                                              [live_file(g) for g in range(len(groups))], ex.batch_size)
        blocks.extend(name for name, _ in counts["blocks"])
    out["publish text"] = time.perf_counter() - t

    model = ex.model_url()
    tok = Tokenize(model, store_url=store.root, run_id=run_id)
    t = time.perf_counter()
    tokenized = [tok(pa.table({"block": [b]})) for b in blocks]  # reads the block, as the actor does
    out["tokenize"] = time.perf_counter() - t

    ner_threads = StageResources(ex.num_cpus_per_actor).threads
    ner = NerPredictor(model, max_length=ex.max_length, stride=ex.stride, max_tokens_per_batch=ex.max_tokens_per_batch,
                       precision=ex.precision, num_threads=ner_threads)
    t = time.perf_counter()
    tagged = [ner(b) for b in tokenized]
    out["NER"] = time.perf_counter() - t

    doc = DocumentStage(store.root, run_id, "kernel", "kernel-xfp", normalizer_url=ex.normalizer_url(),
                        relation_urls=ex.relation_urls(), precision=ex.precision,
                        num_threads=StageResources(ex.doc_num_cpus).threads, keep_unlinked_from=ex.keep_unlinked_from)
    t = time.perf_counter()
    counts = pa.concat_tables([doc(b) for b in tagged])
    out["link + relations"] = time.perf_counter() - t
    torch.set_num_threads(2)
    out["_relations"] = sum(counts.column("relations").to_pylist())
    # thread-seconds: what each kernel occupies of the machine (parse, resolve, publish: one thread)
    out["_thread_seconds"] = (out["parse"] + out["resolve"] + out["publish text"] + out["tokenize"]
                              + out["NER"] * ner_threads + out["link + relations"] * StageResources(ex.doc_num_cpus).threads)
    return out


def main() -> None:
    from pipeline.driver import run
    from workers.inference.artifacts import artifact_exists

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--files", type=int, default=3)
    ap.add_argument("--keep", default=None, help="keep the dump and stores here")
    ap.add_argument("--per-pair", action="store_true",
                    help="also run the same dump with today's per-pair relation stage (default-cid) in place of the "
                         "one-pass model, and print the ratio")
    args = ap.parse_args()
    from benchmarks.e2e_bc5cdr import ensure_default_model

    ensure_default_model()
    for url in (default_artifact_dir("normalizer"), default_artifact_dir("redoc"), default_artifact_dir("relation")):
        if not artifact_exists(str(url)):
            raise SystemExit(f"no artifact at {url}: run `make model` first")

    with tempfile.TemporaryDirectory(prefix="pubmine-tput-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        files = build_dump(args.docs, args.files, work)
        # report.gold=none: the gold spot-check is a fixed cost per night, not throughput
        cfg = load_config(ROOT / "configs/local.yaml", ["parse.reuse=false", "report.gold=none"], inputs=files, store=str(work / "store"))
        t0 = time.perf_counter()
        summary = run(cfg)
        wall = time.perf_counter() - t0
        k = kernels(cfg, work)
        pp = None
        if args.per_pair:  # the same run, the relation stage swapped for the per-pair CID classifier
            pp_cfg = load_config(ROOT / "configs/local.yaml", ["parse.reuse=false", "report.gold=none",
                                                                "extract.relations=[default-cid]"],
                                 inputs=files, store=str(work / "store-per-pair"))
            t0 = time.perf_counter()
            pp_summary = run(pp_cfg)
            pp = (time.perf_counter() - t0, pp_summary)

    import os

    n_rel = k.pop("_relations")
    bound = k.pop("_thread_seconds") / (cfg.ray.num_cpus or os.cpu_count())
    ksum = sum(k.values())
    overhead = wall / ksum - 1
    t = Table(title=f"pubmine run on {summary.counts.documents:,} abstracts ({summary.counts.sentences:,} sentences, "
                    f"{sum(summary.counts.entities_by_type.values()):,} entities, {summary.counts.relations:,} relations) vs its kernels",
              title_justify="left")
    for col in ("stage", "pipeline s (driver's timings)", "kernel alone s"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    pt = summary.timings
    t.add_row("plan", f"{pt.get('plan', 0):.1f}", "")
    t.add_row("parse", f"{pt.get('parse', 0):.1f}", f"{k['parse']:.1f}")
    t.add_row("resolve", f"{pt.get('resolve', 0):.1f}", f"{k['resolve']:.1f}")
    t.add_row("publish text", f"{pt.get('publish_text', 0):.1f}", f"{k['publish text']:.1f}")
    t.add_row("extract: tokenize / NER / link + relations", f"{pt.get('extract', 0):.1f}",
              f"{k['tokenize']:.1f} / {k['NER']:.1f} / {k['link + relations']:.1f}")
    t.add_row("knowledge / index / commit", f"{pt.get('knowledge', 0):.1f} / {pt.get('index', 0):.1f} / "
              f"{pt.get('commit', 0):.1f}", "")
    t.add_row("[bold]total[/bold] (wall, Ray start included)", f"[bold]{wall:.1f}[/bold]", f"[bold]{ksum:.1f}[/bold]")
    t.add_row("kernels' thread-seconds spread over every core (a bound)", "", f"{bound:.1f}")
    Console(highlight=False, width=150).print(t)
    if n_rel != summary.counts.relations:
        print(f"WARNING: the kernels found {n_rel} relations, the pipeline {summary.counts.relations}")
    print(f"documents/s: pipeline {summary.counts.documents / wall:.1f}, kernels {summary.counts.documents / ksum:.1f}; "
          f"orchestration overhead {100 * overhead:+.1f}% (target <= 15%); "
          f"{100 * (wall / bound - 1):+.1f}% above the perfectly parallel bound")
    extra = ""
    if pp is not None:
        pp_wall, pps = pp
        print(f"the same run with the per-pair relation stage (default-cid): {pp_wall:.1f} s wall, extract "
              f"{pps.timings.get('extract', 0):.1f} s, {pps.counts.relations:,} relations; one pass: {wall:.1f} s, extract "
              f"{pt.get('extract', 0):.1f} s, {summary.counts.relations:,} relations of {len(summary.counts.relations_by_type)} types")
        extra = (f" per_pair_documents_per_s={pps.counts.documents / pp_wall:.2f} ratio={pp_wall / wall:.2f} "
                 f"extract_ratio={pps.timings.get('extract', 0) / max(pt.get('extract', 0), 1e-9):.2f}")
    print(f"RESULT e2e_throughput documents_per_s={summary.counts.documents / wall:.2f} "
          f"kernels_documents_per_s={summary.counts.documents / ksum:.2f} overhead={overhead:.4f} "
          f"overhead_vs_bound={wall / bound - 1:.4f}{extra}")


if __name__ == "__main__":
    main()
