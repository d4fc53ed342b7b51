"""Every Arrow schema pubmine writes, spelled out once. Nothing is inferred.

Parsed shards (state/parsed/<fingerprint>/) and snapshot tables (snapshots/<run_id>/) use these.
Multi-valued fields are list/struct columns, never delimited strings.
"""

from __future__ import annotations

import pyarrow as pa

# The version of the snapshot contract (these tables and the manifest), recorded in every manifest:
# bump it when a column is added, removed or changes meaning.
SCHEMA_VERSION = 1

# What each snapshot column means is said once, in COLUMN_DOCS below (docs/schema.md is generated from it).
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
        ("major", pa.bool_()),
        ("qualifiers", pa.list_(MESH_QUALIFIER)),
    ]
)

AUTHOR = pa.struct(
    [
        ("last_name", pa.string()),
        ("fore_name", pa.string()),
        ("initials", pa.string()),
        ("collective_name", pa.string()),
        ("orcid", pa.string()),
        ("affiliations", pa.list_(pa.string())),
    ]
)

DOCUMENTS = pa.schema(
    [
        ("doc_id", pa.string()),
        ("pmid", pa.int64()),
        ("pmid_version", pa.int32()),
        ("pmcid", pa.string()),
        ("doi", pa.string()),
        ("source", pa.string()),
        ("source_file", pa.string()),
        ("source_member", pa.string()),
        ("source_seq", pa.int64()),
        ("position", pa.int64()),
        ("record_type", pa.string()),
        ("title", pa.string()),
        ("vernacular_title", pa.string()),
        ("journal", pa.string()),
        ("journal_iso", pa.string()),
        ("pub_year", pa.int32()),
        ("pub_date", pa.string()),
        ("article_date", pa.string()),
        ("languages", pa.list_(pa.string())),
        ("pub_types", pa.list_(pa.string())),
        ("authors", pa.list_(AUTHOR)),
        ("mesh", pa.list_(MESH_HEADING)),
        ("keywords", pa.list_(pa.string())),
        ("ref_pmids", pa.list_(pa.int64())),
        ("text_sha256", pa.string()),
        ("parsed_at", pa.timestamp("us", tz="UTC")),
    ]
)

PASSAGES = pa.schema(
    [
        ("doc_id", pa.string()),
        ("passage_idx", pa.int32()),
        ("kind", pa.string()),
        ("label", pa.string()),
        ("category", pa.string()),
        ("language", pa.string()),
        ("offset", pa.int32()),
        ("text", pa.string()),
    ]
)

