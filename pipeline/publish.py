"""Publishing a snapshot: the text tables of each parsed shard (a Ray task per shard, which also cuts
the live sentences into extraction blocks of whole documents), the manifest, LATEST, retention.

A snapshot is complete when its ``_manifest.json`` exists; LATEST is written after it and names the
newest complete snapshot. A run that fails before that leaves LATEST and earlier snapshots untouched.
The names of the files are in ``pipeline.layout``.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import schemas
from pipeline.errors import PublishError
from pipeline.layout import LATEST, MANIFEST, parsed_prefix, part_name, snapshot_key
from pipeline.storage import Store


def split_documents(sentences: pa.Table, n_blocks: int) -> list[pa.Table]:
    """Cut a sentences table (each document's rows contiguous) into exactly ``n_blocks`` blocks of
    about equal size that never split a document: block k ends at the first document start at or
    after (k+1)/n of the rows (a long document can leave later blocks empty)."""
    n = sentences.num_rows
    if n == 0 or n_blocks <= 1:
        return [sentences] + [sentences.slice(0, 0)] * (n_blocks - 1)
    doc = sentences.column("doc_id")
    starts = np.flatnonzero(pc.not_equal(doc.slice(1), doc.slice(0, n - 1)).to_numpy(zero_copy_only=False)) + 1
    starts = np.append(starts, n)
    target = math.ceil(n / n_blocks)
    cuts = [0] + [int(starts[np.searchsorted(starts, (k + 1) * target)]) if (k + 1) * target < n else n
                  for k in range(n_blocks - 1)] + [n]
    return [sentences.slice(a, max(b - a, 0)) for a, b in zip(cuts, cuts[1:])]


def publish_parsed_shard(store_url: str, storage_options: dict, run_id: str, fingerprint: str,
                         live_doc_ids: pa.Array, n_blocks: int = 1) -> tuple:
    """Copy the live rows of one parsed shard into the snapshot. Returns the row counts, then the live
    sentences as ``n_blocks`` tables that each hold whole documents (run it with
    ``num_returns=1 + n_blocks``: the blocks go to extraction through the object store)."""
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
