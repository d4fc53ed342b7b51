"""The nightly quality spot-check: a small fixed set of gold abstracts (by default the first 50 of
BC5CDR's test set) through the night's own models and stages, scored, so that a model regression shows
in the run report the morning after, not weeks later in an analyst's query.

The gold documents go through what the pipeline does to a MEDLINE abstract: the same passage layout
and sentence splitter (``pipeline.parse.pubtator.doc_sentences``), then the extraction stages'
classes (``Tokenize`` -> ``NerPredictor`` -> ``DocumentStage.annotate``: linking and relations),
with the run's models, precision and windowing. Nothing is written to the store: the gold abstracts
never enter a snapshot. Scores: exact mention spans (by type), linked concepts per document, and
BC5CDR CID pairs per document when a CID model runs. Runs as one Ray task (``run``).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import defaultdict

import pyarrow as pa

from pipeline.errors import ConfigError
from pipeline.parse.pubtator import PubtatorDoc, doc_sentences, read_pubtator
from pipeline.scores import Scores, score, score_cid, score_concepts
from pipeline.storage import open_url, url_to_fs


def check_gold(url: str, storage_options: dict | None = None) -> None:
    """Fail before any work when the configured gold set cannot be found."""
    fs, path = url_to_fs(url, storage_options)
    if not fs.exists(path):
        raise ConfigError(f"report.gold: no gold PubTator file at {url}. Point it at BC5CDR's CDR_TestSet.PubTator.txt "
                          "(or any PubTator file with gold mentions), or set report.gold=none to run without the "
                          "nightly spot-check.")


def load_gold(url: str, n: int, storage_options: dict | None = None) -> list[PubtatorDoc]:
    """The first ``n`` documents of a PubTator file at any fsspec URL (``.gz`` read as gzip; a
    ``zip://member::https://...`` chain reads a file inside a published archive)."""
    with open_url(url, storage_options) as f:
        data = f.read()
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as tmp:
        tmp.write(data)
    try:
        docs = []
        for doc in read_pubtator(tmp.name):
            docs.append(doc)
            if len(docs) == n:
                break
        return docs
    finally:
        os.unlink(tmp.name)


def sentence_rows(docs: list[PubtatorDoc]) -> pa.Table:
    """The gold abstracts as the extraction stages' input rows (doc_id, sent_idx, start, text, text_sha256)."""
    rows = {"doc_id": [], "sent_idx": [], "start": [], "text": []}
    for d in docs:
        for k, (off, text) in enumerate(doc_sentences(d)):
            rows["doc_id"].append(f"pmid:{d.pmid}")
            rows["sent_idx"].append(k)
            rows["start"].append(off)
            rows["text"].append(text)
    return pa.table({"doc_id": pa.array(rows["doc_id"], pa.string()), "sent_idx": pa.array(rows["sent_idx"], pa.int32()),
                     "start": pa.array(rows["start"], pa.int32()), "text": pa.array(rows["text"], pa.string()),
                     "text_sha256": pa.nulls(len(rows["doc_id"]), pa.string())})


def _summary(s: Scores) -> dict:
    p, r, f = s.overall()
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
            "by_type": {t: {"precision": round(a, 4), "recall": round(b, 4), "f1": round(c, 4)}
                        for t, (a, b, c) in s.by_type().items()}}


def scores(docs: list[PubtatorDoc], ents: pa.Table, rels: pa.Table, with_cid: bool) -> dict:
    """Mention and concept scores of predicted entity rows against the gold docs, and CID pair scores
    of the relation rows (``with_cid``: a CID model ran and the gold set has CID relations)."""
    pmid = lambda doc_id: int(doc_id.split(":", 1)[1])
    types = tuple(sorted({m.type for d in docs for m in d.mentions}))
    mentions: dict[int, set] = defaultdict(set)
    concepts: dict[int, set] = defaultdict(set)
    for doc_id, s, e, t, cid in zip(*(ents.column(c).to_pylist() for c in ("doc_id", "start", "end", "type", "concept_id"))):
        mentions[pmid(doc_id)].add((pmid(doc_id), s, e, t))
        if cid:
            concepts[pmid(doc_id)].add((pmid(doc_id), cid, t))
    out = {"mentions": _summary(score(docs, mentions, types)), "concepts": _summary(score_concepts(docs, concepts, types))}
    if with_cid and any(rtype == "CID" for d in docs for rtype, _, _ in d.relations):
        pairs: dict[int, set] = defaultdict(set)
        for r in (r for r in rels.to_pylist() if r["type"] == "CID"):
            chem, dis = (r["head"], r["tail"]) if r["head"]["type"] == "Chemical" else (r["tail"], r["head"])
            pairs[pmid(r["doc_id"])].add((pmid(r["doc_id"]), chem["concept_id"], dis["concept_id"]))
        out["cid"] = _summary(score_cid(docs, pairs))
    return out


def run(gold_url: str, n_documents: int, storage_options: dict, store_url: str, run_id: str, ner_model_url: str,
        ner_model_id: str, normalizer_url: str | None, relation_urls: tuple[str, ...], max_length: int, stride: int,
        max_tokens_per_batch: int, precision: str, keep_unlinked_from: dict | None = None) -> dict:
    """Annotate the gold set with the night's models (a Ray task) and score it."""
    from workers.inference.stages import DocumentStage, NerPredictor, Tokenize

    t0 = time.time()
    docs = load_gold(gold_url, n_documents, storage_options)
    batch = sentence_rows(docs)
    tagged = NerPredictor(ner_model_url, storage_options, max_length=max_length, stride=stride,
                          max_tokens_per_batch=max_tokens_per_batch, precision=precision)(
        Tokenize(ner_model_url, storage_options)(batch))
    stage = DocumentStage(store_url, run_id, ner_model_id, "spotcheck", storage_options, normalizer_url=normalizer_url,
                          relation_urls=relation_urls, precision=precision, keep_unlinked_from=keep_unlinked_from)
    _, ents, rels = stage.annotate(tagged)
    result = scores(docs, ents, rels, any(clf.manifest.get("dataset") == "bc5cdr-cid" for clf in stage.relations))
    return {"gold": gold_url, "documents": len(docs), "sentences": batch.num_rows,
            "gold_mentions": sum(len(d.mentions) for d in docs), "predicted_mentions": ents.num_rows,
            **result, "seconds": round(time.time() - t0, 1)}
