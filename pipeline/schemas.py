"""Every Arrow schema pubmine writes, spelled out once. Nothing is inferred.

Parsed shards (state/parsed/<fingerprint>/) and snapshot tables (snapshots/<run_id>/) use these.
Multi-valued fields are list/struct columns, never delimited strings.
"""

from __future__ import annotations

import pyarrow as pa

MESH_QUALIFIER = pa.struct(
    [
        ("ui", pa.string()),
        ("name", pa.string()),
        ("major", pa.bool_()),
    ]
)

MESH_HEADING = pa.struct(
    [
        ("ui", pa.string()),
        ("name", pa.string()),
        ("major", pa.bool_()),            # descriptor or any of its qualifiers starred (PubMed's rule)
        ("qualifiers", pa.list_(MESH_QUALIFIER)),
    ]
)

AUTHOR = pa.struct(
    [
        ("last_name", pa.string()),
        ("fore_name", pa.string()),
        ("initials", pa.string()),
        ("collective_name", pa.string()),  # group authors ("SYGMA 1 Investigators")
        ("orcid", pa.string()),            # 0000-0002-1825-0097
        ("affiliations", pa.list_(pa.string())),  # every affiliation, in order; never a delimited string
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
        ("source_member", pa.string()),   # the member of a PMC .tar.gz package; null otherwise
        ("source_seq", pa.int64()),       # file order, for last-file-wins
        ("position", pa.int64()),         # record index inside the source file (or package)
        ("record_type", pa.string()),     # article | book (PubmedBookArticle)
        ("title", pa.string()),
        ("vernacular_title", pa.string()),  # the title in the original language (MEDLINE VernacularTitle)
        ("journal", pa.string()),         # journal title; the book title for book records
        ("journal_iso", pa.string()),     # ISO abbreviation (MEDLINE) / iso-abbrev or nlm-ta (JATS)
        ("pub_year", pa.int32()),
        ("pub_date", pa.string()),        # as precise as the record allows: 2019-03-15, 2019-03, 1990 Spring, 1998 Dec-1999 Jan
        ("article_date", pa.string()),    # electronic publication date, YYYY-MM-DD
        ("languages", pa.list_(pa.string())),  # ISO 639-2 (eng, ger, ...)
        ("pub_types", pa.list_(pa.string())),
        ("authors", pa.list_(AUTHOR)),
        ("mesh", pa.list_(MESH_HEADING)),
        ("keywords", pa.list_(pa.string())),
        ("ref_pmids", pa.list_(pa.int64())),  # PMIDs of the cited references, where the record lists them
        ("text_sha256", pa.string()),     # of document_text (the passages joined by their offsets)
        ("parsed_at", pa.timestamp("us", tz="UTC")),
    ]
)

PASSAGES = pa.schema(
    [
        ("doc_id", pa.string()),
        ("passage_idx", pa.int32()),
        ("kind", pa.string()),            # title | abstract | abstract_section | other_abstract | section_title |
                                          # paragraph | fig_caption | table_caption | table_footnote |
                                          # supplementary_caption | acknowledgement
        ("label", pa.string()),           # structured-abstract Label (METHODS), section title, "Figure 2"
        ("category", pa.string()),        # NlmCategory (MEDLINE) or sec-type (JATS)
        ("language", pa.string()),        # set on other-language abstracts only; null = the document's
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
        ("concept_id", pa.string()),      # MESH:D003924, OMIM:613097; null: NIL or no normalizer
        ("concept_score", pa.float32()),  # 1.0 for dictionary links, the cosine for embedding links
        ("link_method", pa.string()),     # abbrev | exact | bag | embed | nil; null without a normalizer
        ("dictionary_version", pa.string()),  # the normalizer's dictionary (sources + content hash)
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

# what an extracted part covers (state/extracted/<xfp>/parts/<key>/docs.parquet): reuse is keyed by both
EXTRACTED_DOCS = pa.schema([("doc_id", pa.string()), ("text_sha256", pa.string())])

# a run's live documents (state/runs/<run_id>/; pipeline.resolve), by shard (live/<group>.parquet) and by partition (resolved/, served/, index/):
# ``part`` is the finished extracted part that serves the text (null: to extract, or no sentences)
LIVE = pa.schema([("shard", pa.int32()), ("doc_id", pa.string()), ("text_sha256", pa.string()),
                  ("part", pa.string()), ("part_docs", pa.int32())])
SERVED = pa.schema([("partition", pa.int32()), ("doc_id", pa.string()), ("text_sha256", pa.string()),
                    ("part", pa.string()), ("part_docs", pa.int32())])


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
