"""Relation extraction cost: today's per-pair classifier against the one-pass document model.

    python -m benchmarks.relations [--corpus biored|bc5cdr] [--per-pair URL] [--one-pass URL]
                                   [--docs 100] [--threads 2]

Same run, same machine, same threads and precision, same documents (real PubMed abstracts), the
same entities (their gold concepts, as a linker would give them) and the same candidate pairs:
every pair of concepts of the types the one-pass model relates whose mentions both reach its
encoding, as the one-pass model enumerates them. The one-pass model (``make model``'s default-redoc,
BioRED's types) encodes each document once and scores every such pair from it. The per-pair model
(``make model``'s default-cid: the classifier the document stage ran before) gives each pair its
own encoder pass over the pair's marked sentences; its cost per pair does not depend on which
labels its head has, so it is timed on the very pairs the one pass scores (the RESULT's
``per_pair_*`` keys), and once more at its own window over its own type pairs (Chemical-Disease
within ``window`` sentences, as the pipeline ran it: fewer pairs, each a shorter text; ``window_*``
keys), so the saving is not overstated.

``--corpus biored`` (the default): BioRED Dev's abstracts with their gold Chemical, Disease, Gene
and Variant concepts, the mix of types the pipeline's NER finds in PubMed; ``--corpus bc5cdr``:
BC5CDR test abstracts with their gold Chemical and Disease concepts only (few pairs a document:
the per-pair scheme's best case). Each is timed after one warm-up call on other documents. Last line:
RESULT relations per_pair_docs_per_s=<x> one_pass_docs_per_s=<y> ratio=<y/x> per_pair_pairs_per_s=<x>
one_pass_pairs_per_s=<y> window_docs_per_s=<z> window_ratio=<y/z> window_pairs=<n> pairs=<n> corpus=<c>
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from pipeline.config import artifact_url, shared_data_dir

CORPORA = {"biored": "biored/pubtator/Dev.PubTator.gz", "bc5cdr": "bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz"}


def documents(corpus: str, types: set[str], n: int, skip: int = 0):
    """(text, sentences as (offset, text), {(type, id): [mention]}) of a corpus's abstracts, the gold
    concepts of ``types`` (BC5CDR annotates Chemical and Disease only)."""
    from pipeline.parse.pubtator import doc_sentences, gold_ids, read_pubtator
    from workers.inference.docre import Entity

    out = []
    for doc in list(read_pubtator(shared_data_dir() / CORPORA[corpus]))[skip:skip + n]:
        concepts: dict[tuple[str, str], list] = defaultdict(list)
        for m in sorted(doc.mentions, key=lambda m: (m.start, m.end)):
            if m.type in types:
                for cid in sorted(gold_ids(m.ids, m.type)):
                    concepts[m.type, cid].append(Entity(m.type, cid, ((m.start, m.end),)))
        out.append((doc.text, list(doc_sentences(doc)), dict(concepts)))
    return out


class _Span:  # what concept_pair_candidates reads of a mention
    def __init__(self, start: int, end: int):
        self.start, self.end = start, end


def _entities(concepts):
    from workers.inference.docre import Entity

    return [Entity(t_, c, tuple(e.mentions[0] for e in v)) for (t_, c), v in concepts.items()]


def one_pass_pairs(extractor, docs) -> list[set[frozenset]]:
    """Per document, the concept pairs the one-pass model scores (as ``DocRelationExtractor.predict``
    enumerates them: related types, both reaching the encoding)."""
    from workers.inference.docre import candidate_pairs, encode_document

    out = []
    for text, _, concepts in docs:
        known = [e for e in _entities(concepts) if e.type in extractor.model.types]
        enc = encode_document(extractor.tokenizer, text, known, extractor.marker) if len(known) > 1 else None
        out.append({frozenset(((known[i].type, known[i].concept_id), (known[j].type, known[j].concept_id)))
                    for i, j in candidate_pairs(known, enc, extractor.type_pairs)} if enc else set())
    return out


def per_pair_texts(docs, type_pairs, window: int | None, only: list[set[frozenset]] | None = None) -> list[str]:
    """The per-pair classifier's inputs: each candidate pair's marked sentences; ``window`` None is the
    whole document; ``only`` keeps each document's pairs to the given set."""
    from workers.inference.relations import concept_pair_candidates

    texts = []
    for k, (text, sents, concepts) in enumerate(docs):
        spans = {key: [_Span(*e.mentions[0]) for e in v] for key, v in concepts.items()}
        for c in concept_pair_candidates(text, sents, spans, tuple(type_pairs), window or len(sents) + 1):
            if only is None or frozenset((c.head, c.tail)) in only[k]:
                texts.append(c.text)
    return texts


