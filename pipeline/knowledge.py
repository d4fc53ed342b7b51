"""The knowledge tables of a snapshot, and reading any snapshot with DuckDB.

Every snapshot gets three tables computed from its own entities, relations, sentences and documents
(``build``, a Ray task after the carry step; DuckDB over the snapshot's Parquet, out of core):

- ``concepts``: each linked concept with its preferred name (the normalizer's dictionary), the
  documents and mentions that name it, and its most frequent surface forms;
- ``concept_relations``: one row per (head concept, relation type, tail concept) with documents,
  mentions, score summary, first and last publication year, the supporting doc ids, and the
  best-scoring mention pair as evidence (its sentence, with offsets);
- ``cooccurrences``: pairs of linked concepts mentioned in one sentence, or one document, with counts.

They are recomputed whole every night: they are aggregates over the whole snapshot (one new paper
changes a concept's counts), and one DuckDB pass over the snapshot's columns costs less than keeping
mergeable partial aggregates per extracted part. The time it takes is the manifest's
``timings_s.knowledge``.

``connect`` opens DuckDB with every table of a snapshot as a view, local or on S3 (through fsspec
registration: DuckDB's own httpfs extension cannot be downloaded everywhere), for ``pubmine query``.
"""

from __future__ import annotations

import os

import pyarrow as pa

from pipeline import schemas
from pipeline.errors import PubmineError
from pipeline.layout import part_name, snapshot_key
from pipeline.storage import Store, is_local

KNOWLEDGE_TABLES = ("concepts", "concept_relations", "cooccurrences")


class QueryError(PubmineError):
    """A query could not run: bad SQL, an unknown table or column, a snapshot that does not exist."""


def connect(store: Store, run_id: str, tables=None, previous: str | None = None):
    """DuckDB with each table of snapshot ``run_id`` as a view (``read_parquet`` of its folder), and
    with ``previous`` given, that snapshot's tables too as ``previous.<table>``."""
    import duckdb

    con = duckdb.connect()
    if not is_local(store.fs):
        con.register_filesystem(store.fs)
    _views(con, store, run_id, tables or schemas.SNAPSHOT_TABLES, "main")
    if previous:
        con.execute("CREATE SCHEMA previous")
        _views(con, store, previous, tables or schemas.SNAPSHOT_TABLES, "previous")
    return con


def _views(con, store: Store, run_id: str, tables, schema: str) -> None:
    for name in tables:
        if store.parquet_files(*snapshot_key(run_id, name)):
            con.execute(f"CREATE VIEW {schema}.{name} AS SELECT * FROM "
                        f"read_parquet('{store.uri(*snapshot_key(run_id, name))}/*.parquet')")
        else:  # an older snapshot without this table: an empty view of its schema, never a missing one
            con.register(f"_{schema}_{name}_empty", schemas.SNAPSHOT_TABLES[name].empty_table())
            con.execute(f"CREATE VIEW {schema}.{name} AS SELECT * FROM _{schema}_{name}_empty")


def _names(normalizer_folder: str | None) -> pa.Table:
    """concept_id -> preferred name, from a normalizer artifact's dictionary."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not normalizer_folder:
        return pa.table({"concept_id": pa.array([], pa.string()), "name": pa.array([], pa.string())})
    from workers.inference.normalize import DICTIONARY_FILE

    d = pq.read_table(f"{normalizer_folder}/{DICTIONARY_FILE}", columns=["concept_id", "name", "rank", "preferred"])
    d = d.sort_by([("preferred", "descending"), ("rank", "ascending"), ("name", "ascending")])
    first = d.group_by("concept_id", use_threads=False).aggregate([("name", "first")])
    first = first.rename_columns(["concept_id", "name"]).filter(pc.is_valid(pc.field("concept_id")))
    from workers.inference.lexicon import LEXICON_MANIFEST, names_table

    has_lexicon = os.path.exists(f"{normalizer_folder}/{LEXICON_MANIFEST}")
    return pa.concat_tables([first, names_table(normalizer_folder)]) if has_lexicon else first


# every linked concept's display name: its dictionary's (MeSH, MEDIC, NCBI Gene, NCBI Taxonomy),
# else its most frequent surface form in the snapshot: a variant's "V600E" for p|SUB|V|600|E, where
# no dictionary names it, and a cell line's "HeLa" (the Cellosaurus table here has only spelling
# variants of many lines' names: "He La" was what the concepts table showed)
NAMES_SQL = """
CREATE OR REPLACE VIEW names AS
WITH forms AS (SELECT concept_id, text, count(*) AS n FROM entities WHERE concept_id IS NOT NULL GROUP BY ALL),
top AS (SELECT concept_id, first(text ORDER BY n DESC, text) AS text FROM forms GROUP BY ALL)
SELECT concept_id, coalesce(d.name, top.text) AS name FROM top LEFT JOIN dictionary_names d USING (concept_id)
"""

CONCEPTS_SQL = """
WITH e AS (SELECT doc_id, concept_id, type, text FROM entities WHERE concept_id IS NOT NULL),
forms AS (SELECT concept_id, type, text, count(*) AS n FROM e GROUP BY ALL),
top AS (SELECT concept_id, type,
               list({'text': text, 'mentions': n} ORDER BY n DESC, text)[1:5] AS surface_forms
        FROM forms GROUP BY ALL),
