"""Beam transforms of the parse stage: ReadXml -> ParseArticles -> SplitSentences -> ToArrow ->
WriteShardTables.

Each DoFn is small; bad records leave through the ``rejects`` dead-letter output with a reason
instead of failing the bundle, and a file that cannot be read leaves through ``failed`` without
failing the other files of the run. Documents move in batches (a thousand per element), so Beam's
per-element cost is paid per batch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import pickle
from dataclasses import dataclass, field
from typing import NamedTuple

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from pipeline import schemas
from pipeline.parse.document import Document
from pipeline.parse.sources import iter_records, open_input
from pipeline.errors import ShardError, is_access_denied, is_store_outage
from pipeline.parse.sentences import split_spans
from pipeline.storage import options_for

REJECTS = "rejects"
DELETIONS = "deletions"
FAILED = "failed"
FAILED_SCHEMA = schemas.FAILED


@dataclass(frozen=True)
class ShardSpec:
    """One input file and what the parse stage needs to know about it."""

    url: str                 # fsspec URL of the input file
    source_file: str         # the name recorded in every row (the file's base name)
    source_seq: int          # file order for last-file-wins (pubmedYYnNNNN -> YYNNNN)
    fingerprint: str         # identity of this exact input (name, size, etag/mtime, parser version)
    storage_options: dict = field(default_factory=dict)  # per protocol, as in RunConfig
    max_inflate_ratio: float = 100.0  # parse.max_inflate_ratio: the gzip bomb limit


@contextlib.contextmanager
def no_gc():
    """Parsed documents, sentences and Arrow columns hold no reference cycles: while they are built,
    the cyclic collector only walks the growing heap (~15% of parse time on a baseline file)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class DocBatch:
    """Documents of one shard moving together through the Beam graph."""

    __slots__ = ("docs", "shard", "parsed_at", "sentences")

    def __init__(self, docs: list[Document], shard: ShardSpec, parsed_at, sentences=None) -> None:
        self.docs, self.shard, self.parsed_at, self.sentences = docs, shard, parsed_at, sentences

    def __reduce__(self):
        return DocBatch, (self.docs, self.shard, self.parsed_at, self.sentences)


class DocBatchCoder(beam.coders.Coder):
    """Pickle for the wire, and a size estimate that does not encode: Beam samples element sizes for
    its metrics, and pickling a thousand documents to measure them cost a third of the parse time."""

    def encode(self, value: DocBatch) -> bytes:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> DocBatch:
        return pickle.loads(encoded)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, value: DocBatch) -> int:
        return 2048 * len(value.docs)  # a MEDLINE record's text and fields, on average


class TablePart(NamedTuple):
    """Rows of one output table of one shard: an Arrow table, or one row (deletions, rejects)."""

    shard: ShardSpec
    name: str                      # documents | passages | sentences | deletions | rejects | failed
    table: pa.Table | None = None
    row: dict | None = None


class TablePartCoder(beam.coders.Coder):
    """Arrow IPC for the table, pickle for the rest; the size estimate reads the buffers' size."""

    def encode(self, value: TablePart) -> bytes:
        payload = None
        if value.table is not None:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, value.table.schema) as writer:
                writer.write_table(value.table)
            payload = sink.getvalue().to_pybytes()
        return pickle.dumps((value.shard, value.name, payload, value.row), pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> TablePart:
        shard, name, payload, row = pickle.loads(encoded)
        table = pa.ipc.open_stream(payload).read_all() if payload is not None else None
        return TablePart(shard, name, table, row)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, value: TablePart) -> int:
        return value.table.nbytes if value.table is not None else 256


beam.coders.registry.register_coder(DocBatch, DocBatchCoder)
beam.coders.registry.register_coder(TablePart, TablePartCoder)


