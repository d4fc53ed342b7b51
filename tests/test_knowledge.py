"""The knowledge tables of a snapshot (concepts, concept_relations, cooccurrences), each checked
against the same aggregate computed independently in Python from the entity and relation rows; and
`pubmine query` / `pubmine snapshots` as an analyst uses them."""

import json
import re
from collections import Counter, defaultdict

import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.driver import run
from pipeline.knowledge import run_query
from pipeline.schemas import schema_markdown
from pipeline.storage import Store
from pipeline.schemas import SNAPSHOT_TABLES
from tests.conftest import ROOT, TINY_DICTIONARY, write_medline
from tests.test_nightly import ABSTRACT, _cfg

PREFERRED = {cid: name for _, cid, name, rank in TINY_DICTIONARY if rank == 1}


def _rows(store, run_id, name):
    return pads.dataset(f"{store}/snapshots/{run_id}/{name}", format="parquet").to_table().to_pylist()


@pytest.fixture(scope="module")
def snapshot(ray_local, tiny_model, tiny_normalizer, tiny_relation, tiny_docre, tmp_path_factory):
    d = tmp_path_factory.mktemp("knowledge")
    f1 = write_medline(d / "in" / "pubmed26n0001.xml", [(p, f"Clonidine and hypertension, case {p}.", ABSTRACT)
                                                        for p in range(1, 7)])
    f2 = write_medline(d / "in" / "pubmed26n0002.xml", [(7, "Famotidine and delirium.", ABSTRACT)])
    store = d / "store"
    sets = (f"extract.normalizer={tiny_normalizer}", f"extract.relations=[{tiny_relation},{tiny_docre}]",
            "extract.batch_size=16")  # a per-pair CID model and a one-pass BioRED-type model
    f0 = write_medline(d / "in" / "pubmed25n0001.xml", [(100, "Clonidine in hypertension.", None)])
    run(_cfg(store, [f0], tiny_model, "k1", *sets))  # the previous snapshot, small: k2 brings new pairs
    run(_cfg(store, [f0, f1, f2], tiny_model, "k2", *sets))
    return store