agg AS (SELECT concept_id, type, count(DISTINCT doc_id) AS documents, count(*) AS mentions FROM e GROUP BY ALL)
SELECT agg.concept_id, agg.type, names.name, agg.documents, agg.mentions, top.surface_forms
FROM agg JOIN top USING (concept_id, type) LEFT JOIN names USING (concept_id)
ORDER BY agg.documents DESC, agg.concept_id, agg.type
"""

RELATIONS_SQL = """
WITH r AS (
  SELECT r.doc_id, r.type, r.score, r.head.concept_id AS head_id, r.head.type AS head_type,
         r.tail.concept_id AS tail_id, r.tail.type AS tail_type, r.head.start AS hs, r.head."end" AS he,
         r.tail.start AS ts, r.tail."end" AS te,
         coalesce(r.sent_idx, (SELECT min(e.sent_idx) FROM entities e WHERE e.doc_id = r.doc_id
                                 AND e.start = r.head.start AND e."end" = r.head."end")) AS sent_idx
  FROM relations r WHERE r.head.concept_id IS NOT NULL AND r.tail.concept_id IS NOT NULL),
best AS (
  SELECT head_id, head_type, type, tail_id, tail_type,
         first({'doc_id': doc_id, 'sent_idx': sent_idx, 'hs': hs, 'he': he, 'ts': ts, 'te': te, 'score': score}
               ORDER BY score DESC, doc_id, hs, ts) AS b,
         count(DISTINCT doc_id) AS documents, count(*) AS mentions, avg(score) AS score_mean,
         max(score) AS score_max, min(score) AS score_min, list(DISTINCT doc_id ORDER BY doc_id) AS doc_ids
  FROM r GROUP BY ALL),
years AS (
  SELECT head_id, head_type, r.type, tail_id, tail_type, min(d.pub_year) AS first_year, max(d.pub_year) AS last_year
  FROM r JOIN documents d USING (doc_id) GROUP BY ALL)
SELECT best.head_id, best.head_type, hn.name AS head_name, best.type, best.tail_id, best.tail_type,
       tn.name AS tail_name, documents, mentions, score_mean, score_max, score_min, first_year, last_year, doc_ids,
       {'doc_id': b.doc_id, 'sent_idx': b.sent_idx, 'sentence': s.text, 'sentence_start': s.start,
        'head_start': b.hs, 'head_end': b.he, 'tail_start': b.ts, 'tail_end': b.te, 'score': b.score} AS evidence
FROM best LEFT JOIN years USING (head_id, head_type, type, tail_id, tail_type)
LEFT JOIN sentences s ON s.doc_id = b.doc_id AND s.sent_idx = b.sent_idx
LEFT JOIN names hn ON hn.concept_id = best.head_id LEFT JOIN names tn ON tn.concept_id = best.tail_id
ORDER BY documents DESC, head_id, type, tail_id
"""

COOCCURRENCES_SQL = """
WITH e AS (SELECT DISTINCT doc_id, sent_idx, concept_id, type FROM entities WHERE concept_id IS NOT NULL),
d AS (SELECT DISTINCT doc_id, concept_id, type FROM e),
in_doc AS (SELECT a.concept_id AS a_id, a.type AS a_type, b.concept_id AS b_id, b.type AS b_type,
                  count(*) AS documents
           FROM d a JOIN d b ON a.doc_id = b.doc_id AND (a.concept_id, a.type) < (b.concept_id, b.type)
           GROUP BY ALL),
