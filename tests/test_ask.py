"""A snapshot's retrieval index and `pubmine ask`: passages, BM25, dense and fused retrieval, reuse of
unchanged documents' embeddings, answers with their evidence, on a local store and on S3."""

import json

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from pipeline import schemas
from pipeline.ask import build_snapshot_index, document_text, is_yes_no, snapshot_passages
from pipeline.cli import app
from pipeline.layout import LATEST, MANIFEST, RETRIEVAL_DIR, snapshot_key
from pipeline.storage import Store
from workers.inference.retrieval import Hit, RetrievalIndex, fuse, passages_of

# written for these tests (not from any corpus)
DOCS = {
    101: ("Fibrillin and Marfan syndrome.",
          "Marfan syndrome is caused by mutations in the FBN1 gene. The gene encodes fibrillin-1. "
          "Patients show aortic dilation."),
    102: ("Aspirin and fever in children.",
          "Aspirin lowers fever. Reye syndrome is a rare risk in children. Paracetamol is preferred."),
    103: ("Teplizumab delays type 1 diabetes.",
          "Teplizumab is an anti-CD3 antibody. It delayed the onset of type 1 diabetes in relatives at risk. "
          "The effect lasted two years."),
    104: ("Statins and muscle pain.", "Statins lower cholesterol. Some patients report muscle pain. Rhabdomyolysis is rare."),
    105: ("Metformin in type 2 diabetes.", "Metformin lowers glucose. It is the first drug for type 2 diabetes."),
    106: ("Cystic fibrosis and CFTR.", "Cystic fibrosis is caused by mutations in CFTR. The lungs are affected first."),
}


def _sentences(text: str, start: int) -> list[tuple[int, str]]:
    out, pos = [], 0
    for part in text.split(". "):
        piece = part if part.endswith(".") else part + "."
        k = text.index(piece, pos)
        out.append((start + k, piece))
        pos = k + len(piece)
    return out


def write_snapshot(store: Store, run_id: str, docs: dict) -> None:
    """A complete snapshot's documents, passages, sentences and entities (and LATEST)."""
    drows, prows, srows, erows = [], [], [], []
    for pmid, (title, abstract) in docs.items():
        doc_id = f"pmid:{pmid}"
        text = f"{title} {abstract}"
        drows.append({"doc_id": doc_id, "pmid": pmid, "title": title, "text_sha256": str(hash(text))})
        prows += [{"doc_id": doc_id, "passage_idx": 0, "offset": 0, "text": title},
                  {"doc_id": doc_id, "passage_idx": 1, "offset": len(title) + 1, "text": abstract}]
        sents = [(0, title)] + _sentences(abstract, len(title) + 1)
        for i, (s, t) in enumerate(sents):
            assert text[s:s + len(t)] == t
            srows.append({"doc_id": doc_id, "passage_idx": int(i > 0), "sent_idx": i, "start": s, "end": s + len(t), "text": t})
        for name, typ, cid in (("FBN1", "Gene", "NCBIGene:2200"), ("Marfan syndrome", "Disease", "MESH:D008382"),
                               ("CFTR", "Gene", "NCBIGene:1080")):
            k = text.find(name, len(title))
            if k >= 0:
                erows.append({"doc_id": doc_id, "start": k, "end": k + len(name), "text": name, "type": typ,
                              "concept_id": cid, "sent_idx": 1})
    for name, rows in (("documents", drows), ("passages", prows), ("sentences", srows), ("entities", erows)):
        schema = getattr(schemas, name.upper())
        table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in rows], schema=schema)
        store.write_table(table, *snapshot_key(run_id, name, "part-0.parquet"))
    store.write_json({"run_id": run_id}, *snapshot_key(run_id, MANIFEST))
    store.write_text(run_id, LATEST)


def test_passages_cover_every_sentence_in_windows_and_keep_document_offsets():
    sents = [(i, 10 * i, f"s{i}.") for i in range(6)]
    text = "".join(t.ljust(10) for _, _, t in sents)
    ps = passages_of("d", 1, "h", sents, text)
    assert [(p["first_sent"], p["last_sent"]) for p in ps] == [(0, 2), (2, 4), (3, 5)]
    assert all(text[p["start"]:p["end"]] == p["text"] for p in ps)
    assert passages_of("d", 1, "h", sents[:2], text)[0]["last_sent"] == 1 and passages_of("d", 1, "h", []) == []
    assert document_text([(0, "Title."), (7, "Abstract.")]) == "Title. Abstract."
    assert is_yes_no("Is teplizumab effective?") and not is_yes_no("Which gene is mutated in Marfan syndrome?")
    fused = fuse([[Hit(1, 9.0), Hit(2, 5.0)], [Hit(2, 0.9), Hit(3, 0.8)]])
    assert [h.row for h in fused] == [2, 1, 3]  # in both lists beats first in one


