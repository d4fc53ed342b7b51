"""Beam transforms of the parse stage: ReadXml -> ParseArticles -> SplitSentences -> rows.

Each DoFn is small and pure; bad records leave through the ``rejects`` dead-letter output with a
reason instead of failing the bundle. Counters roll up into the shard's completion marker.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.parse.document import Document
from pipeline.parse.sources import iter_records
from pipeline.parse.sentences import split_spans
from pipeline.storage import open_url

REJECTS = "rejects"
DELETIONS = "deletions"


@dataclass(frozen=True)
class ShardSpec:
    """One input file and what the parse stage needs to know about it."""

    url: str                 # fsspec URL of the input file
    source_file: str         # the name recorded in every row (the file's base name)
    source_seq: int          # file order for last-file-wins (pubmedYYnNNNN -> YYNNNN)
    fingerprint: str         # identity of this exact input (name, size, etag/mtime, parser version)
    storage_options: dict = field(default_factory=dict)  # per protocol, as in RunConfig


class ParseArticles(beam.DoFn):
    """A shard -> documents; DeleteCitation PMIDs and rejected records to tagged outputs.

    The file is streamed (iterparse) straight from its URL; gzip is detected from the name and the
    format (MEDLINE, JATS, OA package) from the file itself.
    """

    def __init__(self) -> None:
        self.documents = Metrics.counter("parse", "documents")
        self.books = Metrics.counter("parse", "book_records")
        self.rejects = Metrics.counter("parse", "rejects")
        self.deletions = Metrics.counter("parse", "deletions")

    def process(self, shard: ShardSpec):
        parsed_at = dt.datetime.now(dt.timezone.utc)
        with open_url(shard.url, shard.storage_options) as stream:
            for kind, payload in iter_records(stream, shard.source_file):
                if kind == "document":
                    self.documents.inc()
                    if payload.record_type == "book":
                        self.books.inc()
                    yield {"doc": payload, "shard": shard, "parsed_at": parsed_at}
                elif kind == "deletion":
                    self.deletions.inc()
                    yield beam.pvalue.TaggedOutput(DELETIONS, {
                        "pmid": payload["pmid"], "source_file": shard.source_file, "source_seq": shard.source_seq})
                else:
                    self.rejects.inc()
                    yield beam.pvalue.TaggedOutput(REJECTS, {"source_file": shard.source_file, **payload})


class SplitSentences(beam.DoFn):
    """Attach sentences (document-level offsets) to each parsed document."""

    def __init__(self) -> None:
        self.sentences = Metrics.counter("parse", "sentences")
        self.rejects = Metrics.counter("parse", "rejects")

    def process(self, item: dict):
        doc: Document = item["doc"]
        try:
            sentences = []
            for p_idx, passage in enumerate(doc.passages):
                for s, e in split_spans(passage.text):
                    sentences.append((p_idx, passage.offset + s, passage.offset + e, passage.text[s:e]))
        except Exception as exc:  # dead-letter, never fail the bundle
            self.rejects.inc()
            yield beam.pvalue.TaggedOutput(REJECTS, {
                "source_file": item["shard"].source_file, "position": doc.position, "pmid": doc.pmid,
                "reason": "sentence split failed", "detail": f"{type(exc).__name__}: {exc}"})
            return
        self.sentences.inc(len(sentences))
        yield {**item, "sentences": sentences}


def document_row(item: dict) -> dict:
    doc: Document = item["doc"]
    shard: ShardSpec = item["shard"]
    return {
        "doc_id": doc.doc_id, "pmid": doc.pmid, "pmid_version": doc.pmid_version, "pmcid": doc.pmcid,
        "doi": doc.doi, "source": doc.source, "source_file": shard.source_file,
        "source_member": doc.source_member, "source_seq": shard.source_seq, "position": doc.position,
        "record_type": doc.record_type, "title": doc.title, "vernacular_title": doc.vernacular_title,
        "journal": doc.journal, "journal_iso": doc.journal_iso, "pub_year": doc.pub_year,
        "pub_date": doc.pub_date, "article_date": doc.article_date, "languages": doc.languages,
        "pub_types": doc.pub_types, "authors": [a.row() for a in doc.authors], "mesh": doc.mesh,
        "keywords": doc.keywords, "ref_pmids": doc.ref_pmids, "text_sha256": doc.text_sha256(),
        "parsed_at": item["parsed_at"],
    }


def passage_rows(item: dict):
    doc: Document = item["doc"]
    for idx, p in enumerate(doc.passages):
        yield {"doc_id": doc.doc_id, "passage_idx": idx, "kind": p.kind, "label": p.label,
               "category": p.category, "language": p.language, "offset": p.offset, "text": p.text}


def sentence_rows(item: dict):
    doc: Document = item["doc"]
    for sent_idx, (p_idx, start, end, text) in enumerate(item["sentences"]):
        yield {"doc_id": doc.doc_id, "passage_idx": p_idx, "sent_idx": sent_idx,
               "start": start, "end": end, "text": text}