def test_concepts_are_named_and_counted_as_the_entity_rows_say(snapshot):
    ents = [e for e in _rows(snapshot, "k2", "entities") if e["concept_id"]]
    concepts = _rows(snapshot, "k2", "concepts")
    assert ents and len(concepts) == len({(e["concept_id"], e["type"]) for e in ents})
    for c in concepts:
        mine = [e for e in ents if (e["concept_id"], e["type"]) == (c["concept_id"], c["type"])]
        assert c["name"] == PREFERRED[c["concept_id"]]  # every linked concept has its dictionary name
        assert c["mentions"] == len(mine) and c["documents"] == len({e["doc_id"] for e in mine})
        forms = Counter(e["text"] for e in mine)
        expected = sorted(forms.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        assert [(f["text"], f["mentions"]) for f in c["surface_forms"]] == expected
    assert [c["documents"] for c in concepts] == sorted((c["documents"] for c in concepts), reverse=True)


def test_concept_relations_aggregate_the_relation_rows_with_their_best_evidence(snapshot):
    rels = _rows(snapshot, "k2", "relations")
    docs = {d["doc_id"]: d for d in _rows(snapshot, "k2", "documents")}
    sents = {(s["doc_id"], s["sent_idx"]): s for s in _rows(snapshot, "k2", "sentences")}
    groups = defaultdict(list)
    for r in rels:
        groups[r["head"]["concept_id"], r["type"], r["tail"]["concept_id"]].append(r)
    table = _rows(snapshot, "k2", "concept_relations")
    assert rels and len(table) == len(groups)
    for row in table:
        mine = groups[row["head_id"], row["type"], row["tail_id"]]
        assert row["mentions"] == len(mine) and row["doc_ids"] == sorted({r["doc_id"] for r in mine})
        assert row["documents"] == len(row["doc_ids"]) and row["head_name"] == PREFERRED[row["head_id"]]
        assert row["score_max"] == pytest.approx(max(r["score"] for r in mine), abs=1e-6)
        assert row["score_mean"] == pytest.approx(sum(r["score"] for r in mine) / len(mine), abs=1e-5)
        years = [docs[r["doc_id"]]["pub_year"] for r in mine if docs[r["doc_id"]]["pub_year"] is not None]
        assert (row["first_year"], row["last_year"]) == ((min(years), max(years)) if years else (None, None))
        ev = row["evidence"]
        assert ev["score"] == pytest.approx(row["score_max"], abs=1e-6) and ev["doc_id"] in row["doc_ids"]
        sentence = sents[ev["doc_id"], ev["sent_idx"]]
        assert ev["sentence"] == sentence["text"] and ev["sentence_start"] == sentence["start"]
        # the head mention lies in the evidence sentence (document-level relations: the head's sentence)
        assert sentence["start"] <= ev["head_start"] < ev["head_end"] <= sentence["end"]


def test_cooccurrences_count_sentences_and_documents_of_each_concept_pair(snapshot):
    ents = [e for e in _rows(snapshot, "k2", "entities") if e["concept_id"]]
    in_sent, in_doc = defaultdict(set), defaultdict(set)
    by_sent, by_doc = defaultdict(set), defaultdict(set)
    for e in ents:
        by_sent[e["doc_id"], e["sent_idx"]].add((e["concept_id"], e["type"]))
        by_doc[e["doc_id"]].add((e["concept_id"], e["type"]))
    for key, cs in by_sent.items():
        for a in cs:
            for b in cs:
                if a < b:
                    in_sent[a, b].add(key)
    for doc, cs in by_doc.items():
        for a in cs:
            for b in cs:
                if a < b:
                    in_doc[a, b].add(doc)
    table = {((r["a_id"], r["a_type"]), (r["b_id"], r["b_type"])): r for r in _rows(snapshot, "k2", "cooccurrences")}
    assert in_doc and set(table) == set(in_doc)
    for pair, r in table.items():
        assert r["documents"] == len(in_doc[pair]) and r["sentences"] == len(in_sent.get(pair, ()))
        assert r["sentence_documents"] == len({d for d, _ in in_sent.get(pair, ())})


def test_every_snapshot_table_has_its_schema_and_the_manifest_counts_the_knowledge_tables(snapshot):
    for name, schema in SNAPSHOT_TABLES.items():
        t = pads.dataset(f"{snapshot}/snapshots/k2/{name}", format="parquet").to_table()
        assert t.schema.equals(schema, check_metadata=False), name
    m = json.loads((snapshot / "snapshots" / "k2" / "_manifest.json").read_text())
    assert m["rows"]["concepts"] == len(_rows(snapshot, "k2", "concepts")) > 0
    assert "knowledge" in m["timings_s"] and m["published_at"].endswith("+00:00")


def test_pubmine_query_prints_writes_and_fails_in_one_line(snapshot, tmp_path):
    cli = CliRunner()
    top = cli.invoke(app, ["query", "--store", str(snapshot),
                           "select name, documents from concepts order by documents desc limit 10"])
    assert top.exit_code == 0, top.output
    best = max(_rows(snapshot, "k2", "concepts"), key=lambda c: c["documents"])
    assert best["name"] in top.output and "k2" in top.output
    for suffix in ("csv", "parquet", "json"):
        out = tmp_path / f"pairs.{suffix}"
        r = cli.invoke(app, ["query", "-s", str(snapshot), "--at", "k2", "--out", str(out),
                             "select head_name, tail_name, documents from concept_relations"])
        assert r.exit_code == 0 and out.exists(), r.output
    assert pq.read_table(tmp_path / "pairs.parquet").num_rows == len(_rows(snapshot, "k2", "concept_relations"))
    for sql, says in [("select nope from concepts", "nope"), ("select * from genes", "genes"),
                      ("selec 1", "syntax")]:
        r = cli.invoke(app, ["query", "-s", str(snapshot), sql])
        assert r.exit_code == 2 and says in r.output.lower() and len(r.output.strip().splitlines()) == 1, r.output
        assert "Traceback" not in r.output
    r = cli.invoke(app, ["query", "-s", str(snapshot), "--at", "nosuch", "select 1"])
    assert r.exit_code == 2 and "not a complete snapshot" in r.output
    listed = cli.invoke(app, ["snapshots", "-s", str(snapshot)])
    assert listed.exit_code == 0 and "k1" in listed.output and "k2" in listed.output and "True" in listed.output


def test_docs_schema_md_is_what_the_schemas_module_generates():
    """Every snapshot column has a meaning and an example (COLUMN_DOCS), and docs/schema.md is
    exactly what `python -m pipeline.schemas` writes: regenerate it when a schema changes."""
    for name, schema in SNAPSHOT_TABLES.items():
        from pipeline.schemas import COLUMN_DOCS

        assert set(COLUMN_DOCS[name]) == set(schema.names), name
        assert all(meaning and example is not None for meaning, example in COLUMN_DOCS[name].values()), name
    assert (ROOT / "docs" / "schema.md").read_text() == schema_markdown(), (
        "docs/schema.md drifted from pipeline/schemas.py: run `python -m pipeline.schemas > docs/schema.md`")


def cookbook() -> dict[str, str]:
    """The README's analyst cookbook: each ```sql block whose first line is `-- cookbook: NAME`."""
    blocks = re.findall(r"```sql\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return {re.match(r"-- cookbook: (\S+)", b).group(1): b for b in blocks if b.startswith("-- cookbook:")}


def _expected(store, name):
    """What each cookbook query must answer, computed in Python from the raw tables."""
    ents = _rows(store, "k2", "entities")
    rels = _rows(store, "k2", "relations")
    sents = {(s["doc_id"], s["sent_idx"]): s for s in _rows(store, "k2", "sentences")}
    docs = {d["doc_id"]: d for d in _rows(store, "k2", "documents")}
    if name == "chemicals-related-to-a-disease":
        by = defaultdict(set)
        for r in rels:
            if r["type"] == "CID" and r["tail"]["concept_id"] == "MESH:D006973":
                by[r["head"]["concept_id"]].add(r["doc_id"])
        return sorted([(PREFERRED[h], h, len(d), sorted(d)) for h, d in by.items()], key=lambda x: (-x[2], x[1]))
    if name == "sentences-with-both":
        has = defaultdict(set)
        for e in ents:
            has[e["doc_id"], e["sent_idx"]].add(e["concept_id"])
        return sorted((d, i, sents[d, i]["text"]) for (d, i), cs in has.items() if {"MESH:D003000", "MESH:D006973"} <= cs)
    if name == "entities-by-year":
        c = Counter((docs[e["doc_id"]]["pub_year"], e["type"]) for e in ents)
        return sorted(((y, t, n) for (y, t), n in c.items()), key=lambda x: (x[0] is None, x[0] or 0, x[1]))
    if name == "linked-share-by-type":
        c = Counter(e["type"] for e in ents)
        linked = Counter(e["type"] for e in ents if e["concept_id"])
        return sorted(((t, n, linked[t], round(100.0 * linked[t] / n, 1)) for t, n in c.items()), key=lambda r: (-r[1], r[0]))
    if name == "top-mentions":
        c = Counter((e["type"], e["text"]) for e in ents)
        linked = Counter((e["type"], e["text"]) for e in ents if e["concept_id"])
        return sorted(((t, x, n, linked[t, x]) for (t, x), n in c.items()), key=lambda r: (-r[2], r[0], r[1]))[:20]
    if name == "one-paper":
        at = {(e["doc_id"], e["start"], e["end"], e["type"]): e for e in ents}
        out = []
        for r in rels:
            if r["doc_id"] != "pmid:3":
                continue
            h = at[r["doc_id"], r["head"]["start"], r["head"]["end"], r["head"]["type"]]
            t = at[r["doc_id"], r["tail"]["start"], r["tail"]["end"], r["tail"]["type"]]
            out.append((r["type"], h["text"], t["text"], r["score"], sents[r["doc_id"], h["sent_idx"]]["text"], h["start"], t["start"]))
        return [o[:5] for o in sorted(out, key=lambda o: (-o[3], o[5], o[6]))]
    if name == "changed-since-previous":
        def counts(run_id):
            by = defaultdict(set)
            for e in _rows(store, run_id, "entities"):
                if e["concept_id"]:
                    by[e["concept_id"], e["type"]].add(e["doc_id"])
            return {k: len(v) for k, v in by.items()}
        now, before = counts("k2"), counts("k1")
        rows = [(c, t, PREFERRED[c], before.get((c, t), 0), now.get((c, t), 0)) for c, t in set(now) | set(before)
                if now.get((c, t), 0) != before.get((c, t), 0)]
        return sorted(rows, key=lambda r: (-abs(r[4] - r[3]), r[0], r[1]))
    if name == "new-pairs":
        old = {(r["head"]["concept_id"], r["type"], r["tail"]["concept_id"]) for r in _rows(store, "k1", "relations")}
        by = defaultdict(set)
        for r in rels:
            key = (r["head"]["concept_id"], r["type"], r["tail"]["concept_id"])
            if r["type"] == "CID" and key not in old:
                by[key].add(r["doc_id"])
        ordered = sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0][0], kv[0][2]))  # documents, then ids
        return [(PREFERRED[h], PREFERRED[t], len(d)) for (h, _, t), d in ordered]
    raise AssertionError(f"no expectation for cookbook query {name!r}")