def test_the_index_retrieves_by_bm25_dense_and_fusion_and_reuses_unchanged_documents(tmp_path):
    store = Store(str(tmp_path / "store"))
    write_snapshot(store, "20260101T000000Z", DOCS)
    stats = build_snapshot_index(store.url, {}, "20260101T000000Z", None)
    assert stats["documents"] == 6 and stats["embedded"] == 6 and stats["reused"] == 0 and stats["bytes"] > 0
    assert store.exists(*snapshot_key("20260101T000000Z", RETRIEVAL_DIR, "index.json"))
    index = RetrievalIndex(store.path(*snapshot_key("20260101T000000Z", RETRIEVAL_DIR)))
    from workers.inference.retrieval import DenseEncoder

    enc = DenseEncoder("minilm", precision="fp32")
    for mode in ("bm25", "dense", "fused"):
        rows = index.rows(index.search("Which gene is mutated in Marfan syndrome?", enc, k=3, mode=mode))
        assert rows[0]["pmid"] == 101, mode
        rows = index.rows(index.search("drug that delays type 1 diabetes onset", enc, k=3, mode=mode))
        assert rows[0]["pmid"] == 103, mode
    passages = snapshot_passages(store, "20260101T000000Z")
    assert passages.num_rows == index.meta["passages"]
    # the next night: one abstract revised, one new document; the other five are not embedded again
    changed = dict(DOCS)
    changed[104] = ("Statins and muscle pain.", "Statins lower LDL cholesterol. Muscle pain is reported.")
    changed[107] = ("Insulin pumps.", "Insulin pumps deliver insulin continuously.")
    write_snapshot(store, "20260102T000000Z", changed)
    stats = build_snapshot_index(store.url, {}, "20260102T000000Z", "20260101T000000Z")
    assert (stats["documents"], stats["embedded"], stats["reused"]) == (7, 2, 5)
    again = RetrievalIndex(store.path(*snapshot_key("20260102T000000Z", RETRIEVAL_DIR)))
    v_old = {(r["doc_id"], r["start"]): i for i, r in enumerate(index.passages.to_pylist())}
    for i, r in enumerate(again.passages.to_pylist()):
        if r["doc_id"] in ("pmid:101", "pmid:103") and (r["doc_id"], r["start"]) in v_old:
            assert (again.vectors[i] == index.vectors[v_old[(r["doc_id"], r["start"])]]).all()


def _ask(store_url: str, question: str, reader, extra=()) -> list[dict]:
    result = CliRunner().invoke(app, ["ask", "--store", store_url, "--reader", str(reader), "--json", *extra, question])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_pubmine_ask_answers_with_pmid_sentence_offsets_and_concepts(tmp_path, tiny_reader):
    store = Store(str(tmp_path / "store"))
    write_snapshot(store, "20260101T000000Z", DOCS)
    missing = CliRunner().invoke(app, ["ask", "--store", store.url, "--reader", str(tiny_reader), "Which gene?"])
    assert missing.exit_code != 0 and "has no retrieval index" in missing.output
    build_snapshot_index(store.url, {}, "20260101T000000Z", None)
    answers = _ask(store.url, "Which gene is mutated in Marfan syndrome?", tiny_reader)
    assert 1 <= len(answers) <= 5
    texts = {f"pmid:{p}": f"{t} {a}" for p, (t, a) in DOCS.items()}
    for a in answers:
        assert {"pmid", "doc_id", "text", "score", "evidence", "start", "end", "title"} <= set(a)
        doc = texts[a["doc_id"]]
        assert doc[a["start"]:a["end"]] == a["text"] and a["title"] == DOCS[a["pmid"]][0]
        ev = a["evidence"]
        assert doc[ev["sentence_start"]:ev["sentence_end"]] == ev["sentence"]
        assert ev["sentence_start"] <= a["start"] < ev["sentence_end"]
        for c in ev["concepts"]:  # linked concepts overlapping the answer span
            assert c["concept_id"] and c["text"] in doc
    assert all(isinstance(a["type_match"], bool) for a in answers)   # "Which gene": Gene mentions first
    matched = [a["type_match"] for a in answers]
    assert matched == sorted(matched, reverse=True) or not any(matched)
    yes_no = _ask(store.url, "Is teplizumab an anti-CD3 antibody?", tiny_reader, ["--mode", "bm25"])
    assert sorted(a["text"] for a in yes_no) == ["no", "yes"] and sum(a["score"] for a in yes_no) == pytest.approx(1, abs=1e-3)
    assert all(a["supporting"] and texts[a["doc_id"]][a["start"]:a["end"]] for a in yes_no)
    plain = CliRunner().invoke(app, ["ask", "--store", store.url, "--reader", str(tiny_reader), "What causes cystic fibrosis?"])
    assert plain.exit_code == 0 and "PMID" in plain.output


