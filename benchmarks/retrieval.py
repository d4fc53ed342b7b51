"""Retrieval quality and cost: BM25, dense and fused passage retrieval over a snapshot index.

    python -m benchmarks.retrieval [--distractors 5000] [--scale 100000,1000000] [--queries 200]

Quality. A store holding one snapshot: every document a BioASQ 7B golden question names (its text:
the golden snippets of that PMID, title and abstract sections, in order; the full abstracts are not
in this copy), plus ``--distractors`` real abstracts (BC5CDR, NCBI-disease, BioRED, every split),
split into sentences as the pipeline does. The index is built by ``pipeline.ask.build_snapshot_index``
(the run's index stage). For every golden question with documents: recall@10 (the share of its gold
documents among the documents of the top-10 passages) and MRR@10 (the first gold document's rank
among the distinct documents retrieved), for BM25, dense and their fusion.

Cost. Indexes of ``--scale`` synthetic documents (the real abstracts again under new ids; dense
vectors random unit rows: search cost and bytes depend on the count, not on the values): index
bytes per document, and the latency of a query (p50, p95 over ``--queries`` golden questions) for
each mode, with the peak resident memory of the process, on this machine's cores.
Last line: RESULT retrieval recall10_bm25=<x> recall10_dense=<x> recall10_fused=<x> mrr10_fused=<x> p95_ms=<x>
bytes_per_doc=<x>
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.config import shared_data_dir

GOLDEN = tuple(f"qa/bioasq_golden_7b/Task7BGoldenEnriched/7B{b}_golden.json{'.gz' if b < 5 else ''}" for b in range(1, 6))
CORPORA = ("bc5cdr/pubtator/CDR_TrainingSet.PubTator.txt.gz", "bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt.gz",
           "bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", "ncbi_disease/pubtator/NCBItrainset_corpus.txt.gz",
           "biored/pubtator/Train.PubTator.gz", "biored/pubtator/Dev.PubTator.gz")


def gold_documents(questions) -> dict[str, tuple[str, str]]:
    """PMID -> (title, abstract) from the golden snippets: each section's snippets by their offsets."""
    parts: dict[str, dict[str, dict[int, str]]] = defaultdict(lambda: defaultdict(dict))
    for q in questions:
        for s in q.snippets:
            if s.section in ("title", "abstract") and s.text.strip():
                parts[s.pmid][s.section][s.start] = s.text.strip()
    out = {}
    for pmid, sec in parts.items():
        title = " ".join(t for _, t in sorted(sec.get("title", {}).items())) or "Untitled."
        abstract = " ".join(t for _, t in sorted(sec.get("abstract", {}).items()))
        out[pmid] = (title, abstract)
    return out


def write_corpus(store, run_id: str, docs: list[tuple[str, str, str]]) -> None:
    """(doc_id, title, abstract) as a snapshot's documents, passages and sentences (the parse stage's
    layout: the abstract at len(title) + 1, sentences by ``split_spans``)."""
    from pipeline import schemas
    from pipeline.layout import LATEST, MANIFEST, snapshot_key
    from pipeline.parse.sentences import split_spans

    d_rows, p_rows, s_rows = [], [], []
    for doc_id, title, abstract in docs:
        pmid = int(doc_id.split(":")[1])
        d_rows.append({"doc_id": doc_id, "pmid": pmid, "title": title, "text_sha256": str(hash(title + abstract))})
        k = 0
        for idx, (off, text) in enumerate(((0, title), (len(title) + 1, abstract))):
            p_rows.append({"doc_id": doc_id, "passage_idx": idx, "offset": off, "text": text})
            for a, b in split_spans(text):
                s_rows.append({"doc_id": doc_id, "passage_idx": idx, "sent_idx": k, "start": off + a, "end": off + b,
                               "text": text[a:b]})
                k += 1
    for name, rows in (("documents", d_rows), ("passages", p_rows), ("sentences", s_rows)):
        schema = getattr(schemas, name.upper())
        store.write_table(pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in rows], schema=schema),
                          *snapshot_key(run_id, name, "part-0.parquet"))
    store.write_json({"run_id": run_id}, *snapshot_key(run_id, MANIFEST))
    store.write_text(run_id, LATEST)


