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
                         live_doc_ids: pa.Array, live_sha: pa.Array, extract_doc_ids: pa.Array | None = None,
                         n_blocks: int = 1) -> tuple:
    """Put the live rows of one parsed shard into the snapshot: a table whose rows are all live is
    copied inside the store (server side on S3), never read and written again; otherwise its live rows
    are written. Returns the counts, then the sentences of ``extract_doc_ids`` (default: every live
    document; the rest reuse earlier extraction) with their documents' ``text_sha256``, as ``n_blocks``
    tables that each hold whole documents (run it with ``num_returns=1 + n_blocks``: the blocks go to
    extraction through the object store). ``live_sha`` is the text hash of each live document (the
    version resolution chose). ``counts["block_rows"]`` says which blocks are empty, so that none is
    sent to extraction."""
    store = Store(store_url, storage_options)
    prefix = parsed_prefix(fingerprint)
    all_live = len(live_doc_ids) == store.parquet_rows(*prefix, "documents.parquet")
    counts: dict = {"copied_tables": 0}
    tables: dict[str, pa.Table] = {}
    for name in ("documents", "passages", "sentences", "rejects"):
        src, dst = (*prefix, f"{name}.parquet"), snapshot_key(run_id, name, part_name(fingerprint, name))
        if all_live or name == "rejects":  # rejects are the file's own: never filtered by liveness
            store.copy(src, dst)
            counts[name] = store.parquet_rows(*src)
            counts["copied_tables"] += 1
            continue
        table = store.read_table(*src, schema=schemas.PARSED_TABLES[name])
        table = table.filter(pc.is_in(table.column("doc_id"), value_set=live_doc_ids))
        if name == "documents":
            table = table.sort_by("doc_id")
        store.write_table(table, *dst)
        counts[name] = table.num_rows
        tables[name] = table
    sentences = tables.get("sentences")
    if sentences is None:
        sentences = store.read_table(*prefix, "sentences.parquet", schema=schemas.SENTENCES)
    counts["sentence_docs"] = pc.count_distinct(sentences.column("doc_id")).as_py() if sentences.num_rows else 0
    wanted = live_doc_ids if extract_doc_ids is None else extract_doc_ids
    sentences = sentences.filter(pc.is_in(sentences.column("doc_id"), value_set=wanted))
    sha = live_sha.take(pc.index_in(sentences.column("doc_id"), value_set=live_doc_ids))
    blocks = split_documents(sentences.select(["doc_id", "sent_idx", "start", "text"]).append_column("text_sha256", sha),
                             n_blocks)
    counts["extract_sentences"] = sentences.num_rows
    counts["block_rows"] = [b.num_rows for b in blocks]
    return (counts, *blocks)


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
