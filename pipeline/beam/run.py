"""The Beam parse-and-split pipeline, and the task that turns its output into parsed shards.

``build_parse_pipeline`` is runner-agnostic: the Ray parse task runs it in-process on FnApiRunner,
and the same graph runs standalone on Flink/Spark/Dataflow with other pipeline options. One pipeline
run handles a group of input files (a Beam run costs ~0.3 s to start, which is most of the work for
a small update file or a single PMC article); each file's tables land in their own folder.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import apache_beam as beam
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import schemas
from pipeline.beam.transforms import (
    DELETIONS,
    SENTENCE_COLUMNS,
    FAILED,
    REJECTS,
    DocBatch,
    ParseArticles,
    ShardSpec,
    SplitSentences,
    TablePart,
    ToArrow,
    WriteShardTables,
    split_document,
)
from pipeline.errors import ShardError
from pipeline.layout import DOCUMENTS_FILE, SUCCESS, parsed_prefix, table_file
from pipeline.storage import Store, options_for

PARSER_VERSION = "parse-v4"  # bump when parsed output changes: cached shards are keyed by it (v4: a PMID
                             # twice in one file keeps the later record's rows only)
# bump when the sentence rows of a document change (splitting, offsets): the extraction fingerprint is
# keyed by it, so extraction is redone; a parser fix that moves no sentence of any document keeps it
SENTENCES_VERSION = "parse-v3"


def build_parse_pipeline(p: beam.Pipeline, shards: list[ShardSpec], out_dirs: dict[str, str],
                         storage_options: dict | None = None) -> None:
    """ReadXml -> ParseArticles -> SplitSentences -> ToArrow -> WriteShardTables.

    ``out_dirs`` maps each shard's fingerprint to the folder (any fsspec URL) of its tables. Labels
    are stable; rejects of parsing and of splitting are written by their own sink instances (no
    Flatten: it would move them out of the fused stage, into another bundle).
    """
    def sink(label: str):
        return beam.ParDo(WriteShardTables(out_dirs, label, storage_options))

    parsed = (
        p
        | "ReadXml" >> beam.Create(shards)
        | "ParseArticles" >> beam.ParDo(ParseArticles()).with_output_types(DocBatch).with_outputs(
            DELETIONS, REJECTS, FAILED, main="documents")
    )
    split = parsed.documents | "SplitSentences" >> beam.ParDo(SplitSentences()).with_output_types(
        DocBatch).with_outputs(REJECTS, main="docs")
    tables = split.docs | "ToArrow" >> beam.ParDo(ToArrow()).with_output_types(TablePart)
    _ = tables | "WriteTables" >> sink("tables")
    _ = parsed[DELETIONS] | "WriteDeletions" >> sink("deletions")
    _ = parsed[REJECTS] | "WriteParseRejects" >> sink("parse")
    _ = split[REJECTS] | "WriteSplitRejects" >> sink("split")
    _ = parsed[FAILED] | "WriteFailures" >> sink("failed")


def consolidate(out_dir: str, storage_options: dict | None = None) -> str | None:
    """The sink's ``<table>-<label>.parquet`` parts -> one ``<table>.parquet`` per table (an empty
    table with the schema where nothing was written). Returns the failure detail when the file could
    not be parsed (and removes that shard's partial tables), else None."""
    fs, root = fsspec.core.url_to_fs(out_dir, **options_for(out_dir, storage_options))
    failed = [p for p in fs.glob(f"{root}/failed-*.parquet")]
    if failed:
        with fs.open(failed[0], "rb") as f:
            detail = pq.read_table(f).column("detail")[0].as_py()
        fs.rm([p for p in fs.glob(f"{root}/*.parquet")])
        return detail
    for name, schema in schemas.PARSED_TABLES.items():
        parts = sorted(fs.glob(f"{root}/{name}-*.parquet"))
        target = f"{root}/{table_file(name)}"
        if len(parts) == 1:
            fs.mv(parts[0], target)
            continue
        with fs.open(target, "wb") as out, pq.ParquetWriter(out, schema, compression="zstd") as writer:
            if not parts:
                writer.write_table(schema.empty_table())
            for part in parts:
                with fs.open(part, "rb") as f:
                    pf = pq.ParquetFile(f)
                    for i in range(pf.num_row_groups):
                        writer.write_table(pf.read_row_group(i))
        if parts:
            fs.rm(parts)
    keep_latest_records(fs, root)
    return None


def keep_latest_records(fs, root: str) -> int:
    """A PMID that comes twice in one file: the earlier record was parsed (and rejected as
    "duplicate PMID") before the later one was seen, so both versions reached the shard's tables under
    one doc_id. Keep the later record's rows only: its ``documents`` row (the higher position), its
    passages (each version's start at passage_idx 0, in record order: every document has a passage),
    and its sentences split again from those passages (a version may have none to tell it by).
    Afterwards doc_id is unique in the shard's documents. Returns the rows dropped from documents."""
    def read(name):
        with fs.open(f"{root}/{table_file(name)}", "rb") as f:
            return pq.read_table(f, schema=schemas.PARSED_TABLES[name])

    def write(name, table):
        with fs.open(f"{root}/{table_file(name)}", "wb") as f:
            pq.write_table(table.cast(schemas.PARSED_TABLES[name]), f, compression="zstd")

    with fs.open(f"{root}/{DOCUMENTS_FILE}", "rb") as f:
        ids = pq.read_table(f, columns=["doc_id"]).column("doc_id")
    if pc.count_distinct(ids).as_py() == len(ids):
        return 0
    docs = read("documents")
    order = np.lexsort((docs.column("position").to_numpy(), docs.column("doc_id").to_numpy(zero_copy_only=False)))
    ranked = docs.column("doc_id").take(pa.array(order)).to_numpy(zero_copy_only=False)
    last = np.ones(len(order), dtype=bool)
    last[:-1] = ranked[:-1] != ranked[1:]
    keep = np.zeros(docs.num_rows, dtype=bool)
    keep[order[last]] = True
    twice = pc.unique(docs.column("doc_id").filter(pa.array(~keep)))
    write("documents", docs.filter(pa.array(keep)))

    passages = read("passages")
    mine = pc.is_in(passages.column("doc_id"), value_set=twice).to_numpy(zero_copy_only=False)
    version: dict[str, int] = {}
    seen = np.zeros(passages.num_rows, dtype=np.int64)
    for i in np.flatnonzero(mine):  # each version's passages start again at 0, in record order
        doc = passages.column("doc_id")[i].as_py()
        version[doc] = version.get(doc, 0) + (passages.column("passage_idx")[i].as_py() == 0)
        seen[i] = version[doc]
    final = np.array([version.get(d, 0) for d in passages.column("doc_id").to_pylist()], dtype=np.int64)
    passages = passages.filter(pa.array(~mine | (seen == final)))
    write("passages", passages)

    sentences = read("sentences")
    sentences = sentences.filter(pc.invert(pc.is_in(sentences.column("doc_id"), value_set=twice)))
    cols: dict[str, list] = {name: [] for name in SENTENCE_COLUMNS}
    again = passages.filter(pc.is_in(passages.column("doc_id"), value_set=twice)).to_pylist()
    for doc_id in twice.to_pylist():
        kept = [SimpleNamespace(text=p["text"], offset=p["offset"]) for p in again if p["doc_id"] == doc_id]
        split_document(SimpleNamespace(doc_id=doc_id, passages=kept), cols)
    write("sentences", pa.concat_tables([sentences, pa.table(cols).cast(schemas.SENTENCES)]))
    return int((~keep).sum())


def run_parse_pipeline(shards: list[ShardSpec], out_dir: str | None, options: PipelineOptions | None = None,
                       storage_options: dict | None = None, out_dirs: dict[str, str] | None = None,
                       raise_failure: bool = True) -> dict:
    """Run the pipeline over ``shards``; each shard's five tables go to ``out_dir`` (one shard),
    ``out_dir/<fingerprint>/`` (several), or where ``out_dirs`` says (any fsspec URLs). Returns the
    counters (documents, sentences, rejects, ...) summed over the shards, and ``failures``: a failed
    shard's fingerprint -> the reason. With ``raise_failure``, a lone shard that failed raises
    ShardError instead."""
    options = options or PipelineOptions(["--runner=FnApiRunner"])
    if out_dirs is None:
        out_dirs = {s.fingerprint: out_dir if len(shards) == 1 else f"{out_dir.rstrip('/')}/{s.fingerprint}"
                    for s in shards}
    for d in out_dirs.values():
        fs, path = fsspec.core.url_to_fs(d, **options_for(d, storage_options))
        fs.makedirs(path, exist_ok=True)
    p = beam.Pipeline(options=options)
    build_parse_pipeline(p, shards, out_dirs, storage_options)
    result = p.run()
    result.wait_until_finish()
    counters: dict = {}
    try:
        for c in result.metrics().query()["counters"]:
            counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + int(c.committed or c.attempted or 0)
    except Exception:  # some runners do not report metrics; the row counts still hold
        pass
    failures = {}
    for shard in shards:
        detail = consolidate(out_dirs[shard.fingerprint], storage_options)
        if detail is not None:
            failures[shard.fingerprint] = detail
    if raise_failure and len(shards) == 1 and failures:
        raise ShardError(shards[0].source_file, failures[shards[0].fingerprint])
    counters["failures"] = failures
    return counters


def _marker(shard: ShardSpec, rows: dict, counters: dict, seconds: float) -> dict:
    return {
        "fingerprint": shard.fingerprint,
        "source_file": shard.source_file,
        "url": shard.url,
        "source_seq": shard.source_seq,
        "parser_version": PARSER_VERSION,
        "rows": rows,
        "counters": counters,
        "seconds": round(seconds, 3),
        "reused": False,
    }


def parse_shards(shards: list[ShardSpec], store: Store, reuse: bool = True,
                 options: PipelineOptions | None = None) -> list[dict]:
    """Parse a group of input files in one Beam run into ``state/parsed/<fingerprint>/`` each, with a
    completion marker per file. Idempotent: a file whose marker exists is reused; a retried task
    overwrites. Returns one result per shard, in order: its marker, or ``{"ok": False, "error": ...}``
    for a file that could not be parsed (nothing of it is kept or marked complete)."""
    results: list[dict | None] = [None] * len(shards)
    todo = []
    for i, shard in enumerate(shards):
        prefix = parsed_prefix(shard.fingerprint)
        if reuse and store.exists(*prefix, SUCCESS):
            results[i] = {"ok": True, **store.read_json(*prefix, SUCCESS), "reused": True}
        else:
            todo.append(i)
    if not todo:
        return results
    started = time.time()
    group = [shards[i] for i in todo]
    for shard in group:  # a retry starts clean: no part of an earlier attempt may be consolidated
        store.remove(*parsed_prefix(shard.fingerprint))
    # the sink writes straight into the store (any fsspec URL), so the same code serves a remote runner
    out_dirs = {s.fingerprint: store.uri(*parsed_prefix(s.fingerprint)) for s in group}
    counters = run_parse_pipeline(group, None, options, store.storage_options, out_dirs=out_dirs,
                                  raise_failure=False)
    failures = counters.pop("failures")
    seconds = (time.time() - started) / len(group)
    for i, shard in zip(todo, group):
        if shard.fingerprint in failures:
            err = ShardError(shard.source_file, failures[shard.fingerprint])
            results[i] = {"ok": False, "source_file": shard.source_file, "fingerprint": shard.fingerprint,
                          "detail": err.detail, "error": str(err)}
            continue
        prefix = parsed_prefix(shard.fingerprint)
        rows = {name: store.parquet_rows(*prefix, table_file(name)) for name in schemas.PARSED_TABLES}
        marker = _marker(shard, rows, counters if len(group) == 1 else {}, seconds)
        store.write_text(json.dumps(marker, indent=2), *prefix, SUCCESS)  # last: the shard is complete
        results[i] = {"ok": True, **marker}
    return results


def parse_shard(shard: ShardSpec, store: Store, reuse: bool = True, options: PipelineOptions | None = None) -> dict:
    """One input file -> ``state/parsed/<fingerprint>/`` and its marker. Raises ShardError for a file
    that cannot be parsed (nothing is marked complete)."""
    result = parse_shards([shard], store, reuse, options)[0]
    if not result.pop("ok"):
        raise ShardError(shard.source_file, result["detail"])
    return result


def group_shards(sizes: list[int], target_bytes: int) -> list[list[int]]:
    """Indices of shards packed into groups of about ``target_bytes`` of input (a big file is a group
    of its own), in input order, so one Beam run parses many small files."""
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for i, size in enumerate(sizes):
        if current and total + size > target_bytes:
            groups.append(current)
            current, total = [], 0
        current.append(i)
        total += size
    if current:
        groups.append(current)
    return groups
