"""Every Arrow schema pubmine writes, spelled out once. Nothing is inferred.

Parsed shards (state/parsed/<fingerprint>/) and snapshot tables (snapshots/<run_id>/) use these.
Multi-valued fields are list/struct columns, never delimited strings.
"""

from __future__ import annotations

import pyarrow as pa

MESH_HEADING = pa.struct(
    [
        ("ui", pa.string()),
        ("name", pa.string()),
        ("major", pa.bool_()),
    ]
)

DOCUMENTS = pa.schema(
    [
        ("doc_id", pa.string()),          # "pmid:<n>" or "pmc:<PMCID>"
        ("pmid", pa.int64()),
        ("pmid_version", pa.int32()),
        ("pmcid", pa.string()),
        ("doi", pa.string()),
        ("source", pa.string()),          # medline | pmc
        ("source_file", pa.string()),
        ("source_seq", pa.int64()),       # file order, for last-file-wins
        ("position", pa.int64()),         # record index inside the source file
        ("title", pa.string()),
        ("journal", pa.string()),
        ("pub_year", pa.int32()),
        ("pub_date", pa.string()),        # as precise as the record allows: 2019-03-15, 2019-03, 1998 Dec-1999 Jan
        ("languages", pa.list_(pa.string())),
        ("pub_types", pa.list_(pa.string())),
        ("mesh", pa.list_(MESH_HEADING)),
        ("keywords", pa.list_(pa.string())),
        ("text_sha256", pa.string()),     # of document_text (the passages joined by their offsets)
        ("parsed_at", pa.timestamp("us", tz="UTC")),
    ]
)

PASSAGES = pa.schema(
    [
        ("doc_id", pa.string()),
        ("passage_idx", pa.int32()),
        ("kind", pa.string()),            # title | abstract | abstract_section | ...
        ("label", pa.string()),           # e.g. METHODS for structured abstracts
        ("offset", pa.int32()),           # document-level character offset (BioC)
        ("text", pa.string()),
    ]
)

SENTENCES = pa.schema(
    [
        ("doc_id", pa.string()),
        ("passage_idx", pa.int32()),
        ("sent_idx", pa.int32()),         # document-wide sentence number
        ("start", pa.int32()),            # document-level character offsets
        ("end", pa.int32()),
        ("text", pa.string()),
    ]
)

ENTITIES = pa.schema(
    [
        ("doc_id", pa.string()),
        ("start", pa.int32()),
        ("end", pa.int32()),
        ("text", pa.string()),
        ("type", pa.string()),
        ("score", pa.float32()),
        ("sent_idx", pa.int32()),
        ("concept_id", pa.string()),      # nullable until the normalizer fills it
        ("model_id", pa.string()),
        ("run_id", pa.string()),
    ]
)

ENTITY_REF = pa.struct(
    [
        ("start", pa.int32()),
        ("end", pa.int32()),
        ("type", pa.string()),
        ("concept_id", pa.string()),
    ]
)

RELATIONS = pa.schema(
    [
        ("doc_id", pa.string()),
        ("sent_idx", pa.int32()),         # null for document-level relations
        ("head", ENTITY_REF),
        ("tail", ENTITY_REF),
        ("type", pa.string()),
        ("score", pa.float32()),
        ("model_id", pa.string()),
        ("run_id", pa.string()),
    ]
)

REJECTS = pa.schema(
    [
        ("source_file", pa.string()),
        ("position", pa.int64()),         # record index in the file; -1 for a whole-file failure
        ("pmid", pa.int64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)

DELETIONS = pa.schema(
    [
        ("pmid", pa.int64()),
        ("source_file", pa.string()),
        ("source_seq", pa.int64()),
    ]
)

# The tables of a parsed shard, and of a published snapshot, by name.
PARSED_TABLES = {
    "documents": DOCUMENTS,
    "passages": PASSAGES,
    "sentences": SENTENCES,
    "deletions": DELETIONS,
    "rejects": REJECTS,
}
SNAPSHOT_TABLES = {
    "documents": DOCUMENTS,
    "passages": PASSAGES,
    "sentences": SENTENCES,
    "entities": ENTITIES,
    "relations": RELATIONS,
    "rejects": REJECTS,
}


def table_from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows (dicts) -> a table of exactly ``schema``; a missing column is a bug, so it raises."""
    return pa.Table.from_pylist(rows, schema=schema)
