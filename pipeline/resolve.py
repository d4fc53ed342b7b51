"""Stage 3: the live document set.

For each PMID the record from the highest file sequence wins (within a file, the later record).
A DeleteCitation removes the PMID when it comes from a file newer than the winning record; a PMID
deleted and then re-added in a later file is live again. Equal sequence (a file that both carries
and deletes a PMID) keeps the record: NLM lists in a file's DeleteCitation the PMIDs deleted since
the previous file.

At corpus scale nothing here runs in the driver. Each parsed shard's id columns are written once,
hash-partitioned by doc_id (``write_keys``: ``keys-p64.parquet``, a row group per partition), and the
live set is resolved by Ray tasks, one per group of partitions (``resolve_group``), each reading only
its partitions' row groups of every shard. A document's every version lands in one partition, so
each group decides its documents alone. A group also looks its live documents up in the extraction
index (which finished part serves each unchanged text) and counts the night's changes against the
previous run's live set; it writes its live rows by shard (``live/``, for the publish tasks) and by
partition (``resolved/``, for the carry step) under ``state/runs/<run_id>/``, and returns counts only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import schemas
from pipeline.layout import (DOCUMENTS_FILE, DELETIONS_FILE, EXTRACTED_DOCS, INDEX_DIR, KEYS, LIVE_DIR, RESOLVED_DIR,
                             SERVED_DIR, extracted_part, live_file, parsed_prefix, partition_of, run_state, snapshot_key)
from pipeline.storage import Store


@dataclass
class Resolution:
    live: dict[int, pa.Array]   # shard index -> doc_ids of that shard that are live
    superseded: int             # records replaced by a newer version
    deleted: int                # PMIDs removed by DeleteCitation
    live_count: int
    live_sha: dict[int, pa.Array] | None = None  # shard index -> text_sha256 of those documents, aligned


COLUMNS = ["doc_id", "pmid", "source", "source_seq", "position", "text_sha256"]
_TYPES = [pa.string(), pa.int64(), pa.string(), pa.int64(), pa.int64(), pa.string()]


def resolve(documents: list[pa.Table], deletions: list[pa.Table]) -> Resolution:
    """``documents[i]`` has columns doc_id, pmid, source, source_seq, position (and text_sha256, which
    is carried to ``live_sha`` when every shard has it) of shard i."""
    with_sha = bool(documents) and all("text_sha256" in t.column_names for t in documents)
    columns = COLUMNS if with_sha else COLUMNS[:-1]
    docs = pa.concat_tables(
        [t.select(columns).append_column(
            "shard", pa.array(np.full(t.num_rows, i, dtype=np.int32))) for i, t in enumerate(documents)]
        or [pa.table({c: pa.array([], ty) for c, ty in zip(columns, _TYPES)} | {"shard": pa.array([], pa.int32())})]
    )
    total = docs.num_rows
    if total:
        docs = docs.sort_by([("doc_id", "ascending"), ("source_seq", "descending"), ("position", "descending")])
        ids = docs.column("doc_id").to_numpy(zero_copy_only=False)
        first = np.ones(total, dtype=bool)
        first[1:] = ids[1:] != ids[:-1]
        docs = docs.filter(pa.array(first))
    superseded = total - docs.num_rows

    deleted = 0
    dels = pa.concat_tables([d.select(["pmid", "source_seq"]) for d in deletions]) if deletions else None
    if dels is not None and dels.num_rows and docs.num_rows:
        latest = dels.group_by("pmid").aggregate([("source_seq", "max")]).rename_columns(["pmid", "deleted_seq"])
        joined = docs.join(latest, "pmid", join_type="left outer")
        gone = pc.fill_null(pc.and_(pc.equal(joined.column("source"), "medline"),  # PMC full text has its own life
                                    pc.greater(joined.column("deleted_seq"), joined.column("source_seq"))), False)
        deleted = pc.sum(gone).as_py() or 0
        docs = joined.filter(pc.invert(gone)).drop_columns(["deleted_seq"])

    live: dict[int, pa.Array] = {}
    live_sha: dict[int, pa.Array] = {}
    shard_col = docs.column("shard").to_numpy()
    for i in range(len(documents)):
        mine = pa.array(shard_col == i)
        live[i] = docs.column("doc_id").filter(mine).combine_chunks() if docs.num_rows else pa.array([], pa.string())
        if with_sha:
            live_sha[i] = docs.column("text_sha256").filter(mine).combine_chunks() if docs.num_rows else pa.array([], pa.string())
    return Resolution(live=live, superseded=superseded, deleted=int(deleted), live_count=docs.num_rows,
                      live_sha=live_sha if with_sha else None)


LIVE, SERVED = schemas.LIVE, schemas.SERVED


def write_keys(store_url: str, storage_options: dict, fingerprint: str) -> None:
    """A parsed shard's id columns by partition, once (a Ray task per shard; kept with the shard)."""
    store = Store(store_url, storage_options)
    if store.exists(*parsed_prefix(fingerprint), KEYS):
        return
    t = store.read_table(*parsed_prefix(fingerprint), DOCUMENTS_FILE, columns=COLUMNS)
    t = t.append_column("partition", pa.array(partition_of(t.column("doc_id")), pa.int32()))
    store.write_grouped(t, "partition", *parsed_prefix(fingerprint), KEYS)


