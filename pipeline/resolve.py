"""Stage 3: the live document set.

For each PMID the record from the highest file sequence wins (within a file, the later record).
A DeleteCitation removes the PMID when it comes from a file newer than the winning record; a PMID
deleted and then re-added in a later file is live again. Equal sequence (a file that both carries
and deletes a PMID) keeps the record: NLM lists in a file's DeleteCitation the PMIDs deleted since
the previous file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import schemas


@dataclass
class Resolution:
    live: dict[int, pa.Array]   # shard index -> doc_ids of that shard that are live
    superseded: int             # records replaced by a newer version
    deleted: int                # PMIDs removed by DeleteCitation
    live_count: int
    live_sha: dict[int, pa.Array] | None = None  # shard index -> text_sha256 of those documents, aligned

    @cached_property
    def documents(self) -> pa.Table:
        """(doc_id, text_sha256) of every live document, built once (reuse lookup, carry, the night's
        changes all read it)."""
        if not self.live:
            return schemas.EXTRACTED_DOCS.empty_table()
        shards = sorted(self.live)
        return pa.table({"doc_id": pa.concat_arrays([self.live[k] for k in shards]),
                         "text_sha256": pa.concat_arrays([self.live_sha[k] for k in shards])},
                        schema=schemas.EXTRACTED_DOCS)


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
