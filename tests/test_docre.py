"""The document-level relation model's pieces against hand-computed cases: BioRED's gold relations
read from PubTator (novelty, tmVar IDs), the track's four measures, the marked encoding, the
evidence sentence, and the defaults' names."""

import gzip

import pytest

from pipeline.config import artifact_url, default_artifact_dir
from pipeline.parse.pubtator import read_pubtator
from pipeline.scores import gold_relations, score_doc_relations
from workers.inference.docre import DocRelationExtractor, Entity, candidate_pairs, encode_document, marker_id

TEXT = "BRAF V600E in melanoma. Vemurafenib treats melanoma."
#       0123456789012345678901234567890123456789012345678901
PUBTATOR = "\n".join([
    "42|t|BRAF V600E in melanoma.",
    "42|a|Vemurafenib treats melanoma.",
    "42\t0\t4\tBRAF\tGeneOrGeneProduct\t673",
    "42\t5\t10\tV600E\tSequenceVariant\tp|SUB|V|600|E",
    "42\t14\t22\tmelanoma\tDiseaseOrPhenotypicFeature\tD008545",
    "42\t24\t35\tVemurafenib\tChemicalEntity\tD000077484",
    "42\t43\t51\tmelanoma\tDiseaseOrPhenotypicFeature\tD008545",
    "42\tPositive_Correlation\tp|SUB|V|600|E\tD008545\tNovel",
    "42\tNegative_Correlation\tD000077484\tD008545\tNo",
    "42\tAssociation\t673\tD999999\tNovel",  # a concept no mention has: not a gold relation
    "", ""])


@pytest.fixture
def doc(tmp_path):
    path = tmp_path / "tiny.PubTator.gz"
    with gzip.open(path, "wt") as f:
        f.write(PUBTATOR)
    (d,) = read_pubtator(path)
    assert d.text == TEXT
    return d


def test_gold_relations_are_unordered_linker_ids_with_their_novelty(doc):
    assert gold_relations(doc) == {
        (42, frozenset({("Variant", "p|SUB|V|600|E"), ("Disease", "MESH:D008545")}), "Positive_Correlation", "Novel"),
        (42, frozenset({("Chemical", "MESH:D000077484"), ("Disease", "MESH:D008545")}), "Negative_Correlation", "No"),
    }


