"""Stage 5: snapshot layout, the manifest, LATEST, retention.

A snapshot is complete when its ``_manifest.json`` exists; LATEST is written after it and names the
newest complete snapshot. A run that fails before that leaves LATEST and earlier snapshots untouched.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import pyarrow as pa
import pyarrow.compute as pc

from pipeline import schemas
from pipeline.errors import PublishError
from pipeline.storage import Store

LATEST = "LATEST"
MANIFEST = "_manifest.json"


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ")


def snapshot_key(run_id: str, *parts: str) -> tuple[str, ...]:
    return ("snapshots", run_id, *parts)


def part_name(*keys: str) -> str:
    """Deterministic file name from what the file was made of: a retry overwrites, never duplicates."""
    return "part-" + hashlib.sha256("\x1f".join(keys).encode()).hexdigest()[:16] + ".parquet"


def publish_parsed_shard(store_url: str, storage_options: dict, run_id: str, fingerprint: str,
                         live_doc_ids: pa.Array, n_blocks: int = 1) -> tuple:
    """Copy the live rows of one parsed shard into the snapshot. Returns the row counts, then the live
    sentences as ``n_blocks`` tables that each hold whole documents (run it with
    ``num_returns=1 + n_blocks``: the blocks go to extraction through the object store)."""
    from workers.stages import split_documents

    from pipeline.beam.run import parsed_prefix

    store = Store(store_url, storage_options)
    prefix = parsed_prefix(fingerprint)
    counts = {}
    sentences = None
    for name in ("documents", "passages", "sentences"):
        table = store.read_table(*prefix, f"{name}.parquet", schema=schemas.PARSED_TABLES[name])
        table = table.filter(pc.is_in(table.column("doc_id"), value_set=live_doc_ids))
        if name == "documents":
            table = table.sort_by("doc_id")
        store.write_table(table, *snapshot_key(run_id, name, part_name(fingerprint, name)))
        counts[name] = table.num_rows
        if name == "sentences":
            sentences = table.select(["doc_id", "sent_idx", "start", "text"])
            counts["sentence_docs"] = pc.count_distinct(table.column("doc_id")).as_py() if table.num_rows else 0
    rejects = store.read_table(*prefix, "rejects.parquet", schema=schemas.REJECTS)
    store.write_table(rejects, *snapshot_key(run_id, "rejects", part_name(fingerprint, "rejects")))
    counts["rejects"] = rejects.num_rows
    return (counts, *split_documents(sentences, n_blocks))


def ensure_table(store: Store, run_id: str, name: str) -> None:
    """Every snapshot table exists, even when empty, so readers can always glob it."""
    if not store.parquet_files(*snapshot_key(run_id, name)):
        store.write_table(schemas.SNAPSHOT_TABLES[name].empty_table(),
                          *snapshot_key(run_id, name, part_name(run_id, name, "empty")))


def commit(store: Store, run_id: str, manifest: dict) -> None:
    """Write the manifest, then LATEST. Only after this is the snapshot visible to readers."""
    for name in schemas.SNAPSHOT_TABLES:
        ensure_table(store, run_id, name)
    store.write_json(manifest, *snapshot_key(run_id, MANIFEST))
    if not store.exists(*snapshot_key(run_id, MANIFEST)):
        raise PublishError(f"manifest of snapshot {run_id} did not land in {store.uri()}; LATEST not moved")
    store.write_text(run_id + "\n", LATEST)


def latest(store: Store) -> str | None:
    if not store.exists(LATEST):
        return None
    return store.read_text(LATEST).strip() or None


def complete_snapshots(store: Store) -> list[str]:
    return sorted(r for r in store.iter_dirs("snapshots") if store.exists(*snapshot_key(r, MANIFEST)))


def apply_retention(store: Store, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` complete snapshots (never the one LATEST names)."""
    if keep <= 0:
        return []
    current = latest(store)
    snaps = complete_snapshots(store)
    doomed = [s for s in snaps[:-keep] if s != current]
    for s in doomed:
        store.remove(*snapshot_key(s))
    return doomed