class ParseArticles(beam.DoFn):
    """A shard -> batches of documents; DeleteCitation PMIDs and rejected records to tagged outputs.

    The file is streamed (iterparse) straight from its URL; gzip is detected from the name and the
    format (MEDLINE, JATS, OA package) from the file itself. Documents travel in lists of
    ``batch_size`` so Beam's per-element cost is paid per thousand articles, and memory holds one
    batch, whatever the file's size.
    """

    def __init__(self, batch_size: int = 1000) -> None:
        self.batch_size = batch_size
        self.documents = Metrics.counter("parse", "documents")
        self.books = Metrics.counter("parse", "book_records")
        self.rejects = Metrics.counter("parse", "rejects")
        self.deletions = Metrics.counter("parse", "deletions")
        self.failed = Metrics.counter("parse", "failed_files")

    def process(self, shard: ShardSpec):
        parsed_at = dt.datetime.now(dt.timezone.utc)
        batch: list[Document] = []
        try:
            with no_gc(), open_input(shard.url, shard.storage_options, shard.source_file,
                                     shard.max_inflate_ratio) as stream:
                for kind, payload in iter_records(stream, shard.source_file):
                    if kind == "document":
                        if payload.record_type == "book":
                            self.books.inc()
                        batch.append(payload)
                        if len(batch) >= self.batch_size:
                            self.documents.inc(len(batch))
                            yield DocBatch(batch, shard, parsed_at)
                            batch = []
                    elif kind == "deletion":
                        self.deletions.inc()
                        yield beam.pvalue.TaggedOutput(DELETIONS, TablePart(shard, "deletions", row={
                            "pmid": payload["pmid"], "source_file": shard.source_file, "source_seq": shard.source_seq}))
                    else:
                        self.rejects.inc()
                        yield beam.pvalue.TaggedOutput(REJECTS, TablePart(shard, "rejects", row={
                            "source_file": shard.source_file, **payload}))
        except (ShardError, OSError, EOFError) as err:  # this file fails alone; the others in the run go on
            if is_store_outage(err) or is_access_denied(err):  # the store is down or refuses us, the file
                raise                                             # may be fine: the run stops, nothing rejected
            detail = err.detail if isinstance(err, ShardError) else f"{type(err).__name__}: {err}"
            self.failed.inc()
            yield beam.pvalue.TaggedOutput(FAILED, TablePart(shard, "failed", row={"detail": detail}))
            return
        if batch:
            self.documents.inc(len(batch))
            yield DocBatch(batch, shard, parsed_at)


SENTENCE_COLUMNS = ("doc_id", "passage_idx", "sent_idx", "start", "end", "text")


def split_document(doc: Document, cols: dict[str, list]) -> int:
    """Append the sentences of ``doc`` (document-level offsets) to the sentence columns; all or none
    of the document's rows are added. Returns how many."""
    p_idx, starts, ends, texts = [], [], [], []
    for i, passage in enumerate(doc.passages):
        text, offset = passage.text, passage.offset
        spans = split_spans(text)
        p_idx.extend([i] * len(spans))
        starts.extend([offset + s for s, _ in spans])
        ends.extend([offset + e for _, e in spans])
        texts.extend([text[s:e] for s, e in spans])
    n = len(texts)
    cols["doc_id"].extend([doc.doc_id] * n)
    cols["passage_idx"].extend(p_idx)
    cols["sent_idx"].extend(range(n))
    cols["start"].extend(starts)
    cols["end"].extend(ends)
    cols["text"].extend(texts)
    return n


class SplitSentences(beam.DoFn):
    """Attach sentences (document-level offsets) to each document of a batch; a document whose
    splitting fails leaves through the dead-letter output, the rest of the batch goes on."""

    def __init__(self) -> None:
        self.sentences = Metrics.counter("parse", "sentences")
        self.rejects = Metrics.counter("parse", "rejects")

    def process(self, batch: DocBatch):
        kept, failed = [], []
        cols: dict[str, list] = {name: [] for name in SENTENCE_COLUMNS}
        with no_gc():
            for doc in batch.docs:
                try:
                    split_document(doc, cols)
                    kept.append(doc)
                except Exception as exc:  # dead-letter, never fail the bundle
                    failed.append((doc, exc))
        for doc, exc in failed:
            self.rejects.inc()
            yield beam.pvalue.TaggedOutput(REJECTS, TablePart(batch.shard, "rejects", row={
                "source_file": batch.shard.source_file, "position": doc.position, "pmid": doc.pmid,
                "reason": "sentence split failed", "detail": f"{type(exc).__name__}: {exc}"}))
        self.sentences.inc(len(cols["text"]))
        yield DocBatch(kept, batch.shard, batch.parsed_at, cols)


class ToArrow(beam.DoFn):
    """A batch -> one Arrow table per output table of the shard."""

    def process(self, batch: DocBatch):
        with no_gc():
            tables = [("documents", document_table(batch)), ("passages", passage_table(batch)),
                      ("sentences", sentence_table(batch))]
        for name, table in tables:
            yield TablePart(batch.shard, name, table)