def assign_parts(live: pa.Table, index: pa.Table) -> pa.Table:
    """``live`` (doc_id, text_sha256, ...) with the ``part`` (and its ``part_docs``) that serves each
    text in ``index`` (SERVED rows): the smallest key when several parts hold it (a retried or resumed
    block); null where none does."""
    live = live.drop_columns([c for c in ("part", "part_docs") if c in live.column_names])
    index = index.filter(pc.is_valid(index.column("part"))) if index.num_rows else index
    if not index.num_rows or not live.num_rows:
        return live.append_column("part", pa.nulls(live.num_rows, pa.string())).append_column(
            "part_docs", pa.nulls(live.num_rows, pa.int32()))
    best = index.group_by(["doc_id", "text_sha256"]).aggregate([("part", "min")]).rename_columns(
        ["doc_id", "text_sha256", "part"])
    sizes = index.group_by("part").aggregate([("part_docs", "max")]).rename_columns(["part", "part_docs"])
    return live.join(best, keys=["doc_id", "text_sha256"], join_type="left outer").join(
        sizes, keys="part", join_type="left outer")


def read_served(store: Store, run_id: str, partitions: list[int], folder: str = SERVED_DIR) -> pa.Table:
    """The SERVED rows of ``partitions`` in a run's ``folder`` (served/ or index/)."""
    names = sorted(p.rsplit("/", 1)[1] for p in store.glob(*run_state(run_id, folder, "*.parquet")))
    tables = [store.read_groups(partitions, *run_state(run_id, folder, n), key="partition") for n in names]
    return pa.concat_tables(tables).cast(SERVED) if tables else SERVED.empty_table()


def resolve_group(store_url: str, storage_options: dict, run_id: str, group: int, partitions: list[int],
                  shards: list[tuple[int, str]], previous: str | None, lookup_previous: bool) -> dict:
    """One group of partitions (a Ray task): the live documents of ``shards`` ((shard index,
    fingerprint), in file order), the part that already serves each (the previous run's served table
    when ``lookup_previous``, and this run's index of parts no served table knows), and the night's
    changes against ``previous``'s live set. Writes ``live/`` and ``resolved/``; returns counts."""
    store = Store(store_url, storage_options)
    docs = [store.read_groups(partitions, *parsed_prefix(fp), KEYS, key="partition") for _, fp in shards]
    dels = [store.read_table(*parsed_prefix(fp), DELETIONS_FILE, schema=schemas.DELETIONS) for _, fp in shards]
    res = resolve(docs, dels)
    live = pa.concat_tables([
        pa.table({"shard": pa.array(np.full(len(res.live[k]), idx, dtype=np.int32)), "doc_id": res.live[k],
                  "text_sha256": res.live_sha[k]}) for k, (idx, _) in enumerate(shards)]
        or [pa.table({"shard": pa.array([], pa.int32()), "doc_id": pa.array([], pa.string()),
                      "text_sha256": pa.array([], pa.string())})])
    before = read_served(store, previous, partitions) if previous else SERVED.empty_table()
    if previous and not before.num_rows and not store.glob(*run_state(previous, SERVED_DIR, "*.parquet")):
        before = _previous_snapshot_documents(store, previous, partitions)  # a store written before served/
    index = read_served(store, run_id, partitions, INDEX_DIR)
    if lookup_previous:
        index = pa.concat_tables([index, before])
    live = assign_parts(live, index)
    store.write_grouped(live.select(LIVE.names).cast(LIVE), "shard", *run_state(run_id, LIVE_DIR, live_file(group)))
    resolved = live.append_column("partition", pa.array(partition_of(live.column("doc_id")), pa.int32()))
    store.write_table(resolved.select(SERVED.names).cast(SERVED), *run_state(run_id, RESOLVED_DIR, live_file(group)))
    return {"live": live.num_rows, "superseded": res.superseded, "deleted": res.deleted,
            "reused": int(pc.sum(pc.is_valid(live.column("part"))).as_py() or 0), **night(live, before, previous)}