def test_pubmine_ask_on_a_snapshot_in_s3(s3_server, tiny_reader):
    url = f"s3://{s3_server['bucket']}/ask"
    options = s3_server["storage_options"]
    store = Store(url, options)
    write_snapshot(store, "20260101T000000Z", DOCS)
    build_snapshot_index(url, options, "20260101T000000Z", None)
    answers = _ask(url, "Which gene is mutated in cystic fibrosis?", tiny_reader,
                   ["--storage-options", json.dumps(options)])
    assert answers and all(a["doc_id"].startswith("pmid:") for a in answers)


def test_a_question_that_asks_for_a_type_gets_answers_of_that_type_first():
    from pipeline.ask import answer_type, is_typed, typed_first

    assert answer_type("Which chemicals induce hypotension?") == "Chemical"
    assert answer_type("What drug is used for X?") == "Chemical"
    assert answer_type("Which gene is mutated in Marfan syndrome?") == "Gene"
    assert answer_type("Which cell lines express CD4?") == "CellLine"
    assert answer_type("List the mutations of BRAF in melanoma.") == "Variant"
    assert answer_type("Which species of bacteria cause Lyme disease?") == "Species"
    for q in ("What is the cause of Marfan syndrome?", "What causes cystic fibrosis?", "Is aspirin a drug?",
              "Name a synonym of acrokeratosis paraneoplastica."):
        assert answer_type(q) is None, q
    ranked = [{"text": "hypertension", "type_match": False}, {"text": "propofol", "type_match": True},
              {"text": "CSF", "type_match": False}, {"text": "nitric oxide", "type_match": True}]
    assert [a["text"] for a in typed_first(ranked, "Chemical")] == ["propofol", "nitric oxide", "hypertension", "CSF"]
    assert typed_first(ranked, None) == ranked
    none = [dict(a, type_match=False) for a in ranked]
    assert typed_first(none, "Chemical") == none
    # an answer is of the type when that type's mentions cover half of it or more
    ents = [{"doc_id": "d", "type": "Chemical", "start": 10, "end": 18}, {"doc_id": "d", "type": "Disease", "start": 0, "end": 9}]
    assert is_typed(10, 18, "d", "Chemical", ents) and is_typed(8, 20, "d", "Chemical", ents)
    assert not is_typed(0, 40, "d", "Chemical", ents) and not is_typed(0, 9, "d", "Chemical", ents)
    assert not is_typed(10, 18, "e", "Chemical", ents)


def test_the_index_task_embeds_on_every_cpu_it_is_given(ray_local, tmp_path):
    """A Ray worker keeps the torch threads of the first task it ran: measured, an index task of
    num_cpus 2 in a worker that had run a one-CPU task embedded on one thread."""
    from pipeline.config import load_config
    from pipeline.driver.extraction import retrieval_index

    def threads():
        import torch
        return torch.get_num_threads()

    assert ray_local.get(ray_local.remote(threads).options(num_cpus=1).remote()) == 1  # a worker on one thread
    store = Store(str(tmp_path / "store"))
    write_snapshot(store, "20260101T000000Z", DOCS)
    config = load_config(None, ["index.num_cpus=2"], inputs=[str(tmp_path / "none.xml")], store=store.url)
    stats = retrieval_index(config, "20260101T000000Z", None)
    assert stats["documents"] == 6 and stats["threads"] == 2