def run_per_pair(clf, texts: list[str]) -> tuple[float, int]:
    t = time.perf_counter()
    clf.predict_scored(texts)
    return time.perf_counter() - t, len(texts)


def run_one_pass(extractor, docs) -> tuple[float, int]:
    t = time.perf_counter()
    inputs = [(text, [(s, s + len(x)) for s, x in sents], _entities(concepts)) for text, sents, concepts in docs]
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
    ap.add_argument("--corpus", default="biored", choices=sorted(CORPORA))
    ap.add_argument("--per-pair", default="default", help="per-pair relation artifact (default: default-cid)")
    ap.add_argument("--one-pass", default="default-redoc", help="document-level (re-doc) artifact")
    ap.add_argument("--docs", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clf = RelationClassifier.load(stage_artifact(artifact_url(args.per_pair, "relation")), precision=args.precision)
    extractor = DocRelationExtractor.load(stage_artifact(artifact_url(args.one_pass, "redoc")), precision=args.precision)
    types = set(extractor.model.types)
    warm, docs = documents(args.corpus, types, 8, skip=args.docs), documents(args.corpus, types, args.docs)
    # the same candidate pairs for both: the one pass's own, each given the per-pair model's input text
    same = one_pass_pairs(extractor, docs)
    texts = per_pair_texts(docs, extractor.type_pairs, None, same)
    window_texts = per_pair_texts(docs, clf.type_pairs, clf.window)
    run_per_pair(clf, per_pair_texts(warm, extractor.type_pairs, None)), run_one_pass(extractor, warm)
    pp_s, pp_pairs = run_per_pair(clf, texts)
    op_s, op_pairs = run_one_pass(extractor, docs)
    win_s, win_pairs = run_per_pair(clf, window_texts)
    if pp_pairs != op_pairs:  # a pair whose mentions the per-pair marking cannot separate (a composite)
        print(f"note: the per-pair model could mark {pp_pairs:,} of the one pass's {op_pairs:,} pairs")
    n = len(docs)
    table = Table(title=f"{n} {args.corpus} abstracts, gold {'/'.join(sorted(types & {t for d in docs for t, _ in d[2]}))} "
                        f"concepts, {args.threads} threads, {resolve_precision(args.precision, 'cpu') or 'fp32'}")
    for col in ("model", "pairs scored", "seconds", "docs/s", "pairs/s"):
        table.add_column(col, justify="right" if col != "model" else "left")
    model = clf.manifest.get("model_id")
    table.add_row(f"per pair ({model}), the one pass's pairs", str(pp_pairs), f"{pp_s:.1f}", f"{n / pp_s:.2f}",
                  f"{pp_pairs / pp_s:.1f}")
    table.add_row(f"one pass ({extractor.model_id}), every pair", str(op_pairs), f"{op_s:.1f}", f"{n / op_s:.2f}",
                  f"{op_pairs / op_s:.1f}")
    table.add_row(f"per pair ({model}), its own pairs within {clf.window} sentences", str(win_pairs), f"{win_s:.1f}",
                  f"{n / win_s:.2f}", f"{win_pairs / win_s:.1f}")
    Console().print(table)
    print(f"RESULT relations per_pair_docs_per_s={n / pp_s:.3f} one_pass_docs_per_s={n / op_s:.3f} "
          f"ratio={pp_s / op_s:.2f} per_pair_pairs_per_s={pp_pairs / pp_s:.1f} one_pass_pairs_per_s={op_pairs / op_s:.1f} "
          f"window_docs_per_s={n / win_s:.3f} window_ratio={win_s / op_s:.2f} window_pairs={win_pairs} pairs={op_pairs} "
          f"corpus={args.corpus}")


if __name__ == "__main__":
    main()