def test_the_four_track_measures_count_pair_type_novelty_and_all_separately():
    x, y, z = (frozenset({("Chemical", c), ("Disease", "MESH:D1")}) for c in ("MESH:C1", "MESH:C2", "MESH:C3"))
    gold = {(1, x, "Association", "Novel"), (1, y, "Positive_Correlation", "No")}
    pred = {(1, x, "Association", "No"),           # right pair and type, wrong novelty
            (1, y, "Negative_Correlation", "No"),  # right pair and novelty, wrong type
            (1, z, "Bind", "Novel")}               # no such pair
    s = score_doc_relations(gold, pred).summary()
    # pair: tp 2 fp 1 fn 0 -> P 2/3 R 1 F1 0.8; type: tp 1 fp 2 fn 1 -> P 1/3 R 1/2 F1 0.4
    assert s["pair"] == {"precision": 0.6667, "recall": 1.0, "f1": 0.8}
    assert s["type"] == {"precision": 0.3333, "recall": 0.5, "f1": 0.4}
    assert s["novelty"] == {"precision": 0.3333, "recall": 0.5, "f1": 0.4}   # y's "No" only
    assert s["all"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert score_doc_relations(gold, {(2, x, "Association", "Novel")}).summary()["pair"]["f1"] == 0.0  # another document


def test_encoding_marks_every_mention_and_points_each_entity_at_its_start_markers(tiny_docre):
    ex = DocRelationExtractor.load(tiny_docre, device="cpu")
    tok = ex.tokenizer
    m = marker_id(tok)
    ents = [Entity("Gene", "NCBIGene:673", ((0, 4),)), Entity("Disease", "MESH:D008545", ((14, 22), (43, 51)))]
    enc = encode_document(tok, TEXT, ents, m)
    piece = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    braf, v600e, mel = piece("BRAF"), piece(" V600E in"), piece("melanoma")
    assert enc.ids[: len(braf) + 2] == [m, *braf, m]
    assert enc.ids.count(m) == 6  # three mentions, two markers each
    first_mel = len(braf) + 2 + len(v600e)
    assert enc.starts[0] == [0] and enc.starts[1][0] == first_mel and len(enc.starts[1]) == 2
    assert enc.ids[first_mel: first_mel + len(mel) + 2] == [m, *mel, m]
    assert enc.char[first_mel] == 14 and enc.char[enc.starts[1][1]] == 43  # markers carry their mention's edge
    # the pair of related types is a candidate once; a concept paired with itself never
    assert candidate_pairs(ents, enc, {("Gene", "Disease"), ("Disease", "Gene")}) == [(0, 1)]
    assert candidate_pairs(ents, enc, {("Chemical", "Disease")}) == []


def test_the_evidence_sentence_names_both_entities(tiny_docre):
    """Three sentences; the pair co-occurs only in the last: that is the evidence, whatever the
    attention of a random model favours."""
    ex = DocRelationExtractor.load(tiny_docre, device="cpu")
    text = "Aspirin is old. Asthma is common. Aspirin worsened asthma here."
    sents = [(0, 15), (16, 33), (34, 63)]
    ents = [Entity("Chemical", "MESH:D001241", ((0, 7), (34, 41))), Entity("Disease", "MESH:D001249", ((16, 22), (51, 57)))]
    (scores,) = ex.predict([(text, sents, ents)])
    (p,) = scores
    assert (p.head, p.tail, p.label, p.novelty) == (0, 1, "Positive_Correlation", "Novel") and p.evidence == 2
    assert 0.5 < p.probability <= 1 and 0.5 < p.novelty_probability <= 1
    assert ex.predict([(text, sents, ents[:1])]) == [[]]  # one entity: no pair
    # the disease named first: scored earlier-first as trained, written chemical first all the same
    text2 = "Asthma is common. Aspirin is old. Aspirin worsened asthma here."
    ents2 = [Entity("Disease", "MESH:D001249", ((0, 6), (51, 57))), Entity("Chemical", "MESH:D001241", ((18, 25), (34, 41)))]
    (q,) = ex.predict([(text2, [(0, 17), (18, 33), (34, 63)], ents2)])[0]
    assert (q.head, q.tail, q.evidence) == (1, 0, 2)


def test_the_defaults_are_named_once_and_resolve_by_their_own_names(tmp_path, monkeypatch):
    monkeypatch.setenv("PUBMINE_HOME", str(tmp_path))
    assert artifact_url("default-redoc", "relation") == str(default_artifact_dir("redoc")) == str(tmp_path / "models" / "default-redoc")
    assert artifact_url("default", "relation") == artifact_url("default-cid", "redoc") == str(tmp_path / "models" / "default-cid")
    assert artifact_url("s3://b/m", "redoc") == "s3://b/m" and artifact_url("normalizer", "ner") == "normalizer"


def test_bc5cdr_cid_is_read_off_the_one_pass_model_as_its_chemical_disease_positive_correlation(tiny_docre):
    """A model that calls every pair Positive_Correlation finds every gold CID pair (recall 1) at the
    precision of gold pairs among all chemical-disease pairs of the test set."""
    import re

    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.parse.pubtator import gold_ids, read_pubtator
    from tests.conftest import DATA

    result = CliRunner().invoke(app, ["evaluate", "-m", str(tiny_docre), "-d", "bc5cdr-cid", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    f, p, r = map(float, re.search(r"RESULT evaluate dataset=bc5cdr-cid f1=(\S+) precision=(\S+) recall=(\S+)",
                                   result.output).groups())
    docs = list(read_pubtator(DATA / "bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz"))
    gold = {(d.pmid, c, x) for d in docs for t, a, b in d.relations if t == "CID" for c in gold_ids(a) for x in gold_ids(b)}
    pairs = set()
    for d in docs:
        chems = {c for m in d.mentions if m.type == "Chemical" for c in gold_ids(m.ids, m.type)}
        dis = {c for m in d.mentions if m.type == "Disease" for c in gold_ids(m.ids, m.type)}
        pairs |= {(d.pmid, c, x) for c in chems for x in dis}
    assert r == pytest.approx(len(gold & pairs) / len(gold), abs=1e-4) and r > 0.95
    assert p == pytest.approx(len(gold & pairs) / len(pairs), abs=1e-4) and f < 0.5


def test_the_margin_moves_the_adaptive_threshold_and_each_pair_reports_its_gap():
    import torch

    from workers.inference.docre import decide

    logits = torch.tensor([[1.0, 0.5, 0.2],    # best label 1 is 0.5 below the threshold class
                           [0.0, 0.3, 2.0],    # label 2 beats it by 2
                           [3.0, 0.0, 0.1]])   # 2.9 below
    assert decide(logits)[0] == [0, 2, 0]
    chosen, _, gaps = decide(logits, margin=1.0)
    assert chosen == [1, 2, 0] and gaps == pytest.approx([0.5, -2.0, 2.9])
    assert decide(logits, margin=-2.5)[0] == [0, 0, 0]  # a negative margin asks for more than beating it


def test_calibrate_writes_the_margin_chosen_on_half_of_dev_and_a_new_model_id(tiny_docre, tmp_path):
    import re

    from tests.conftest import calibrated_copy
    from workers.inference.artifacts import verify_hash
    from workers.inference.docre import DocRelationExtractor
    from workers.training.docre import MARGINS, calibration_halves, read_documents, sweep_margins

    model = tmp_path / "redoc"
    before, m, output = calibrated_copy(tiny_docre, model)
    cal = m["calibration"]
    assert cal["margin"] in MARGINS and m["model_id"] != before["model_id"]
    assert m["model_id"].startswith(f"{before['name']}-m{round(100 * cal['margin'])}-")
    verify_hash(model, m, str(model))  # weights untouched: the hash check still holds
    ex = DocRelationExtractor.load(model, precision="fp32")
    assert ex.margin == cal["margin"]
    # the checked half's score is what the model now scores there, computed afresh
    _, check = calibration_halves(read_documents("biored", "test"))
    s = sweep_margins(ex, check, (cal["margin"],))[cal["margin"]].summary()
    assert round(s["pair"]["f1"], 4) == cal["checked_half"]["chosen"]["pair"]
    assert re.search(r"RESULT calibrate margin=\S+ checked_pair_f1=", output)


def test_entities_pool_their_mentions_in_one_gather_as_atlop_pools_them():
    """pool_entities against the per-entity computation it replaced: logsumexp of the mentions'
    hidden states, the mean of their attention rows; an entity without pieces reads position 0."""
    import torch

    from workers.inference.docre import pool_entities

    torch.manual_seed(0)
    h, a = torch.randn(9, 6), torch.rand(2, 9, 9)
    starts = [[1, 4, 7], [2], [], [0, 8]]
    ent, att = pool_entities(h, a, starts)
    for e, positions in enumerate(starts):
        idx = torch.tensor(positions or [0])
        assert torch.allclose(ent[e], torch.logsumexp(h[idx], 0), atol=1e-6)
        assert torch.allclose(att[e], a[:, idx].mean(1), atol=1e-6)
    assert ent.shape == (4, 6) and att.shape == (4, 2, 9)


def test_the_relations_benchmark_times_both_models_on_the_same_candidate_pairs(tiny_docre):
    """benchmarks.relations gives the per-pair classifier exactly the pairs the one pass scores (its
    'same candidate pairs'), on real BioRED abstracts with their gold concepts."""
    from benchmarks.relations import _entities, documents, one_pass_pairs, per_pair_texts

    ex = DocRelationExtractor.load(tiny_docre)
    docs = documents("biored", set(ex.model.types), 4)
    same = one_pass_pairs(ex, docs)
    scored = ex.predict([(t, [(s, s + len(x)) for s, x in sents], _entities(c)) for t, sents, c in docs])
    assert [len(s) for s in same] == [len(p) for p in scored] and sum(map(len, same)) > 10
    for k, (text, sents, concepts) in enumerate(docs):
        ents = _entities(concepts)
        got = {frozenset(((ents[p.head].type, ents[p.head].concept_id), (ents[p.tail].type, ents[p.tail].concept_id)))
               for p in scored[k]}
        assert got == same[k]
    texts = per_pair_texts(docs, ex.type_pairs, None, same)
    assert len(texts) == sum(map(len, same)) and all("[E1]" in t and "[E2]" in t for t in texts)
