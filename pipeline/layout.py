"""Storage layout and names: where every file of a store lives. A shared contract: the driver, the
publish tasks, the parse stage and the extraction actors all write into one layout, so its names are
spelled out once, here.

    <store>/LATEST                                   the run_id of the newest complete snapshot
    <store>/snapshots/<run_id>/_manifest.json        written last: the snapshot is complete
    <store>/snapshots/<run_id>/<table>/part-<hash>.parquet
    <store>/state/parsed/<fingerprint>/<table>.parquet, _SUCCESS   one parsed input file
    <store>/state/extracted/<xfp>/parts/<key>/{entities,relations,docs}.parquet
                                 what one extraction block produced under extraction fingerprint <xfp>;
                                 docs.parquet (doc_id, text_sha256) is written last and marks it complete
"""

from __future__ import annotations

import datetime as dt
import hashlib

LATEST = "LATEST"
MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"  # a parsed shard's completion marker (its row counts, parser version)
EXTRACTED_DOCS = "docs.parquet"  # an extracted part's completion marker: the documents (and texts) it covers


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ")


def snapshot_key(run_id: str, *parts: str) -> tuple[str, ...]:
    return ("snapshots", run_id, *parts)


def parsed_prefix(fingerprint: str) -> tuple[str, str]:
    return ("state", f"parsed/{fingerprint}")


def extracted_prefix(xfp: str, *parts: str) -> tuple[str, ...]:
    return ("state", f"extracted/{xfp}", *parts)


def part_name(*keys: str) -> str:
    """Deterministic file name from what the file was made of: a retry overwrites, never duplicates."""
    return "part-" + hashlib.sha256("\x1f".join(keys).encode()).hexdigest()[:16] + ".parquet"