SENTENCES = pa.schema(
    [
        ("doc_id", pa.string()),
        ("passage_idx", pa.int32()),
        ("sent_idx", pa.int32()),
        ("start", pa.int32()),
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
        ("concept_id", pa.string()),
        ("concept_score", pa.float32()),
        ("link_method", pa.string()),
        ("dictionary_version", pa.string()),
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
        ("sent_idx", pa.int32()),
        ("head", ENTITY_REF),
        ("tail", ENTITY_REF),
        ("type", pa.string()),
        ("score", pa.float32()),
        ("novelty", pa.string()),
        ("novelty_score", pa.float32()),
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


# In flight between stages, never published:
# a file the parse stage could not read (its parsed shard's failed-<label>.parquet; consolidate reads it)
FAILED = pa.schema([("detail", pa.string())])
# one tagged sentence between the NER actors and the document stage: the sentence and its entity spans
SPAN = pa.struct([("start", pa.int32()), ("end", pa.int32()), ("type", pa.string()), ("score", pa.float32())])
TAGGED = pa.schema([("doc_id", pa.string()), ("sent_idx", pa.int32()), ("start", pa.int32()),
                    ("text", pa.string()), ("text_sha256", pa.string()), ("entities", pa.list_(SPAN))])
# what the document stage returns to the driver, per block
BLOCK_COUNTS = pa.schema([("documents", pa.int64()), ("entities", pa.int64()), ("linked", pa.int64()),
                          ("relations", pa.int64()), ("first_doc", pa.string()), ("last_doc", pa.string()),
                          ("part", pa.string())])
# per extracted part, how many of its documents a resolution group's live set uses (the carry plan)
PART_COUNTS = pa.schema([("part", pa.string()), ("served", pa.int64()), ("part_docs", pa.int32())])


REJECTS = pa.schema(
    [
        ("source_file", pa.string()),
        ("position", pa.int64()),
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

# The knowledge tables (pipeline.knowledge): aggregates over a snapshot's linked entities and relations.
SURFACE_FORM = pa.struct([("text", pa.string()), ("mentions", pa.int64())])

CONCEPTS = pa.schema(
    [
        ("concept_id", pa.string()),
        ("type", pa.string()),
        ("name", pa.string()),
        ("documents", pa.int64()),
        ("mentions", pa.int64()),
        ("surface_forms", pa.list_(SURFACE_FORM)),
    ]
)

EVIDENCE = pa.struct(
    [
        ("doc_id", pa.string()),
        ("sent_idx", pa.int32()),
        ("sentence", pa.string()),
        ("sentence_start", pa.int32()),
        ("head_start", pa.int32()),
        ("head_end", pa.int32()),
        ("tail_start", pa.int32()),
        ("tail_end", pa.int32()),
        ("score", pa.float32()),
    ]
)

CONCEPT_RELATIONS = pa.schema(
    [
        ("head_id", pa.string()),
        ("head_type", pa.string()),
        ("head_name", pa.string()),
        ("type", pa.string()),
        ("tail_id", pa.string()),
        ("tail_type", pa.string()),
        ("tail_name", pa.string()),
        ("documents", pa.int64()),
        ("mentions", pa.int64()),
        ("score_mean", pa.float32()),
        ("score_max", pa.float32()),
        ("score_min", pa.float32()),
        ("first_year", pa.int32()),
        ("last_year", pa.int32()),
        ("doc_ids", pa.list_(pa.string())),
        ("evidence", EVIDENCE),
    ]
)

COOCCURRENCES = pa.schema(
    [
        ("a_id", pa.string()),
        ("a_type", pa.string()),
        ("b_id", pa.string()),
        ("b_type", pa.string()),
        ("sentences", pa.int64()),
        ("sentence_documents", pa.int64()),
        ("documents", pa.int64()),
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
    "concepts": CONCEPTS,
    "concept_relations": CONCEPT_RELATIONS,
    "cooccurrences": COOCCURRENCES,
}


# What each snapshot column means, with an example value: docs/schema.md is generated from this
# (`python -m pipeline.schemas > docs/schema.md`), and a test fails when a column has no entry or the
# document and the code drift apart.
COLUMN_DOCS: dict[str, dict[str, tuple[str, str]]] = {
    "documents": {
        "doc_id": ("the document's id: `pmid:<PMID>` for MEDLINE, `pmc:<PMCID>` for PMC full texts", "pmid:17212035"),
        "pmid": ("PubMed id", "17212035"),
        "pmid_version": ("MEDLINE's PMID Version attribute (1 unless NLM re-versioned the record)", "1"),
        "pmcid": ("PubMed Central id, where the record has one", "PMC8435807"),
        "doi": ("DOI, where the record has one", "10.1177/0956797612457389"),
        "source": ("which kind of input it came from: `medline` or `pmc`", "medline"),
        "source_file": ("the input file's name", "pubmed26n0001.xml.gz"),
        "source_member": ("the member of a PMC .tar.gz package; null otherwise", "PMC8435807.nxml"),
        "source_seq": ("file order for last-file-wins (NLM names give YYNNNN)", "261313"),
        "position": ("the record's index in its file", "41"),
        "record_type": ("`article`, or `book` (PubmedBookArticle)", "article"),
        "title": ("the article title", "Delirium associated with famotidine."),
        "vernacular_title": ("the title in the original language (MEDLINE VernacularTitle)", "Délire et famotidine."),
        "journal": ("journal title; the book title for book records", "Psychological science"),
        "journal_iso": ("ISO abbreviation (MEDLINE) or iso-abbrev / nlm-ta (JATS)", "Psychol Sci"),
        "pub_year": ("publication year", "2012"),
        "pub_date": ("the publication date as precise as the record gives it", "2019-03-15"),
        "article_date": ("electronic publication date, YYYY-MM-DD", "2019-02-01"),
        "languages": ("ISO 639-2 codes", "[eng]"),
        "pub_types": ("publication types", "[Journal Article, Case Reports]"),
        "authors": ("authors in order: last_name, fore_name, initials, collective_name, orcid, affiliations", "[{last_name: Smith, ...}]"),
        "mesh": ("MeSH headings: ui, name, major, qualifiers", "[{ui: D003693, name: Delirium, major: true, ...}]"),
        "keywords": ("author keywords", "[delirium, H2 antagonists]"),
        "ref_pmids": ("PMIDs of the cited references, where the record lists them", "[12345678, 23456789]"),
        "text_sha256": ("SHA-256 of the document's text (its passages at their offsets): what extraction reuse is keyed by", "9f86d08..."),
        "parsed_at": ("when the input file was parsed (UTC)", "2026-12-01 02:14:07+00:00"),
    },
    "passages": {
        "doc_id": ("the document", "pmid:17212035"),
        "passage_idx": ("passage number in the document", "1"),
        "kind": ("title, abstract, abstract_section, other_abstract, section_title, paragraph, fig_caption, "
                 "table_caption, table_footnote, supplementary_caption or acknowledgement", "abstract"),
        "label": ("structured-abstract label, section title or figure label", "METHODS"),
        "category": ("NlmCategory (MEDLINE) or sec-type (JATS)", "METHODS"),
        "language": ("set on other-language abstracts only; null is the document's language", "fre"),
        "offset": ("document-level character offset of the passage (BioC)", "58"),
        "text": ("the passage text", "A 67-year-old man developed delirium ..."),
    },
    "sentences": {
        "doc_id": ("the document", "pmid:17212035"),
        "passage_idx": ("the passage it is in", "1"),
        "sent_idx": ("document-wide sentence number", "3"),
        "start": ("document-level character offset where it starts", "211"),
        "end": ("document-level character offset where it ends (exclusive)", "298"),
        "text": ("the sentence", "Famotidine was associated with delirium in one case."),
    },
    "entities": {
        "doc_id": ("the document", "pmid:17212035"),
        "start": ("document-level character offset of the mention", "211"),
        "end": ("end offset (exclusive)", "221"),
        "text": ("the mention as written", "Famotidine"),
        "type": ("entity type: Chemical, Disease, Gene, Species, CellLine or Variant (the NER model's types)", "Chemical"),
        "score": ("the NER model's confidence in the span", "0.97"),
        "sent_idx": ("the sentence it is in", "3"),
        "concept_id": ("the linked concept: MESH:D…/MESH:C…/OMIM:… (chemicals, diseases), NCBIGene:…, NCBITaxon:…, CVCL_… (cell lines), tmVar's normalized form or rs… (variants); null when NIL or without a normalizer (an unlinked entity stays only from its type's score, `extract.keep_unlinked_from`: by default no unlinked Chemical, no unlinked Disease, Gene below 0.85, Variant below 0.7)", "MESH:D015738"),
        "concept_score": ("1.0 for dictionary links, the cosine for embedding links", "1.0"),
        "link_method": ("how it was linked: abbrev, exact, bag, embed; ngram (character 3-gram similarity, scispaCy-style); adjective (a disease adjective linked as its noun: 'inflammatory' as inflammation); exact-default (a gene of the default organism, human, in a document that names none); document (a gene synonym several genes share, taken as the one the document names by another mention; a variant the text writes beside an rs number, or any variant of a document that names exactly one rs number, as that rs number); member (a list of numbered members written once, as its first: 'Smad1/5/8' as Smad1); genus (a Species span that is a genus name, as LINNAEUS's proxy species: 'Drosophila' as D. melanogaster); rules (variants); nil; null without a normalizer", "exact"),
        "dictionary_version": ("what linked the row (sources and content hash): the normalizer's dictionary for chemicals and diseases, its lexicon for genes, species, cell lines and variants", "MeSH2024+MEDIC#3f2a..."),
        "model_id": ("the NER model that found it (content hash of the weights)", "multitask-minilm-ner-dc438d28f55a"),
        "run_id": ("the run that extracted it (a reused row keeps its run: provenance)", "20261201T020000Z"),
    },
    "relations": {
        "doc_id": ("the document", "pmid:17212035"),
        "sent_idx": ("the evidence sentence: the sentence of a sentence-level relation, or, of the sentences naming "
                     "both entities of a document-level pair (else its head), the one holding most of its context attention "
                     "(null for the per-pair CID model)", "3"),
        "head": ("the head mention: start, end, type, concept_id (for a document-level relation, the concept's "
                 "mention in the evidence sentence, else its first)", "{start: 211, end: 221, type: Chemical, concept_id: MESH:D015738}"),
        "tail": ("the tail mention: start, end, type, concept_id", "{start: 242, end: 250, type: Disease, concept_id: MESH:D003693}"),
        "type": ("relation type: BioRED's Association, Positive_Correlation, Negative_Correlation, Bind, Cotreatment, "
                 "Comparison, Drug_Interaction, Conversion; CID (chemical-induced disease) from the CID model", "Positive_Correlation"),
        "score": ("the relation model's probability of this type", "0.91"),
        "novelty": ("BioRED's novelty: Novel (the paper's finding) or No (background); null where the model has no "
                    "novelty head", "Novel"),
        "novelty_score": ("the probability of that novelty label", "0.83"),
        "model_id": ("the relation model", "bc5cdr-cid-minilm-re-6c6c0b95534b"),
        "run_id": ("the run that extracted it", "20261201T020000Z"),
    },
    "rejects": {
        "source_file": ("the input file", "pubmed26n0001.xml.gz"),
        "position": ("the record's index in the file; -1 for a whole-file failure", "17"),
        "pmid": ("the record's PMID, when it could be read", "31234567"),
        "reason": ("short reason code", "unreadable file"),
        "detail": ("what was wrong, where, and what to do", "XML is not well-formed (...)"),
    },
    "concepts": {
        "concept_id": ("a linked concept", "MESH:D003693"),
        "type": ("the entity type it was linked under", "Disease"),
        "name": ("its preferred name in the normalizer's dictionary, else (variants, cell lines) its most frequent surface form in the snapshot", "Delirium"),
        "documents": ("documents with a mention linked to it", "412"),
        "mentions": ("mentions linked to it", "1033"),
        "surface_forms": ("the five most frequent ways it is written, with mention counts", "[{text: delirium, mentions: 870}, ...]"),
    },
    "concept_relations": {
        "head_id": ("head concept", "MESH:D015738"),
        "head_type": ("head concept's entity type", "Chemical"),
        "head_name": ("head concept's name (as concepts.name gives it)", "Famotidine"),
        "type": ("relation type", "CID"),
        "tail_id": ("tail concept", "MESH:D003693"),
        "tail_type": ("tail concept's entity type", "Disease"),
        "tail_name": ("tail concept's name (as concepts.name gives it)", "Delirium"),
        "documents": ("documents stating it", "4"),
        "mentions": ("relation rows (mention pairs) stating it", "6"),
        "score_mean": ("mean relation score", "0.83"),
        "score_max": ("best relation score", "0.97"),
        "score_min": ("lowest relation score", "0.61"),
        "first_year": ("earliest publication year of a document stating it", "1994"),
        "last_year": ("latest publication year of a document stating it", "2025"),
        "doc_ids": ("every supporting document, sorted", "[pmid:17212035, pmid:8432121]"),
        "evidence": ("the best-scoring mention pair: doc_id, sent_idx, sentence, sentence_start, head/tail offsets, score",
                     "{doc_id: pmid:17212035, sentence: Famotidine was associated with delirium ..., ...}"),
    },
    "cooccurrences": {
        "a_id": ("first concept of the pair ((concept_id, type) order)", "MESH:D003000"),
        "a_type": ("its entity type", "Chemical"),
        "b_id": ("second concept of the pair", "MESH:D006973"),
        "b_type": ("its entity type", "Disease"),
        "sentences": ("sentences mentioning both", "37"),
        "sentence_documents": ("documents with such a sentence", "29"),
        "documents": ("documents mentioning both", "51"),
    },
}

TABLE_DOCS = {
    "documents": "one row per live document (MEDLINE citation or PMC article): bibliographic fields",
    "passages": "the document's text in BioC passages (title, abstract, sections, captions) with offsets",
    "sentences": "sentences with document-level offsets: what the models read",
    "entities": "named-entity mentions, linked to concepts",
    "relations": "relations between two mentions (document- or sentence-level)",
    "rejects": "records and files that could not be used, with the reason",
    "concepts": "each linked concept: name, documents, mentions, surface forms",
    "concept_relations": "one row per (head concept, relation type, tail concept), with evidence",
    "cooccurrences": "concept pairs mentioned in one sentence or one document",
}


def _type_name(t: pa.DataType) -> str:
    return str(t).replace("<item: ", "<").replace("element: ", "")


def schema_markdown() -> str:
    """docs/schema.md: every snapshot table and column with its type, meaning and an example."""
    out = ["# pubmine snapshot tables\n",
           "Generated from `pipeline/schemas.py` (`python -m pipeline.schemas > docs/schema.md`); a test fails when",
           "the two drift. Each table is a folder of Parquet files, `snapshots/<run_id>/<table>/*.parquet`.\n"]
    for name, schema in SNAPSHOT_TABLES.items():
        out += [f"## {name}\n", TABLE_DOCS[name] + ".\n", "| column | type | meaning | example |", "|---|---|---|---|"]
        for field in schema:
            meaning, example = COLUMN_DOCS[name][field.name]
            out.append(f"| `{field.name}` | `{_type_name(field.type)}` | {meaning} | {example.replace('|', '/')} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(schema_markdown(), end="")