def _previous_snapshot_documents(store: Store, previous: str, partitions: list[int]) -> pa.Table:
    t = store.read_table(*snapshot_key(previous, "documents"), columns=["doc_id", "text_sha256"])
    t = t.filter(pa.array(np.isin(partition_of(t.column("doc_id")), partitions)))
    return pa.table({"partition": pa.array(partition_of(t.column("doc_id")), pa.int32()), "doc_id": t.column("doc_id"),
                     "text_sha256": t.column("text_sha256"), "part": pa.nulls(t.num_rows, pa.string()),
                     "part_docs": pa.nulls(t.num_rows, pa.int32())}, schema=SERVED)


def night(live: pa.Table, before: pa.Table, previous: str | None) -> dict:
    """Documents added / revised / unchanged / deleted against the previous run's live set."""
    if previous is None:
        return {"added": live.num_rows, "revised": 0, "unchanged": 0, "night_deleted": 0}
    same_id = live.select(["doc_id", "text_sha256"]).join(
        before.select(["doc_id", "text_sha256"]).rename_columns(["doc_id", "before"]), "doc_id", join_type="inner")
    unchanged = int(pc.sum(pc.equal(same_id.column("text_sha256"), same_id.column("before"))).as_py() or 0)
    return {"added": live.num_rows - same_id.num_rows, "revised": same_id.num_rows - unchanged, "unchanged": unchanged,
            "night_deleted": before.num_rows - same_id.num_rows}


def index_parts(store_url: str, storage_options: dict, run_id: str, xfp: str, parts: list[str], name: str) -> int:
    """The (doc_id, text_sha256) of ``parts`` by partition, as ``state/runs/<run>/index/<name>`` (a
    Ray task per batch of parts): how resolution and the carry step find what a part serves without
    the driver reading any marker. Returns the rows written."""
    store = Store(store_url, storage_options)
    tables = []
    for part in parts:
        t = store.read_table(*extracted_part(xfp, part, EXTRACTED_DOCS), schema=schemas.EXTRACTED_DOCS)
        tables.append(pa.table({"partition": pa.array(partition_of(t.column("doc_id")), pa.int32()),
                                "doc_id": t.column("doc_id"), "text_sha256": t.column("text_sha256"),
                                "part": pa.array([part] * t.num_rows, pa.string()),
                                "part_docs": pa.array([t.num_rows] * t.num_rows, pa.int32())}, schema=SERVED))
    table = pa.concat_tables(tables) if tables else SERVED.empty_table()
    store.write_grouped(table, "partition", *run_state(run_id, INDEX_DIR, name))
    return table.num_rows


PART_COUNTS = schemas.PART_COUNTS


def serve_group(store_url: str, storage_options: dict, run_id: str, group: int, partitions: list[int]) -> pa.Table:
    """After extraction, one group of partitions (a Ray task): its live documents (``resolved/``) with
    the part that serves each, this run's new parts (``index/``) filling what resolution left open,
    written as ``served/<group>`` (the next run's reuse lookup and night diff). Returns per part how
    many of its documents this group's live set uses (PART_COUNTS)."""
    store = Store(store_url, storage_options)
    live = store.read_table(*run_state(run_id, RESOLVED_DIR, live_file(group)), schema=SERVED)
    served = assign_parts(live.filter(pc.is_null(live.column("part"))), read_served(store, run_id, partitions, INDEX_DIR))
    served = pa.concat_tables([live.filter(pc.is_valid(live.column("part"))), served.select(SERVED.names).cast(SERVED)])
    store.write_grouped(served, "partition", *run_state(run_id, SERVED_DIR, live_file(group)))
    used = served.filter(pc.is_valid(served.column("part")))
    if not used.num_rows:
        return PART_COUNTS.empty_table()
    return used.group_by("part").aggregate([("doc_id", "count"), ("part_docs", "max")]).rename_columns(
        PART_COUNTS.names).cast(PART_COUNTS)
