"""The Beam parse-and-split pipeline for one shard, and the shard task that publishes its output.

``build_parse_pipeline`` is runner-agnostic: the Ray parse task runs it in-process on FnApiRunner,
and the same graph runs standalone on Flink/Spark/Dataflow with other pipeline options.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.parquetio import WriteToParquet
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import schemas
from pipeline.beam.transforms import (
    DELETIONS,
    REJECTS,
    ParseArticles,
    ShardSpec,
    SplitSentences,
    document_row,
    passage_rows,
    sentence_rows,
)
from pipeline.errors import ShardError
from pipeline.storage import Store

PARSER_VERSION = "parse-v2"  # bump when parsed output changes: cached shards are keyed by it
SUCCESS = "_SUCCESS"


def _write(pcoll, out_dir: str, name: str):
    return pcoll | f"Write{name.capitalize()}" >> WriteToParquet(
        os.path.join(out_dir, name),
        schemas.PARSED_TABLES[name],
        num_shards=1,
        shard_name_template="",
        file_name_suffix=".parquet",
        codec="zstd",
    )


def build_parse_pipeline(p: beam.Pipeline, shards: list[ShardSpec], out_dir: str) -> None:
    """ReadXml -> ParseArticles -> SplitSentences -> five parquet files in ``out_dir``."""
    parsed = (
        p
        | "ReadXml" >> beam.Create(shards)
        | "ParseArticles" >> beam.ParDo(ParseArticles()).with_outputs(DELETIONS, REJECTS, main="documents")
    )
    split = parsed.documents | "SplitSentences" >> beam.ParDo(SplitSentences()).with_outputs(REJECTS, main="docs")
    docs = split.docs
    _write(docs | "DocumentRows" >> beam.Map(document_row), out_dir, "documents")
    _write(docs | "PassageRows" >> beam.FlatMap(passage_rows), out_dir, "passages")
    _write(docs | "SentenceRows" >> beam.FlatMap(sentence_rows), out_dir, "sentences")
    _write(parsed[DELETIONS], out_dir, "deletions")
    rejects = (parsed[REJECTS], split[REJECTS]) | "MergeRejects" >> beam.Flatten()
    _write(rejects, out_dir, "rejects")


def run_parse_pipeline(shards: list[ShardSpec], out_dir: str, options: PipelineOptions | None = None) -> dict:
    """Run the pipeline, return its counters (documents, sentences, rejects, deletions)."""
    options = options or PipelineOptions(["--runner=FnApiRunner"])
    p = beam.Pipeline(options=options)
    build_parse_pipeline(p, shards, out_dir)
    result = p.run()
    result.wait_until_finish()
    counters: dict[str, int] = {}
    try:
        for c in result.metrics().query()["counters"]:
            counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + int(c.committed or c.attempted or 0)
    except Exception:  # some runners do not report metrics; the row counts below still hold
        pass
    return counters


def parsed_prefix(fingerprint: str) -> tuple[str, str]:
    return ("state", f"parsed/{fingerprint}")


def parse_shard(shard: ShardSpec, store: Store, reuse: bool = True, options: PipelineOptions | None = None) -> dict:
    """Parse one input file into ``state/parsed/<fingerprint>/`` and leave a completion marker.

    Idempotent: an existing marker for the same fingerprint is reused; a retried task overwrites.
    A file that cannot be parsed raises ShardError (nothing is marked complete).
    """
    prefix = parsed_prefix(shard.fingerprint)
    if reuse and store.exists(*prefix, SUCCESS):
        marker = store.read_json(*prefix, SUCCESS)
        marker["reused"] = True
        return marker
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="pubmine-parse-") as tmp:
        try:
            counters = run_parse_pipeline([shard], tmp, options)
        except ShardError:
            raise
        except Exception as exc:  # Beam wraps DoFn errors; unwrap to the reason the user needs
            message = str(exc).strip().splitlines()
            detail = next((line for line in reversed(message) if "could not be parsed" in line), None)
            if detail is None:
                detail = message[-1] if message else type(exc).__name__
            raise ShardError(shard.source_file, detail.split("could not be parsed: ")[-1]) from exc
        rows = {}
        for name in schemas.PARSED_TABLES:
            path = os.path.join(tmp, f"{name}.parquet")
            if not os.path.exists(path):  # an empty output: write the schema so readers find the table
                pq.write_table(schemas.PARSED_TABLES[name].empty_table(), path)
            rows[name] = pq.ParquetFile(path).metadata.num_rows
        store.put_dir(tmp, *prefix)
    marker = {
        "fingerprint": shard.fingerprint,
        "source_file": shard.source_file,
        "url": shard.url,
        "source_seq": shard.source_seq,
        "parser_version": PARSER_VERSION,
        "rows": rows,
        "counters": counters,
        "seconds": round(time.time() - started, 3),
        "reused": False,
    }
    store.write_text(json.dumps(marker, indent=2), *prefix, SUCCESS)
    return marker
