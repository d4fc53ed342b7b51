"""Publishing a snapshot: the text tables of each parsed shard (a Ray task per shard, which also cuts
the sentences to extract into blocks of whole documents, written to the run's state for the
extraction stage to read lazily), the manifest, LATEST, retention.

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
from pipeline.layout import (DOCUMENTS_FILE, EXTRACT_DIR, LATEST, LIVE_DIR, MANIFEST, SNAPSHOTS, parsed_prefix, part_name,
                             run_state, snapshot_key, table_file)
from pipeline.manifest import Manifest
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


def publish_parsed_shard(store_url: str, storage_options: dict, run_id: str, shard: int, fingerprint: str,
                         live_files: list[str], batch_size: int) -> dict:
    """Put the live rows of one parsed shard (a Ray task per shard) into the snapshot: a table whose
    rows are all live is copied inside the store (server side on S3), never read and written again;
    otherwise its live rows are written. The shard's live documents come from resolution's
    ``live/<group>.parquet`` files (``live_files``: their names; only this shard's row group of each is
    read), with the part that already serves each text. The sentences of the others (to extract) are
    written as blocks of about ``batch_size`` sentences that each hold whole documents, to
    ``state/runs/<run>/extract/``; ``counts["blocks"]`` names the non-empty ones, in order, for the
    extraction stage to read as it goes."""
    store = Store(store_url, storage_options)
    prefix = parsed_prefix(fingerprint)
    live = pa.concat_tables([store.read_groups([shard], *run_state(run_id, LIVE_DIR, name), key="shard")
                             for name in live_files]) if live_files else None
    live_ids = live.column("doc_id") if live is not None else pa.chunked_array([], pa.string())
    all_live = len(live_ids) == store.parquet_rows(*prefix, DOCUMENTS_FILE)
    counts: dict = {"copied_tables": 0}
    tables: dict[str, pa.Table] = {}
    for name in ("documents", "passages", "sentences", "rejects"):
        src, dst = (*prefix, table_file(name)), snapshot_key(run_id, name, part_name(fingerprint, name))
        if all_live or name == "rejects":  # rejects are the file's own: never filtered by liveness
            store.copy(src, dst)
            counts[name] = store.parquet_rows(*src)
            counts["copied_tables"] += 1
            continue
        table = store.read_table(*src, schema=schemas.PARSED_TABLES[name])
        table = table.filter(pc.is_in(table.column("doc_id"), value_set=live_ids))
        if name == "documents":
            table = table.sort_by("doc_id")
        store.write_table(table, *dst)
        counts[name] = table.num_rows
        tables[name] = table
    sentences = tables.get("sentences")
    if sentences is None:
        sentences = store.read_table(*prefix, table_file("sentences"), schema=schemas.SENTENCES)
    counts["sentence_docs"] = pc.count_distinct(sentences.column("doc_id")).as_py() if sentences.num_rows else 0
    todo = live.filter(pc.is_null(live.column("part"))) if live is not None else None
    counts["blocks"], counts["extract_sentences"] = [], 0
    if todo is None or not todo.num_rows:
        return counts
    sentences = sentences.filter(pc.is_in(sentences.column("doc_id"), value_set=todo.column("doc_id")))
    sha = todo.column("text_sha256").take(pc.index_in(sentences.column("doc_id"), value_set=todo.column("doc_id")))
    sentences = sentences.select(["doc_id", "sent_idx", "start", "text"]).append_column("text_sha256", sha)
    for k, block in enumerate(split_documents(sentences, max(1, -(-sentences.num_rows // batch_size)))):
        if block.num_rows:  # a long document leaves later blocks empty: never sent
            name = f"{fingerprint}-{k:05d}.parquet"
            store.write_table(block, *run_state(run_id, EXTRACT_DIR, name))
            counts["blocks"].append([name, block.num_rows])
    counts["extract_sentences"] = sentences.num_rows
    return counts


def count_files(store_url: str, storage_options: dict, run_id: str, name: str, files: list[str]) -> dict:
    """What some files of a snapshot table hold (a Ray task per batch of files): rows (from the
    footers), and entities by type and linked by type, relations by type, rejects by reason."""
    from collections import Counter

    store = Store(store_url, storage_options)
    out: dict = {"rows": {name: 0}}
    column = {"entities": "type", "relations": "type", "rejects": "reason"}.get(name)
    by, linked_by = Counter(), Counter()
    for f in files:
        key = snapshot_key(run_id, name, f)
        if column is None:
            out["rows"][name] += store.parquet_rows(*key)
            continue
        t = store.read_table(*key, columns=[column, "concept_id"] if name == "entities" else [column])
        out["rows"][name] += t.num_rows
        by.update(t.column(column).to_pylist())
        if name == "entities":
            linked_by.update(t.filter(pc.is_valid(t.column("concept_id"))).column(column).to_pylist())
    if column:
        out[{"entities": "entities_by_type", "relations": "relations_by_type", "rejects": "rejects_by_reason"}[name]] = dict(by)
    if name == "entities":
        out["linked_by_type"] = dict(linked_by)
    return out


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
    return sorted(r for r in store.iter_dirs(SNAPSHOTS) if store.exists(*snapshot_key(r, MANIFEST)))


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


def read_manifest(store: Store, run_id: str) -> Manifest:
    """A complete snapshot's manifest, typed (any earlier manifest reads: what it lacks is empty)."""
    return Manifest.from_json(store.read_json(*snapshot_key(run_id, MANIFEST)))


def list_snapshots(store: Store) -> list[dict]:
    """Every complete snapshot, oldest first: its run id, when it was published, its counts, and
    whether LATEST names it (``pubmine snapshots``)."""
    current = latest(store)
    out = []
    for run_id in complete_snapshots(store):
        m = read_manifest(store, run_id)
        out.append({"run_id": run_id, "published_at": m.published_at, "documents": m.counts.documents,
                    "entities": m.counts.entities, "relations": m.counts.relations,
                    "concepts": m.rows.get("concepts"), "latest": run_id == current})
    return out


def pick_snapshots(store: Store, at: str | None = None, since: str | None = None) -> tuple[str, str | None]:
    """(the snapshot to read: ``at`` or LATEST's, the one to compare with: ``since`` or the complete
    snapshot before it, None for the first). A name that is no complete snapshot is a PublishError
    line saying how to list them."""
    complete = complete_snapshots(store)
    run_id = at or latest(store)
    if run_id is None:
        raise PublishError(f"no snapshot in {store.uri()}: LATEST does not exist (run `pubmine run` first, or check --store)")
    for name in (run_id, since):
        if name is not None and name not in complete:
            raise PublishError(f"{name!r} is not a complete snapshot of {store.uri()} (`pubmine snapshots` lists them)")
    earlier = [r for r in complete if r < run_id]
    return run_id, since or (earlier[-1] if earlier else None)
