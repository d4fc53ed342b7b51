"""Storage layout and names: where every file of a store lives. A shared contract: the driver, the
publish tasks, the parse stage and the extraction actors all write into one layout, so its names are
spelled out once, here.

    <store>/LATEST                                   the run_id of the newest complete snapshot
    <store>/snapshots/<run_id>/_manifest.json        written last: the snapshot is complete
    <store>/snapshots/<run_id>/<table>/part-<hash>.parquet
    <store>/snapshots/<run_id>/retrieval/            its passage retrieval index (plain files)
    <store>/state/parsed/<fingerprint>/<table>.parquet, _SUCCESS   one parsed input file
    <store>/state/parsed/<fingerprint>/keys-p64.parquet  its id columns by doc_id partition (resolution)
    <store>/state/extracted/<xfp>/parts/<key>/{entities,relations,docs}.parquet
                                 what one extraction block produced under extraction fingerprint <xfp>;
                                 docs.parquet (doc_id, text_sha256) is written last and marks it complete
    <store>/state/runs/<run_id>/  one run's working state (pipeline.resolve): live/ (the live documents by
                                 shard), resolved/ and served/ (by partition; served/ is the next night's
                                 reuse lookup), index/ (parts by partition), extract/ (the blocks to
                                 extract), parts.parquet (the parts the snapshot uses). Only the run
                                 LATEST names keeps its folder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib

import numpy as np

LATEST = "LATEST"
SNAPSHOTS = "snapshots"
STATE = "state"
LEASE = (STATE, "LEASE")  # the running run's lease (pipeline.driver.lease): one run per store at a time
MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"  # a parsed shard's completion marker (its row counts, parser version)
EXTRACTED_DOCS = "docs.parquet"  # an extracted part's completion marker: the documents (and texts) it covers
PARTS = "parts.parquet"  # in a run's folder: the extracted parts its snapshot carries (written at carry)
# a run's folders (state/runs/<run_id>/): live/ by shard, resolved/ and served/ by partition, index/
# (parts by partition), extract/ (the blocks to extract); all but served/ are scratch, removed at commit
LIVE_DIR, RESOLVED_DIR, SERVED_DIR, INDEX_DIR, EXTRACT_DIR = "live", "resolved", "served", "index", "extract"
RETRIEVAL_DIR = "retrieval"  # in a snapshot: its passage retrieval index (pipeline.ask, workers.inference.retrieval)
RUN_SCRATCH = (EXTRACT_DIR, LIVE_DIR, RESOLVED_DIR, INDEX_DIR)

def table_file(name: str) -> str:
    """A table's file in a parsed shard (state/parsed/<fingerprint>/) or an extracted part."""
    return f"{name}.parquet"


DOCUMENTS_FILE, DELETIONS_FILE = table_file("documents"), table_file("deletions")

# Documents are hash-partitioned by doc_id for resolution and the reuse lookup. A layout constant:
# files keyed by it say so in their names (keys-p64.parquet), so a change re-keys instead of misreading.
PARTITIONS = 64
KEYS = f"keys-p{PARTITIONS}.parquet"


def partition_of(doc_ids) -> np.ndarray:
    """Each doc_id's partition (CRC-32 of its UTF-8, mod PARTITIONS): the same in every process."""
    ids = doc_ids.to_pylist() if hasattr(doc_ids, "to_pylist") else list(doc_ids)
    return np.fromiter((zlib.crc32(d.encode()) % PARTITIONS for d in ids), dtype=np.int32, count=len(ids))


def partition_groups(n: int) -> list[list[int]]:
    """The partitions split into ``n`` (at most PARTITIONS) contiguous groups of about equal size."""
    n = max(1, min(n, PARTITIONS))
    return [g.tolist() for g in np.array_split(np.arange(PARTITIONS), n)]


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ")


def snapshot_key(run_id: str, *parts: str) -> tuple[str, ...]:
    return (SNAPSHOTS, run_id, *parts)


def parsed_prefix(fingerprint: str) -> tuple[str, str]:
    return (STATE, f"parsed/{fingerprint}")


def extracted_prefix(xfp: str, *parts: str) -> tuple[str, ...]:
    return (STATE, f"extracted/{xfp}", *parts)


def extracted_part(xfp: str, *parts: str) -> tuple[str, ...]:
    """``state/extracted/<xfp>/parts/[<key>/[<file>]]``: the extracted parts of a fingerprint."""
    return extracted_prefix(xfp, "parts", *parts)


EXTRACTED_ROOT = (STATE, "extracted")  # one folder per extraction fingerprint
RUNS_ROOT = (STATE, "runs")            # one folder per run


def run_state(run_id: str, *parts: str) -> tuple[str, ...]:
    return (STATE, f"runs/{run_id}", *parts)


def live_file(group: int) -> str:
    """A resolution group's file in a run's live/, resolved/ and served/ folders."""
    return f"{group:04d}.parquet"


def failed_files_part(run_id: str) -> str:
    """The snapshot's rejects file that lists the input files that could not be parsed."""
    return part_name(run_id, "failed-files")


def part_name(*keys: str) -> str:
    """Deterministic file name from what the file was made of: a retry overwrites, never duplicates."""
    return "part-" + hashlib.sha256("\x1f".join(keys).encode()).hexdigest()[:16] + ".parquet"