class WriteShardTables(beam.DoFn):
    """The sink: Parquet files per shard and table, written as the parts arrive.

    Every part of a shard reaches this DoFn in the bundle that parsed the shard (the stage is fused
    from ParseArticles on), so a writer opened in the bundle streams the shard's row groups and is
    closed when the bundle finishes: memory holds one batch, not the file. Files are named by shard
    and by ``label`` (one per instance of this DoFn in the graph), so a retried bundle rewrites the
    same files. ``consolidate`` joins the labels' parts per table afterwards.

    Beam's WriteToParquet(num_shards=1) groups every element under one key before writing (the whole
    file's output in memory) and adds init/finalize stages that cost ~0.7 s per pipeline run.
    """

    def __init__(self, out_dirs: dict[str, str], label: str, storage_options: dict | None = None) -> None:
        self.out_dirs = out_dirs          # fingerprint -> folder URL of that shard's parsed tables
        self.label = label
        self.storage_options = storage_options or {}

    def start_bundle(self) -> None:
        self.writers: dict[tuple[str, str], tuple] = {}
        self.rows: dict[tuple[str, str], list[dict]] = {}
        self.shards: dict[str, ShardSpec] = {}

    def _path(self, shard: ShardSpec, name: str) -> str:
        return f"{self.out_dirs[shard.fingerprint].rstrip('/')}/{name}-{self.label}.parquet"

    def process(self, part: TablePart):
        key = (part.shard.fingerprint, part.name)
        if part.table is None:
            self.rows.setdefault(key, []).append(part.row)
            self.shards[part.shard.fingerprint] = part.shard
            return
        if key not in self.writers:
            handle = fsspec.open(self._path(part.shard, part.name), "wb",
                                 **options_for(self._path(part.shard, part.name), self.storage_options)).open()
            # state files are read back whole by publish: no page statistics needed, fast zstd level
            self.writers[key] = (handle, pq.ParquetWriter(handle, part.table.schema, compression="zstd",
                                                          compression_level=1, write_statistics=False))
        self.writers[key][1].write_table(part.table)

    def finish_bundle(self) -> None:
        for handle, writer in self.writers.values():
            writer.close()
            handle.close()
        for (fingerprint, name), rows in self.rows.items():
            schema = FAILED_SCHEMA if name == "failed" else schemas.PARSED_TABLES[name]
            path = self._path(self.shards[fingerprint], name)
            with fsspec.open(path, "wb", **options_for(path, self.storage_options)) as f:
                pq.write_table(pa.Table.from_pylist(rows, schema=schema), f, compression="zstd")
        self.writers, self.rows, self.shards = {}, {}, {}


def document_table(batch: DocBatch) -> pa.Table:
    shard: ShardSpec = batch.shard
    docs: list[Document] = batch.docs
    n = len(docs)
    cols = {
        "doc_id": [d.doc_id for d in docs], "pmid": [d.pmid for d in docs],
        "pmid_version": [d.pmid_version for d in docs], "pmcid": [d.pmcid for d in docs],
        "doi": [d.doi for d in docs], "source": [d.source for d in docs],
        "source_file": [shard.source_file] * n, "source_member": [d.source_member for d in docs],
        "source_seq": [shard.source_seq] * n, "position": [d.position for d in docs],
        "record_type": [d.record_type for d in docs], "title": [d.title for d in docs],
        "vernacular_title": [d.vernacular_title for d in docs], "journal": [d.journal for d in docs],
        "journal_iso": [d.journal_iso for d in docs], "pub_year": [d.pub_year for d in docs],
        "pub_date": [d.pub_date for d in docs], "article_date": [d.article_date for d in docs],
        "languages": [d.languages for d in docs], "pub_types": [d.pub_types for d in docs],
        "authors": [d.authors for d in docs], "mesh": [d.mesh for d in docs],
        "keywords": [d.keywords for d in docs], "ref_pmids": [d.ref_pmids for d in docs],
        "text_sha256": [d.text_sha256() for d in docs], "parsed_at": [batch.parsed_at] * n,
    }
    return pa.Table.from_pydict(cols, schema=schemas.DOCUMENTS)


def passage_table(batch: DocBatch) -> pa.Table:
    doc_ids: list[str] = []
    idx: list[int] = []
    passages = []
    for d in batch.docs:
        n = len(d.passages)
        doc_ids.extend([d.doc_id] * n)
        idx.extend(range(n))
        passages.extend(d.passages)
    return pa.Table.from_pydict({
        "doc_id": doc_ids, "passage_idx": idx, "kind": [p.kind for p in passages],
        "label": [p.label for p in passages], "category": [p.category for p in passages],
        "language": [p.language for p in passages], "offset": [p.offset for p in passages],
        "text": [p.text for p in passages]}, schema=schemas.PASSAGES)


def sentence_table(batch: DocBatch) -> pa.Table:
    cols = batch.sentences
    return pa.Table.from_arrays([pa.array(cols["doc_id"], pa.string()), pa.array(cols["passage_idx"], pa.int32()),
                                 pa.array(cols["sent_idx"], pa.int32()), pa.array(cols["start"], pa.int32()),
                                 pa.array(cols["end"], pa.int32()), pa.array(cols["text"], pa.string())],
                                schema=schemas.SENTENCES)