COOKBOOK = cookbook()


def test_the_readme_has_at_least_six_cookbook_queries():
    assert len(COOKBOOK) >= 6, sorted(COOKBOOK)


@pytest.mark.parametrize("name", sorted(COOKBOOK))
def test_each_cookbook_query_answers_what_the_tables_say(snapshot, name):
    table = run_query(Store(str(snapshot)), COOKBOOK[name], "k2", previous="k1")
    rows = [tuple(r.values()) for r in table.to_pylist()]
    expected = _expected(snapshot, name)
    if name == "new-pairs":  # the evidence sentence is the table's own; the pairs and counts must match
        rows = [r[:3] for r in rows]
    if name == "one-paper":
        rows = [(a, b, c, round(d, 5), e) for a, b, c, d, e in rows]
        expected = [(a, b, c, round(d, 5), e) for a, b, c, d, e in expected]
    assert rows == [tuple(e) for e in expected] and rows, name


@pytest.mark.parametrize("fmt", ["pubtator", "biocxml", "biocjson"])
def test_export_read_back_by_the_bioc_package_equals_the_snapshot(snapshot, tmp_path, fmt):
    import bioc
    from bioc import biocjson, biocxml, pubtator

    out = tmp_path / f"all.{fmt}"
    r = CliRunner().invoke(app, ["export", "-s", str(snapshot), "--format", fmt, "--out", str(out)])
    assert r.exit_code == 0, r.output
    ents = _rows(snapshot, "k2", "entities")
    rels = _rows(snapshot, "k2", "relations")
    docs = {d["doc_id"]: d for d in _rows(snapshot, "k2", "documents")}
    key = {d: str(row["pmid"]) for d, row in docs.items()}
    want_ents = sorted((key[e["doc_id"]], e["start"], e["end"], e["text"], e["type"], e["concept_id"] or "-") for e in ents)
    with open(out, encoding="utf-8") as f:
        if fmt == "pubtator":
            read = pubtator.load(f)
            got_ents = sorted((a.pmid, a.start, a.end, a.text, a.type, a.id) for d in read for a in d.annotations)
            for d in read:  # offsets hold in the text PubTator readers rebuild: title, a space, abstract
                text = d.title + " " + d.abstract
                assert all(text[a.start:a.end] == a.text for a in d.annotations)
            got_rels = sorted((r.pmid, r.type, r.id1, r.id2) for d in read for r in d.relations)
            want_rels = sorted({(key[r["doc_id"]], r["type"], r["head"]["concept_id"], r["tail"]["concept_id"]) for r in rels})
        else:
            collection = (biocxml if fmt == "biocxml" else biocjson).load(f)
            assert isinstance(collection, bioc.BioCCollection) and len(collection.documents) == len(docs)
            got_ents, got_rels = [], []
            for d in collection.documents:
                spans = {}
                for p in d.passages:
                    for a in p.annotations:
                        loc = a.locations[0]
                        assert p.text[loc.offset - p.offset:loc.end - p.offset] == a.text  # offsets are the document's
                        got_ents.append((d.id, loc.offset, loc.end, a.text, a.infons["type"], a.infons.get("identifier", "-")))
                        spans[a.id] = (loc.offset, loc.end, a.infons["type"], a.infons.get("identifier"))
                for rel in d.relations:
                    roles = {n.role: spans[n.refid] for n in rel.nodes}
                    got_rels.append((d.id, rel.infons["type"], roles["head"], roles["tail"]))
            got_ents.sort()
            got_rels = sorted(got_rels)
            want_rels = sorted((key[r["doc_id"]], r["type"],
                                (r["head"]["start"], r["head"]["end"], r["head"]["type"], r["head"]["concept_id"]),
                                (r["tail"]["start"], r["tail"]["end"], r["tail"]["type"], r["tail"]["concept_id"])) for r in rels)
    assert got_ents == want_ents and got_ents
    assert got_rels == want_rels and got_rels