in_sent AS (SELECT a.concept_id AS a_id, a.type AS a_type, b.concept_id AS b_id, b.type AS b_type,
                   count(*) AS sentences, count(DISTINCT a.doc_id) AS sentence_documents
            FROM e a JOIN e b ON a.doc_id = b.doc_id AND a.sent_idx = b.sent_idx
                             AND (a.concept_id, a.type) < (b.concept_id, b.type)
            GROUP BY ALL)
SELECT a_id, a_type, b_id, b_type, coalesce(sentences, 0) AS sentences,
       coalesce(sentence_documents, 0) AS sentence_documents, documents
FROM in_doc LEFT JOIN in_sent USING (a_id, a_type, b_id, b_type)
ORDER BY documents DESC, sentences DESC, a_id, b_id
"""

SQL = {"concepts": CONCEPTS_SQL, "concept_relations": RELATIONS_SQL, "cooccurrences": COOCCURRENCES_SQL}


def build(store_url: str, storage_options: dict, run_id: str, normalizer_url: str | None, top: int = 20,
          previous: str | None = None) -> dict:
    """The knowledge tables of snapshot ``run_id`` (a Ray task, after every entity and relation is in
    the snapshot): DuckDB over its tables, each result written as one part. Returns rows per table,
    the ``top`` concepts and concept relations by documents, and (``previous``: the snapshot before)
    how many relation triples are new since then with the ``top`` of them: the run report's lists."""
    store = Store(store_url, storage_options)
    folder = None
    if normalizer_url:
        from workers.inference.artifacts import stage_artifact

        folder = str(stage_artifact(normalizer_url, storage_options))
    con = connect(store, run_id, ("documents", "sentences", "entities", "relations"))
    con.register("dictionary_names", _names(folder))
    con.execute(NAMES_SQL)
    rows, tables = {}, {}
    for name in KNOWLEDGE_TABLES:
        table = con.sql(SQL[name]).to_arrow_table().cast(schemas.SNAPSHOT_TABLES[name])
        store.remove(*snapshot_key(run_id, name))
        store.write_table(table, *snapshot_key(run_id, name, part_name(run_id, name)))
        rows[name], tables[name] = table.num_rows, table
    concept_cols = ["concept_id", "type", "name", "documents", "mentions"]
    relation_cols = ["head_id", "head_name", "type", "tail_id", "tail_name", "documents", "first_year", "last_year"]
    out = {"rows": rows,
           "top_concepts": tables["concepts"].select(concept_cols).slice(0, top).to_pylist(),
           "top_relations": tables["concept_relations"].select(relation_cols).slice(0, top).to_pylist()}
    if previous:
        now = connect(store, run_id, ("concept_relations",), previous=previous)
        new = now.sql(f"""SELECT {', '.join(relation_cols)} FROM concept_relations c
                          ANTI JOIN previous.concept_relations p USING (head_id, type, tail_id)
                          ORDER BY documents DESC, head_id, type, tail_id""").to_arrow_table()
        out["new_relations"] = new.num_rows
        out["top_new_relations"] = new.slice(0, top).to_pylist()
    return out


def run_query(store: Store, sql: str, run_id: str, previous: str | None = None) -> pa.Table:
    """One SQL statement over snapshot ``run_id`` (and ``previous.*``) as an Arrow table. Bad SQL or
    an unknown table or column is one QueryError line."""
    import duckdb

    con = connect(store, run_id, previous=previous)
    try:
        return con.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise QueryError(f"{type(exc).__name__.replace('Exception', ' error')}: {first} "
                         f"(tables: {', '.join(schemas.SNAPSHOT_TABLES)}"
                         f"{', and previous.<table>' if previous else ''}; columns: docs/schema.md)") from None
