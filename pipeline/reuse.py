"""Extraction reuse: a document is sent to the models only when its text or the extraction changed.

Every extraction block's output is kept under ``state/extracted/<xfp>/parts/<key>/`` (see
``pipeline.layout``): ``xfp``, the extraction fingerprint, hashes everything that decides extraction
output (the NER, normalizer and relation model ids, the settings their hashes do not cover, the
precision, windowing, the parser version whose sentences the models read, and ``EXTRACTION_VERSION``); ``key`` hashes the (doc_id, text_sha256) pairs of
the block. ``docs.parquet`` is written last, so a part without it is unfinished and ignored.

A run looks each live document up by (doc_id, text_sha256) in the parts of its own fingerprint:
found, its rows are reused, even when the record arrived in another input file (the yearly baseline
re-release); not found, it is extracted. The snapshot's entities and relations are then carried from
the parts: a part all of whose documents are live is copied inside the store (S3 CopyObject), a part
that also holds superseded or deleted documents is filtered. A killed run's finished parts are found
by the rerun, which so redoes only unfinished blocks. Parts are content-addressed and written whole,
so a retried or concurrent block writes the same bytes.

Garbage collection (after a commit): fingerprint folders that no retained snapshot names are
removed, and, in the current fingerprint, parts that hold none of the committed snapshot's documents.
It assumes one run at a time per store (the nightly schedule); a concurrent run could lose a part it
was about to carry and would then fail, not publish.
"""

from __future__ import annotations

import hashlib
import json
import posixpath

import pyarrow as pa
import pyarrow.compute as pc

from pipeline import schemas
from pipeline.layout import EXTRACTED_DOCS, extracted_prefix, part_name, snapshot_key
from pipeline.storage import Store

EXTRACTION_VERSION = "extract-v1"  # bump when extraction code changes its output for the same models
ASSIGNMENT = pa.schema([("doc_id", pa.string()), ("part", pa.string())])
INDEX = schemas.EXTRACTED_DOCS.append(pa.field("part", pa.string()))  # what load_index returns


def fingerprint(models: dict, settings: dict) -> tuple[str, dict]:
    """(xfp, what it hashes): ``models`` maps a role to the manifest fields that decide its output."""
    key = {"version": EXTRACTION_VERSION, "models": models, "settings": settings}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16], key


def load_index(store: Store, xfp: str) -> pa.Table:
    """(doc_id, text_sha256, part) of every finished part of ``xfp``."""
    tables = []
    for marker in store.glob(*extracted_prefix(xfp, "parts"), "*", EXTRACTED_DOCS):
        part = posixpath.basename(posixpath.dirname(marker))
        t = store.read_table(*extracted_prefix(xfp, "parts", part, EXTRACTED_DOCS), schema=schemas.EXTRACTED_DOCS)
        tables.append(t.append_column("part", pa.array([part] * t.num_rows, pa.string())))
    return pa.concat_tables(tables) if tables else INDEX.empty_table()


def assign(index: pa.Table, live: pa.Table) -> pa.Table:
    """For each live (doc_id, text_sha256) found in ``index``, the part that serves it (the smallest
    key when several parts hold the same text, e.g. after a retried or resumed block)."""
    if not index.num_rows or not live.num_rows:
        return ASSIGNMENT.empty_table()
    joined = live.select(["doc_id", "text_sha256"]).join(index, keys=["doc_id", "text_sha256"], join_type="inner")
    if not joined.num_rows:
        return ASSIGNMENT.empty_table()
    return joined.group_by("doc_id").aggregate([("part", "min")]).rename_columns(["doc_id", "part"]).cast(ASSIGNMENT)


def carry_plan(index: pa.Table, assignment: pa.Table) -> list[tuple[str, list[str] | None]]:
    """(part, None) for a part whose every document is assigned to it (copied whole), else (part, the
    doc_ids to keep) (filtered); parts with no assigned document are not carried."""
    if not assignment.num_rows:
        return []
    held = dict(zip(*index.group_by("part").aggregate([("doc_id", "count")]).to_pydict().values()))
    keep: dict[str, list[str]] = {}
    for doc_id, part in zip(assignment.column("doc_id").to_pylist(), assignment.column("part").to_pylist()):
        keep.setdefault(part, []).append(doc_id)
    return [(part, None if len(ids) == held[part] else sorted(ids)) for part, ids in sorted(keep.items())]


def carry_parts(store_url: str, storage_options: dict, run_id: str, xfp: str,
                items: list[tuple[str, list[str] | None]]) -> dict:
    """Entities and relations of extracted parts into the snapshot (a Ray task per batch of parts):
    whole parts by copy inside the store, the others filtered to the documents they serve."""
    store = Store(store_url, storage_options)
    out = {"copied": 0, "filtered": 0}
    for part, keep in items:
        for name in ("entities", "relations"):
            src = extracted_prefix(xfp, "parts", part, f"{name}.parquet")
            dst = snapshot_key(run_id, name, part_name(xfp, part, name))
            if keep is None:
                store.copy(src, dst)
                continue
            table = store.read_table(*src, schema=schemas.SNAPSHOT_TABLES[name])
            table = table.filter(pc.is_in(table.column("doc_id"), value_set=pa.array(keep, pa.string())))
            if table.num_rows:
                store.write_table(table, *dst)
        out["copied" if keep is None else "filtered"] += 1
    return out


def collect_garbage(store: Store, xfp: str, served_parts: set[str], keep_fingerprints: set[str]) -> dict:
    """Remove extraction state no snapshot will reuse: other fingerprints than ``keep_fingerprints``
    (those the retained snapshots name) and parts of ``xfp`` that serve no document of it."""
    removed = {"fingerprints": 0, "parts": 0}
    for fp in list(store.iter_dirs("state", "extracted")):
        if fp != xfp and fp not in keep_fingerprints:
            store.remove("state", "extracted", fp)
            removed["fingerprints"] += 1
    for part in list(store.iter_dirs(*extracted_prefix(xfp, "parts"))):
        if part not in served_parts:
            store.remove(*extracted_prefix(xfp, "parts", part))
            removed["parts"] += 1
    return removed