def test_relations_export_in_pubtator3_layout_reads_back_as_the_snapshot_relations(snapshot, tmp_path):
    out = tmp_path / "relation2pubtator3"
    r = CliRunner().invoke(app, ["export", "-s", str(snapshot), "--format", "relations", "--out", str(out)])
    assert r.exit_code == 0, r.output
    docs = {d["doc_id"]: str(d["pmid"]) for d in _rows(snapshot, "k2", "documents")}
    want = {(docs[r["doc_id"]], r["type"], f"{r['head']['type']}|{r['head']['concept_id']}",
             f"{r['tail']['type']}|{r['tail']['concept_id']}") for r in _rows(snapshot, "k2", "relations")}
    lines = out.read_text().splitlines()
    got = [tuple(line.split("\t")) for line in lines]
    assert all(len(g) == 4 and g[0].isdigit() for g in got)
    assert len(got) == len(set(got)) and set(got) == want and {g[1] for g in got} == {"CID", "Positive_Correlation"}


def test_one_pass_relations_carry_novelty_and_an_evidence_sentence_holding_their_mentions(snapshot):
    sents = {(s["doc_id"], s["sent_idx"]): s for s in _rows(snapshot, "k2", "sentences")}
    ents = {(e["doc_id"], e["start"], e["end"], e["type"], e["concept_id"]) for e in _rows(snapshot, "k2", "entities")}
    one_pass = [r for r in _rows(snapshot, "k2", "relations") if r["type"] == "Positive_Correlation"]
    assert one_pass
    for r in one_pass:
        assert r["novelty"] == "Novel" and 0.5 < r["novelty_score"] <= 1 and 0.5 < r["score"] <= 1
        s = sents[r["doc_id"], r["sent_idx"]]  # the evidence sentence is the document's
        for end in (r["head"], r["tail"]):
            assert (r["doc_id"], end["start"], end["end"], end["type"], end["concept_id"]) in ents
    cid = [r for r in _rows(snapshot, "k2", "relations") if r["type"] == "CID"]
    assert cid and all(r["novelty"] is None and r["sent_idx"] is None for r in cid)