def real_abstracts(n: int, skip: set[str]) -> list[tuple[str, str, str]]:
    from pipeline.parse.pubtator import read_pubtator

    out, seen = [], set(skip)
    for rel in CORPORA:
        for d in read_pubtator(shared_data_dir() / rel):
            if str(d.pmid) not in seen:
                seen.add(str(d.pmid))
                out.append((f"pmid:{d.pmid}", d.title, d.abstract))
                if len(out) >= n:
                    return out
    return out


def quality(questions, distractors: int) -> dict:
    from pipeline.ask import build_snapshot_index, open_index
    from pipeline.storage import Store
    from workers.inference.retrieval import DenseEncoder

    gold = gold_documents(questions)
    docs = [(f"pmid:{p}", t, a) for p, (t, a) in sorted(gold.items())] + real_abstracts(distractors, set(gold))
    asked = [q for q in questions if any(d in gold for d in q.documents)]
    with tempfile.TemporaryDirectory(prefix="pubmine-retrieval-") as tmp:
        store = Store(str(Path(tmp) / "store"))
        write_corpus(store, "R1", docs)
        t = time.perf_counter()
        stats = build_snapshot_index(store.url, {}, "R1", None)
        build_s = time.perf_counter() - t
        index = open_index(store, "R1")
        encoder = DenseEncoder(index.meta.get("encoder_name", "minilm"))
        out = {"documents": len(docs), "gold_documents": len(gold), "questions": len(asked), "build_s": build_s,
               "bytes": stats["bytes"]}
        for mode in ("bm25", "dense", "fused"):
            recall, rr, ms = [], [], []
            for q in asked:
                want = {f"pmid:{d}" for d in q.documents if d in gold}
                t = time.perf_counter()
                hits = index.rows(index.search(q.body, encoder, k=10, mode=mode))
                ms.append(1000 * (time.perf_counter() - t))
                ranked = list(dict.fromkeys(h["doc_id"] for h in hits))
                recall.append(len(want & set(ranked)) / len(want))
                rr.append(next((1 / (i + 1) for i, d in enumerate(ranked) if d in want), 0.0))
            out[mode] = {"recall10": float(np.mean(recall)), "mrr10": float(np.mean(rr)),
                         "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}
    return out


def scale(n_docs: int, questions, n_queries: int) -> dict:
    """An index of ``n_docs`` synthetic documents written straight in the index format: real passage
    texts cycled under new ids for BM25, random unit int8 rows for the dense part."""
    import bm25s
    import json

    import pyarrow.parquet as pq

    from workers.inference.retrieval import (BM25_DIR, DENSE_FILE, DENSE_SCALE_FILE, INDEX_META, INDEX_VERSION,
                                             PASSAGES, PASSAGES_FILE, DenseEncoder, RetrievalIndex, _tokens)
    from pipeline.parse.sentences import split_spans

    base = real_abstracts(4000, set())
    texts = []
    for _, title, abstract in base:
        spans = [abstract[a:b] for a, b in split_spans(abstract)]
        texts += [" ".join(spans[i:i + 3]) for i in range(0, max(len(spans) - 2, 1), 2)]
    per_doc = len(texts) / len(base)
    n = int(n_docs * per_doc)
    encoder = DenseEncoder("minilm")
    dim = encoder.model.config.hidden_size
    with tempfile.TemporaryDirectory(prefix="pubmine-scale-") as tmp:
        folder = Path(tmp)
        rng = np.random.default_rng(0)
        vec = np.lib.format.open_memmap(folder / DENSE_FILE, mode="w+", dtype=np.int8, shape=(n, dim))
        for lo in range(0, n, 200_000):
            block = rng.standard_normal((min(200_000, n - lo), dim)).astype(np.float32)
            block /= np.abs(block).max(axis=1, keepdims=True)
            vec[lo:lo + len(block)] = np.round(block * 127).astype(np.int8)
        vec.flush()
        del vec
        np.save(folder / DENSE_SCALE_FILE, np.full((n, 1), 1 / 127, np.float32))
        rows = {"doc_id": [f"pmid:{10_000_000 + int(i / per_doc)}" for i in range(n)],
                "pmid": [10_000_000 + i for i in range(n)], "text_sha256": ["x"] * n, "first_sent": [0] * n,
                "last_sent": [2] * n, "start": [0] * n, "end": [len(texts[i % len(texts)]) for i in range(n)],
                "text": [texts[i % len(texts)] for i in range(n)]}
        pq.write_table(pa.table(rows, schema=PASSAGES), folder / PASSAGES_FILE)
        retriever = bm25s.BM25()
        retriever.index(_tokens(rows["text"]), show_progress=False)
        retriever.save(str(folder / BM25_DIR), show_progress=False)
        del rows, retriever
        (folder / INDEX_META).write_text(json.dumps({"version": INDEX_VERSION, "encoder": encoder.id,
                                                     "encoder_name": "minilm", "passages": n, "documents": n_docs}))
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        index = RetrievalIndex(folder)
        out = {"documents": n_docs, "passages": n, "bytes_per_doc": size / n_docs}
        queries = [q.body for q in questions][:n_queries]
        for mode in ("bm25", "dense", "fused"):
            ms = []
            for qtext in queries:
                t = time.perf_counter()
                index.search(qtext, encoder, k=10, mode=mode)
                ms.append(1000 * (time.perf_counter() - t))
            out[mode] = {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from pipeline.bioasq import read_golden

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--distractors", type=int, default=5000, help="real abstracts besides the gold documents")
    ap.add_argument("--scale", default="100000,1000000", help="synthetic corpus sizes for bytes and latency ('' skips)")
    ap.add_argument("--queries", type=int, default=200, help="questions timed at each scale")
    ap.add_argument("--questions", type=int, default=0, help=">0: only the first n golden questions (smoke runs)")
    args = ap.parse_args()
    questions = read_golden([shared_data_dir() / g for g in GOLDEN])
    if args.questions:
        questions = questions[: args.questions]
    q = quality(questions, args.distractors)
    t = Table(title=f"BioASQ 7B questions ({q['questions']}) over {q['documents']:,} documents ({q['gold_documents']} gold); "
                    f"index built in {q['build_s']:.0f} s, {q['bytes'] / 1e6:.1f} MB", title_justify="left")
    for col in ("retrieval", "recall@10", "MRR@10", "p50 ms", "p95 ms"):
        t.add_column(col, justify="left" if col == "retrieval" else "right")
    for mode in ("bm25", "dense", "fused"):
        m = q[mode]
        t.add_row(mode, f"{m['recall10']:.4f}", f"{m['mrr10']:.4f}", f"{m['p50_ms']:.1f}", f"{m['p95_ms']:.1f}")
    Console(highlight=False, width=140).print(t)
    scaled = [scale(int(n), questions, args.queries) for n in args.scale.split(",") if n.strip()]
    for s in scaled:
        print(f"{s['documents']:,} synthetic documents ({s['passages']:,} passages): {s['bytes_per_doc']:.0f} bytes/document; "
              + "; ".join(f"{m} p50 {s[m]['p50_ms']:.0f} ms p95 {s[m]['p95_ms']:.0f} ms" for m in ("bm25", "dense", "fused"))
              + f"; peak RSS {s['peak_rss_mb']:.0f} MB")
    big = scaled[-1] if scaled else {"fused": q["fused"], "bytes_per_doc": q["bytes"] / q["documents"]}
    print(f"RESULT retrieval recall10_bm25={q['bm25']['recall10']:.4f} recall10_dense={q['dense']['recall10']:.4f} "
          f"recall10_fused={q['fused']['recall10']:.4f} mrr10_fused={q['fused']['mrr10']:.4f} "
          f"p95_ms={big['fused']['p95_ms']:.1f} bytes_per_doc={big['bytes_per_doc']:.0f}")


if __name__ == "__main__":
    main()
