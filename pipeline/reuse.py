"""Extraction reuse: a document is sent to the models only when its text or the extraction changed.

Every extraction block's output is kept under ``state/extracted/<xfp>/parts/<key>/`` (see
``pipeline.layout``): ``xfp``, the extraction fingerprint, hashes everything that decides extraction
output (the NER, normalizer and relation model ids, the settings their hashes do not cover, the
precision, windowing, the parser version whose sentences the models read, and ``EXTRACTION_VERSION``); ``key`` hashes the (doc_id, text_sha256) pairs of
the block. ``docs.parquet`` is written last, so a part without it is unfinished and ignored.

A run looks each live document up by (doc_id, text_sha256), in resolution's tasks
(``pipeline.resolve``): in the previous run's served table (when it ran under the same fingerprint)
and in the parts no served table knows (a killed run's). Found, its rows are reused, even when the
record arrived in another input file (the yearly baseline re-release); not found, it is extracted.
The snapshot's entities and relations are then carried from the parts: a part all of whose documents
are served is copied inside the store (S3 CopyObject), a part that also holds superseded or deleted
documents is filtered. A killed run's finished parts are found by the rerun, which so redoes only
unfinished blocks. Parts are content-addressed and written whole, so a retried or concurrent block
writes the same bytes.

Garbage collection (after a commit): fingerprint folders that no retained snapshot names are
removed, in the current fingerprint the parts that hold none of the committed snapshot's documents,
and every run's working state but the committed run's.
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
from pipeline.layout import (EXTRACTED_DOCS, EXTRACTED_ROOT, RUNS_ROOT, SERVED_DIR, extracted_part, part_name, run_state,
                             snapshot_key, table_file)
from pipeline.storage import Store

EXTRACTION_VERSION = "extract-v1"  # bump when extraction code changes its output for the same models


def fingerprint(models: dict, settings: dict) -> tuple[str, dict]:
    """(xfp, what it hashes): ``models`` maps a role to the manifest fields that decide its output."""
    key = {"version": EXTRACTION_VERSION, "models": models, "settings": settings}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16], key


def finished_parts(store: Store, xfp: str) -> list[str]:
    """The keys of every finished part of ``xfp`` (one listing; a part without its marker is not)."""
    return sorted(posixpath.basename(posixpath.dirname(m)) for m in
                  store.glob(*extracted_part(xfp), "*", EXTRACTED_DOCS))


def carry_plan(counts: pa.Table) -> tuple[list[str], list[str]]:
    """From the groups' part counts (``pipeline.resolve.serve_group``): the parts whose every document is served (copied whole) and the
    parts only some of whose documents are (filtered)."""
    if not counts.num_rows:
        return [], []
    total = counts.group_by("part").aggregate([("served", "sum"), ("part_docs", "max")])
    whole = pc.equal(total.column("served_sum"), total.column("part_docs_max").cast(pa.int64()))
    parts = total.column("part")
    return sorted(parts.filter(whole).to_pylist()), sorted(parts.filter(pc.invert(whole)).to_pylist())


def carry_parts(store_url: str, storage_options: dict, run_id: str, xfp: str, whole: list[str],
                filtered: list[str]) -> dict:
    """Entities and relations of extracted parts into the snapshot (a Ray task per batch of parts):
    ``whole`` parts by copy inside the store, ``filtered`` ones to the documents the run's served
    table assigns to them."""
    store = Store(store_url, storage_options)
    for part in whole:
        for name in ("entities", "relations"):
            store.copy(extracted_part(xfp, part, table_file(name)),
                       snapshot_key(run_id, name, part_name(xfp, part, name)))
    if filtered:
        names = sorted(p.rsplit("/", 1)[1] for p in store.glob(*run_state(run_id, SERVED_DIR, "*.parquet")))
        served = pa.concat_tables([store.read_table(*run_state(run_id, SERVED_DIR, n), columns=["doc_id", "part"])
                                   for n in names])
        served = served.filter(pc.is_in(served.column("part"), value_set=pa.array(filtered, pa.string())))
        for part in filtered:
            keep = served.filter(pc.equal(served.column("part"), part)).column("doc_id")
            for name in ("entities", "relations"):
                table = store.read_table(*extracted_part(xfp, part, table_file(name)),
                                         schema=schemas.SNAPSHOT_TABLES[name])
                table = table.filter(pc.is_in(table.column("doc_id"), value_set=keep))
                if table.num_rows:
                    store.write_table(table, *snapshot_key(run_id, name, part_name(xfp, part, name)))
    return {"copied": len(whole), "filtered": len(filtered)}


def collect_garbage(store: Store, xfp: str, served_parts: set[str], keep_fingerprints: set[str],
                    run_id: str | None = None) -> dict:
    """Remove extraction state no snapshot will reuse: other fingerprints than ``keep_fingerprints``
    (those the retained snapshots name), parts of ``xfp`` that serve no document of it, and the
    working state of every run but ``run_id`` (the committed one: its served table is the next
    night's lookup)."""
    removed = {"fingerprints": 0, "parts": 0, "runs": 0}
    for fp in list(store.iter_dirs(*EXTRACTED_ROOT)):
        if fp != xfp and fp not in keep_fingerprints:
            store.remove(*EXTRACTED_ROOT, fp)
            removed["fingerprints"] += 1
    for part in list(store.iter_dirs(*extracted_part(xfp))):
        if part not in served_parts:
            store.remove(*extracted_part(xfp, part))
            removed["parts"] += 1
    if run_id is not None:
        for other in list(store.iter_dirs(*RUNS_ROOT)):
            if other != run_id:
                store.remove(*run_state(other))
                removed["runs"] += 1
    return removed