def test_export_selects_by_pmid_and_where_and_says_when_nothing_matches(snapshot, tmp_path):
    from bioc import pubtator

    cli = CliRunner()
    one = tmp_path / "one.txt"
    r = cli.invoke(app, ["export", "-s", str(snapshot), "-f", "pubtator", "--pmid", "3", "--pmid", "7", "-o", str(one)])
    assert r.exit_code == 0 and "2 documents" in r.output, r.output
    assert sorted(d.pmid for d in pubtator.load(open(one))) == ["3", "7"]
    r = cli.invoke(app, ["export", "-s", str(snapshot), "-f", "biocjson", "--where", "pmid < 3", "-o", str(tmp_path / "w.json")])
    assert r.exit_code == 0 and "2 documents" in r.output, r.output
    for args, says in [(["--where", "pub_year > 3000"], "no document"), (["--where", "nope = 1"], "not a condition"),
                       (["-f", "brat"], "not one of")]:
        argv = ["export", "-s", str(snapshot), "-f", "pubtator", "-o", str(tmp_path / "x"), *args]
        r = cli.invoke(app, argv)
        assert r.exit_code == 2 and says in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "x").exists()


def test_export_logs_one_line_of_progress_off_a_terminal(snapshot, tmp_path, caplog):
    import logging

    from pipeline.export import export

    with caplog.at_level(logging.INFO, logger="pubmine.progress"):
        counts = export(Store(str(snapshot)), "k2", "pubtator", tmp_path / "p.txt")
    lines = [r.getMessage() for r in caplog.records if r.name == "pubmine.progress"]
    n = counts["documents"]
    assert lines[0].startswith(f"run=k2 stage=export pubtator done=0/{n} doc")
    assert re.fullmatch(rf"run=k2 stage=export pubtator done={n}/{n} doc entities={counts['entities']:,} "
                        r"elapsed=\d+\.\ds finished", lines[-1]), lines


