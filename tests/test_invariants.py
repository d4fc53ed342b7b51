"""What a run must never publish, whatever its inputs: a document twice, a night lost to a file with
no article in it. Each test counts rows, not sets of ids (a set hides a row published twice)."""

import collections

import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from pipeline.driver import run
from pipeline.errors import PublishError
from pipeline.storage import Store
from tests.conftest import ROOT, write_medline
from tests.test_nightly import ABSTRACT, _cfg

HOSTILE = ROOT / "tests" / "data" / "hostile"


def _rows(store, run_id, name, columns):
    return pads.dataset(f"{store}/snapshots/{run_id}/{name}", format="parquet").to_table(columns=columns).to_pylist()


def test_an_empty_grouped_table_is_written_as_an_empty_file(tmp_path):
    """A parsed shard without documents (a file of DeleteCitations only) has empty id columns."""
    store = Store(str(tmp_path))
    empty = pa.table({"partition": pa.array([], pa.int32()), "doc_id": pa.array([], pa.string())})
    store.write_grouped(empty, "partition", "keys.parquet")
    assert store.read_table("keys.parquet").num_rows == 0
    assert store.read_groups([3], "keys.parquet", key="partition").num_rows == 0


def test_update_files_with_one_holding_only_deletions_run_together(ray_local, tiny_model, tmp_path):
    """Baseline, revision, deletions only, re-add: four daily files in one run (the deletions-only
    file crashed the whole night: a row group of size 0)."""
    d = tmp_path / "in"
    files = [write_medline(d / "pubmed26n1001.xml", [(p, f"Title {p} on clonidine.", ABSTRACT) for p in (1, 2, 3)]),
             write_medline(d / "pubmed26n1002.xml", [(2, "Title 2 on famotidine, revised.", ABSTRACT)]),
             write_medline(d / "pubmed26n1003.xml", [], deleted=(1, 3)),
             write_medline(d / "pubmed26n1004.xml", [(1, "Title 1 re-added on naloxone.", ABSTRACT)])]
    store = tmp_path / "store"
    summary = run(_cfg(store, files, tiny_model, "updates"))
    docs = _rows(store, "updates", "documents", ["pmid", "title", "source_file"])
    assert sorted((r["pmid"], r["title"], r["source_file"]) for r in docs) == [
        (1, "Title 1 re-added on naloxone.", "pubmed26n1004.xml"),
        (2, "Title 2 on famotidine, revised.", "pubmed26n1002.xml")]
    assert (summary.counts.documents, summary.counts.deleted, summary.counts.superseded) == (2, 1, 2)
    m = Store(str(store)).read_json("snapshots", "updates", "_manifest.json")
    assert [i["status"] for i in m["inputs"]] == ["ok"] * 4


def test_a_pmid_twice_in_one_file_is_published_once_with_the_later_record(ray_local, tiny_model, tmp_path):
    store = tmp_path / "store"
    run(_cfg(store, [HOSTILE / "pmids-missing-bad-duplicate.xml"], tiny_model, "dup"))
    docs = _rows(store, "dup", "documents", ["doc_id", "title", "position"])
    assert collections.Counter(r["doc_id"] for r in docs) == {"pmid:9000121": 1, "pmid:9000125": 1}
    assert {r["doc_id"]: r["title"] for r in docs}["pmid:9000125"] == "Second version of the same PMID"
    for name in ("passages", "sentences"):
        rows = [r for r in _rows(store, "dup", name, ["doc_id", "text"]) if r["doc_id"] == "pmid:9000125"]
        assert rows and not any("First version" in r["text"] for r in rows), (name, rows)
        assert any("Second version" in r["text"] for r in rows), (name, rows)
    sentences = [r for r in _rows(store, "dup", "sentences", ["doc_id", "sent_idx"]) if r["doc_id"] == "pmid:9000125"]
    assert sorted(r["sent_idx"] for r in sentences) == list(range(len(sentences)))  # one document's numbering
    rejects = collections.Counter(r["reason"] for r in _rows(store, "dup", "rejects", ["reason"]))
    assert rejects["duplicate PMID"] == 1


def test_the_invariants_name_the_numbers_that_disagree():
    from pipeline.driver import check_invariants
    from pipeline.driver.commit import Held
    from pipeline.driver.extraction import Carried, Extracted
    from pipeline.driver.text import ResolveCounts, Resolved, TextTables

    resolved = Resolved("r", ((0,),), ResolveCounts(live=10, reused=3))
    text = TextTables(documents=10, sentence_docs=9)
    held = Held({}, {}, 0, {}, {"documents": 10})
    check_invariants(resolved, text, Extracted("fp32", documents=6), Carried(served=9), held)  # all agree
    with pytest.raises(PublishError, match="holds 11 documents .* but 10 are live"):
        check_invariants(resolved, text, Extracted("fp32", documents=6), Carried(served=9),
                         Held({}, {}, 0, {}, {"documents": 11}))
    with pytest.raises(PublishError, match="7 documents were extracted and 3 reused, but 9 live documents"):
        check_invariants(resolved, text, Extracted("fp32", documents=7), Carried(served=9), held)
    with pytest.raises(PublishError, match="covers 8 of the 9 live documents"):
        check_invariants(resolved, text, Extracted("fp32", documents=6), Carried(served=8), held)
    with pytest.raises(TypeError):  # a mistyped count from a resolution task fails loudly, never reads 0
        ResolveCounts.total([{"live": 1, "reussed": 2}])


def test_a_run_whose_counts_disagree_publishes_nothing(ray_local, tiny_model, tmp_path, monkeypatch):
    import dataclasses

    import pipeline.driver as driver

    f = write_medline(tmp_path / "in" / "pubmed26n0001.xml", [(p, f"Title {p}.", ABSTRACT) for p in (1, 2)])
    store = tmp_path / "store"
    run(_cfg(store, [f], tiny_model, "good"))
    real = driver.snapshot_counts
    monkeypatch.setattr(driver, "snapshot_counts", lambda *a, **k: dataclasses.replace(
        real(*a, **k), rows={**real(*a, **k).rows, "documents": 3}))  # a document published twice
    with pytest.raises(PublishError, match="holds 3 documents .* but 2 are live"):
        run(_cfg(store, [f], tiny_model, "bad"))
    assert Store(str(store)).read_text("LATEST").strip() == "good" and not (store / "snapshots" / "bad").exists()
