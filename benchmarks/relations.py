"""Relation extraction cost: today's per-pair classifier against the one-pass document model.

    python -m benchmarks.relations [--per-pair URL] [--one-pass URL] [--docs 200] [--threads 2]

Same run, same machine, same threads and precision, same documents (BC5CDR test abstracts, real
PubMed text) and the same entities (their gold Chemical and Disease concepts, as a linker would
give them). The one-pass model (``make model``'s default-redoc, BioRED's types) encodes each
document once and scores every Chemical-Disease concept pair from it. The per-pair model (the
BC5CDR CID classifier, ``make model``'s default-cid) gives each candidate pair its own encoder pass
over the pair's marked sentences, and is timed twice:
- on the same candidate pairs as the one-pass model: every pair of the document (its sentence
  window widened to the whole document) -- the RESULT's ``per_pair_*`` keys;
- at its own window (pairs whose mentions come within ``window`` sentences, as the pipeline runs it:
  fewer pairs, each a shorter text) -- ``window_*`` keys, so the saving is not overstated.
Each is timed after one warm-up call on other documents. Last line:
RESULT relations per_pair_docs_per_s=<x> one_pass_docs_per_s=<y> ratio=<y/x> per_pair_pairs_per_s=<x>
one_pass_pairs_per_s=<y> window_docs_per_s=<z> window_ratio=<y/z> window_pairs=<n> pairs=<n>
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from pipeline.config import artifact_url, shared_data_dir

TYPES = ("Chemical", "Disease")


def documents(n: int, skip: int = 0):
    """(text, sentences as (offset, text), {(type, id): [mention]}) of BC5CDR test abstracts."""
    from pipeline.parse.pubtator import doc_sentences, gold_ids, read_pubtator
    from workers.inference.docre import Entity

    out = []
    for doc in list(read_pubtator(shared_data_dir() / "bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz"))[skip:skip + n]:
        concepts: dict[tuple[str, str], list] = defaultdict(list)
        for m in sorted(doc.mentions, key=lambda m: (m.start, m.end)):
            if m.type in TYPES:
                for cid in sorted(gold_ids(m.ids, m.type)):
                    concepts[m.type, cid].append(Entity(m.type, cid, ((m.start, m.end),)))
        out.append((doc.text, list(doc_sentences(doc)), dict(concepts)))
    return out


class _Span:  # what concept_pair_candidates reads of a mention
    def __init__(self, start: int, end: int):
        self.start, self.end = start, end


def run_per_pair(clf, docs, whole_document: bool) -> tuple[float, int]:
    from workers.inference.relations import concept_pair_candidates

    t = time.perf_counter()
    texts = []
    for text, sents, concepts in docs:
        spans = {k: [_Span(*e.mentions[0]) for e in v] for k, v in concepts.items()}
        window = len(sents) + 1 if whole_document else clf.window
        texts += [c.text for c in concept_pair_candidates(text, sents, spans, clf.type_pairs, window)]
    clf.predict_scored(texts)
    return time.perf_counter() - t, len(texts)


def run_one_pass(extractor, docs) -> tuple[float, int]:
    from workers.inference.docre import Entity

    t = time.perf_counter()
    inputs = [(text, [(s, s + len(x)) for s, x in sents],
               [Entity(t_, c, tuple(e.mentions[0] for e in v)) for (t_, c), v in concepts.items()])
              for text, sents, concepts in docs]
    pairs = sum(len(p) for p in extractor.predict(inputs))
    return time.perf_counter() - t, pairs


def main() -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    from workers.inference.artifacts import stage_artifact
    from workers.inference.device import resolve_precision
    from workers.inference.docre import DocRelationExtractor
    from workers.inference.relations import RelationClassifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-pair", default="default", help="per-pair relation artifact (default: default-cid)")
    ap.add_argument("--one-pass", default="default-redoc", help="document-level (re-doc) artifact")
    ap.add_argument("--docs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clf = RelationClassifier.load(stage_artifact(artifact_url(args.per_pair, "relation")), precision=args.precision)
    extractor = DocRelationExtractor.load(stage_artifact(artifact_url(args.one_pass, "redoc")), precision=args.precision)
    warm, docs = documents(8, skip=args.docs), documents(args.docs)
    run_per_pair(clf, warm, True), run_one_pass(extractor, warm)
    pp_s, pp_pairs = run_per_pair(clf, docs, True)
    op_s, op_pairs = run_one_pass(extractor, docs)
    win_s, win_pairs = run_per_pair(clf, docs, False)
    n = len(docs)
    table = Table(title=f"{n} BC5CDR test abstracts, gold Chemical/Disease concepts, {args.threads} threads, "
                        f"{resolve_precision(args.precision, 'cpu') or 'fp32'}")
    for col in ("model", "pairs scored", "seconds", "docs/s", "pairs/s"):
        table.add_column(col, justify="right" if col != "model" else "left")
    model = clf.manifest.get("model_id")
    table.add_row(f"per pair ({model}), every pair", str(pp_pairs), f"{pp_s:.1f}", f"{n / pp_s:.2f}", f"{pp_pairs / pp_s:.1f}")
    table.add_row(f"one pass ({extractor.model_id}), every pair", str(op_pairs), f"{op_s:.1f}", f"{n / op_s:.2f}",
                  f"{op_pairs / op_s:.1f}")
    table.add_row(f"per pair ({model}), within {clf.window} sentences", str(win_pairs), f"{win_s:.1f}",
                  f"{n / win_s:.2f}", f"{win_pairs / win_s:.1f}")
    Console().print(table)
    print(f"RESULT relations per_pair_docs_per_s={n / pp_s:.3f} one_pass_docs_per_s={n / op_s:.3f} "
          f"ratio={pp_s / op_s:.2f} per_pair_pairs_per_s={pp_pairs / pp_s:.1f} one_pass_pairs_per_s={op_pairs / op_s:.1f} "
          f"window_docs_per_s={n / win_s:.3f} window_ratio={win_s / op_s:.2f} window_pairs={win_pairs} pairs={op_pairs}")


if __name__ == "__main__":
    main()