def test_pubmine_query_loads_no_pipeline_machinery(snapshot):
    """`pubmine query` answers in well under 2 s on the demo snapshot (0.6 s measured) because it
    imports DuckDB and the views, never the driver, Beam, Ray or torch."""
    import subprocess
    import sys

    code = ("import sys\nfrom pipeline.cli import app\n"
            "try:\n    app(['query', '-s', sys.argv[1], 'select name, documents from concepts order by documents desc limit 3'])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "heavy = sorted(m for m in ('pipeline.driver', 'apache_beam', 'ray', 'torch', 'transformers') if m in sys.modules)\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code, str(snapshot)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "HEAVY []" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    assert "clonidine" in out.stdout


def test_a_concept_no_dictionary_names_is_named_by_its_most_frequent_surface_form():
    """A variant (p|SUB|V|600|E) has no dictionary name, and a cell line only the Cellosaurus
    table's spelling variants ("He La"): the concepts table and the relation tables name them as the
    snapshot writes them most often ("V600E", "HeLa"); a dictionary name still wins."""
    import duckdb
    import pyarrow as pa

    from pipeline.knowledge import CONCEPTS_SQL, NAMES_SQL

    con = duckdb.connect()
    con.register("entities", pa.table({
        "doc_id": ["d1", "d1", "d2", "d2", "d3", "d3", "d3"],
        "concept_id": ["p|SUB|V|600|E", "p|SUB|V|600|E", "p|SUB|V|600|E", "MESH:D003693", "MESH:D003693",
                       "CVCL_0030", "CVCL_0030"],
        "type": ["Variant", "Variant", "Variant", "Disease", "Disease", "CellLine", "CellLine"],
        "text": ["V600E", "Val600Glu", "V600E", "delirium", "delirious", "HeLa", "HeLa"]}))
    con.register("dictionary_names", pa.table({"concept_id": ["MESH:D003693"], "name": ["Delirium"]}))
    con.execute(NAMES_SQL)
    named = {r[0]: r[2] for r in con.sql(CONCEPTS_SQL).fetchall()}
    assert named == {"p|SUB|V|600|E": "V600E", "MESH:D003693": "Delirium", "CVCL_0030": "HeLa"}
