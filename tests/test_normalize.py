"""Entity normalization: string keys, Schwartz-Hearst abbreviations, dictionary ranks, and linking the
real test-set mentions of NCBI-disease and BC5CDR against MeSH 2024 + MEDIC."""

from pathlib import Path

import pytest

from pipeline.parse.pubtator import read_pubtator
from workers.inference.normalize import Dictionary, Normalizer, abbreviations, bag_key, norm_key
from tests.conftest import DATA


def test_keys_fold_case_punctuation_plurals_and_word_order():
    assert norm_key("Parkinson's Disease") == norm_key("parkinson disease") == "parkinson disease"
    assert norm_key("Non-Hodgkin  lymphomas") == norm_key("non hodgkin lymphoma")
    assert norm_key("glass") == "glass"  # -ss is not a plural
    assert bag_key("cancer of the breast") == bag_key("Breast Cancer")


@pytest.mark.parametrize("text, expected", [
    ("Patients with Parkinson's disease (PD) were seen.", {"PD": "Parkinson's disease"}),
    ("familial adenomatous polyposis (FAP) is inherited", {"FAP": "familial adenomatous polyposis"}),
    ("heparin-induced thrombocytopenia (HIT) and", {"HIT": "heparin-induced thrombocytopenia"}),
    ("the rats (n = 12) and controls (P < 0.05)", {}),  # no letters in order: not definitions
])
def test_schwartz_hearst_abbreviations(text, expected):
    assert abbreviations(text) == expected


def test_ranks_prefer_annotated_names_then_mesh_then_medic(tmp_path):
    from workers.training.normalizer import add_corpus

    d = Dictionary()
    d.add("Disease", "OMIM:608446", "Myocardial infarction", rank=3, preferred=True)
    d.add("Disease", "MESH:D009203", "Myocardial Infarction", rank=1, preferred=True)
    assert d.lookup("myocardial infarctions", "Disease").concept_id == "MESH:D009203"
    assert d.lookup("myocardial infarction", "Chemical").concept_id is None  # types do not mix
    corpus = tmp_path / "c.txt"
    corpus.write_text("1|t|Renal damage.\n1|a|x\n1\t0\t12\tRenal damage\tDisease\tD007674\n\n"
                      "2|t|Renal damage.\n2|a|x\n2\t0\t12\tRenal damage\tDisease\tD007674\n\n"
                      "3|t|Renal damage.\n3|a|x\n3\t0\t12\tRenal damage\tDisease\tD058186\n\n")
    d.add("Disease", "MESH:D058186", "renal damage", rank=1)
    add_corpus(d, corpus, "tiny")
    assert d.lookup("Renal Damage", "Disease").concept_id == "MESH:D007674"  # two annotations beat one and MeSH


def test_a_defined_short_form_links_through_its_long_form():
    d = Dictionary()
    d.add("Disease", "MESH:D011125", "familial adenomatous polyposis", rank=1)
    d.add("Disease", "MESH:D028227", "FAP", rank=2)  # the dictionary's other FAP
    n = Normalizer(d)
    text = "Familial adenomatous polyposis (FAP) is rare. FAP patients ..."
    links = n.link_document(text, [("FAP", "Disease"), ("FAP", "Disease")])
    assert [(l.concept_id, l.method) for l in links] == [("MESH:D011125", "abbrev")] * 2
    assert n.link("FAP", "Disease").concept_id == "MESH:D028227"  # without the definition: the dictionary's
    assert n.link("zzzz", "Disease").method == "nil"
    # a plural short form defined, its singular mentioned (and the other way round)
    text = "Cerebral microbleeds (CMBs) were counted. One CMB was deep. Adenomatous polyps (AP) and APs ..."
    d.add("Disease", "MESH:D002543", "cerebral microbleeds", rank=1)
    d.add("Disease", "MESH:D011127", "adenomatous polyps", rank=1)
    links = n.link_document(text, [("CMB", "Disease"), ("APs", "Disease")])
    assert [(l.concept_id, l.method) for l in links] == [("MESH:D002543", "abbrev"), ("MESH:D011127", "abbrev")]


def test_a_medic_row_with_mesh_and_omim_ids_links_to_mesh(tmp_path):
    """MEDIC sorts a row's IDs as strings, so OMIM numbers come first; the corpora annotate such a
    disease with its MeSH ID, so its names go there. A row with OMIM alone keeps OMIM; one with
    neither is an error naming its line."""
    from workers.inference.normalize import NormalizationError
    from workers.training.normalizer import add_medic

    medic = tmp_path / "medic.txt"
    medic.write_text("114550|D006528||Carcinoma, Hepatocellular|HCC\n601419||Myopathy, Myofibrillar, 1|DRM\n")
    d = Dictionary()
    add_medic(d, medic)
    assert d.lookup("HCC", "Disease").concept_id == "MESH:D006528"
    assert d.lookup("DRM", "Disease").concept_id == "OMIM:601419"
    medic.write_text("D006528||Carcinoma, Hepatocellular\n||Nameless ids\n")
    with pytest.raises(NormalizationError, match=r"medic.txt:2: a row without a MeSH or OMIM ID"):
        add_medic(Dictionary(), medic)


def test_a_malformed_dictionary_line_names_file_and_line(tmp_path):
    from workers.inference.normalize import NormalizationError

    bad = tmp_path / "medic.txt"
    bad.write_text("D006973||Hypertension|High Blood Pressure\nD000001 Calcimycin\n")
    from workers.training.normalizer import add_medic

    with pytest.raises(NormalizationError, match=r"medic.txt:2: expected 'IDs\|\|name\|synonyms'"):
        add_medic(Dictionary(), bad)


@pytest.fixture(scope="module")
def normalizer():
    from workers.training.normalizer import default_dictionary

    return Normalizer(default_dictionary(Path(DATA)))


def test_linking_real_test_mentions(normalizer):
    """Dictionary + abbreviation linking of gold test mentions (accuracy@1 floors under the measured
    0.734 / 0.860 / 0.845)."""
    from workers.training.evaluate import evaluate_linking

    assert normalizer.version.startswith("MeSH2024+MEDIC2012+")
    floors = {"ncbi-disease": 0.72, "bc5cdr-chem": 0.85, "bc5cdr-disease": 0.83}
    for dataset, floor in floors.items():
        s = evaluate_linking(normalizer, dataset)
        assert s.accuracy > floor, (dataset, s)
        assert s.by_method["abbrev"][0] > 0 and s.n == sum(n for _, n in s.by_method.values())


def test_pubmine_evaluate_normalization_prints_a_result_line():
    from typer.testing import CliRunner

    from pipeline.cli import app

    result = CliRunner().invoke(app, ["evaluate", "--task", "normalization", "--dataset", "ncbi-disease",
                                       "--encoder", "none"])
    assert result.exit_code == 0, result.output
    assert "BioSyn 91.1" in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("RESULT evaluate task=normalization dataset=ncbi-disease acc1=0.7") and last.endswith("n=960")


def test_the_embedding_step_links_what_no_string_key_matches_and_leaves_the_rest_nil():
    from workers.training.normalizer import embedding_index

    d = Dictionary()
    d.add("Disease", "MESH:D009203", "myocardial infarction", rank=1)
    d.add("Disease", "MESH:D001943", "breast neoplasms", rank=1)
    d.add("Chemical", "MESH:D000068877", "imatinib mesylate", rank=1)
    n = Normalizer(d, embedding_index(d), threshold=0.5)
    links = n.link_document("x", [("heart attack", "Disease"), ("mammary tumour", "Disease"),
                                  ("imatinib", "Chemical"), ("myocardial infarctions", "Disease")])
    assert [l.concept_id for l in links] == ["MESH:D009203", "MESH:D001943", "MESH:D000068877", "MESH:D009203"]
    assert [l.method for l in links] == ["embed", "embed", "embed", "exact"]
    assert all(0.5 <= l.score < 1.0 for l in links[:3])
    strict = Normalizer(d, n.index, threshold=0.99)
    assert strict.link_document("x", [("heart attack", "Disease")])[0].method == "nil"


def test_the_embedded_names_are_cached_by_dictionary_version(tmp_path, monkeypatch):
    import numpy as np

    from workers.inference.normalize import EmbeddingIndex
    from workers.training.normalizer import embedding_index

    monkeypatch.setenv("PUBMINE_HOME", str(tmp_path))
    cache = tmp_path / "normalization"
    d = Dictionary()
    d.add("Disease", "MESH:D009203", "myocardial infarction", rank=1)
    built = embedding_index(d)
    assert len(list(cache.glob("names2-*.npz"))) == 1
    real_encode = EmbeddingIndex.encode
    monkeypatch.setattr(EmbeddingIndex, "encode", lambda *a, **k: pytest.fail("re-embedded a cached dictionary"))
    loaded = embedding_index(d)
    assert loaded.ids == built.ids and np.array_equal(loaded.vectors["Disease"], built.vectors["Disease"])
    d.add("Disease", "MESH:D001943", "breast neoplasms", rank=1)  # another version: embedded anew
    monkeypatch.setattr(EmbeddingIndex, "encode", real_encode)
    assert len(embedding_index(d).ids["Disease"]) == 2
    assert len(list(cache.glob("names2-*.npz"))) == 2


def test_encoder_tuning_runs_through_the_one_training_loop_and_builds_a_loadable_normalizer(tiny_model, tmp_path,
                                                                                           monkeypatch):
    """build_normalizer --finetune-pairs: SapBERT-style tuning goes through loop.fit (schedule,
    checkpoint, progress), its checkpoint is removed afterwards, and the artifact links."""
    import workers.training.loop as loop
    import workers.training.normalizer as normalizer_mod
    from workers.training.loop import Hyperparams

    monkeypatch.setenv("PUBMINE_HOME", str(tmp_path / "home"))
    calls = []
    real_fit = loop.fit

    def spy(*args, **kwargs):
        calls.append(kwargs["name"])
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(normalizer_mod, "fit", spy)
    monkeypatch.setattr(normalizer_mod, "FINETUNE", Hyperparams(learning_rate=1e-3, batch_size=4, warmup_ratio=0.0,
                                                                epochs=1, seed=13))
    d = Dictionary()
    for cid, names in {"MESH:D006973": ["hypertension", "high blood pressure", "HTN"],
                       "MESH:D003693": ["delirium", "acute confusional state"],
                       "MESH:D009203": ["myocardial infarction", "heart attack", "MI"]}.items():
        for rank, name in enumerate(names, start=1):
            d.add("Disease", cid, name, rank, preferred=rank == 1)
    d.sources.append("tiny")
    manifest = normalizer_mod.build_normalizer(str(tmp_path / "tuned"), encoder=str(tiny_model), progress=False,
                                               log=lambda *_: None, dictionary=d, finetune_pairs=6)
    assert len(calls) == 1 and calls[0].startswith("normalizer-encoder-")
    assert not loop.checkpoint_path(calls[0]).exists()
    assert manifest["encoder"].startswith(f"{tiny_model}+synonyms(6 pairs")
    tuned = Normalizer.load(tmp_path / "tuned")
    assert tuned.link_document("x", [("hypertension", "Disease")])[0].concept_id == "MESH:D006973"


def test_per_type_thresholds_come_from_dev_with_the_dev_strings_held_out(tmp_path):
    """The least cosine whose accepted links are >= 85% right (and >= MIN_DEV_LINKS of them); a type
    where no cosine gets there links nothing by embedding; the held-out view drops a dictionary's
    extra names without re-embedding, and keeps each remaining key's best concept there."""
    from workers.training.normalizer import embedding_index, least_precise_threshold

    ranked = [(0.99, True)] * 9 + [(0.9, False)] + [(0.8, True)] * 10 + [(0.7, False)] * 5
    assert least_precise_threshold(ranked, 0.85, 10) == 0.8      # 19 of 20 at >= 0.8; 19 of 25 below
    assert least_precise_threshold(ranked, 0.96, 10) is None     # 19 of 20 (0.95) is the best there is
    assert least_precise_threshold([(0.9, True)] * 5, 0.85, 10) is None  # too few links to choose from
    assert least_precise_threshold([(0.9, True), (0.9, False)] * 10 + [(0.95, True)] * 20, 0.7, 10) == 0.9  # ties go together

    full, held = Dictionary(), Dictionary()
    for d in (full, held):
        d.add("Disease", "MESH:D009203", "myocardial infarction", rank=1)
        d.add("Chemical", "MESH:D000068877", "imatinib mesylate", rank=1)
    full.add("Disease", "MESH:D001943", "breast neoplasms", rank=1)
    full.add("Disease", "MESH:D000001", "myocardial infarction", rank=-3)  # a dev string's vote: wins in full
    index = embedding_index(full)
    view = index.restricted_to(held)
    assert view.names["Disease"] == ["myocardial infarction"] and view.ids["Disease"] == ["MESH:D009203"]
    assert index.ids["Disease"][index.names["Disease"].index("myocardial infarction")] == "MESH:D000001"
    assert (view.vectors["Disease"][0] == index.vectors["Disease"][index.names["Disease"].index("myocardial infarction")]).all()

    n = Normalizer(full, index, threshold=0.5, thresholds={"Disease": None, "Chemical": 0.5})
    links = n.link_document("x", [("heart attack", "Disease"), ("imatinib", "Chemical")])
    assert [l.method for l in links] == ["nil", "embed"]  # Disease: no embedding links at all


def test_character_ngrams_link_a_spelling_variant_and_only_above_their_threshold():
    from workers.inference.normalize import Dictionary, Normalizer

    d = Dictionary()
    d.add("Chemical", "MESH:D002112", "25-hydroxyvitamin D 3", 1, preferred=True)
    d.add("Chemical", "MESH:D000666", "amphotericin B", 1, preferred=True)
    d.sources.append("tiny")
    n = Normalizer(d).with_ngrams({"Chemical": 0.5})
    links = n.link_document("x", [("25-hydroxyvitamin D", "Chemical"), ("amphotericine B", "Chemical"),
                                  ("zebrafish", "Chemical"), ("amphotericin B", "Chemical")])
    assert [(x.concept_id, x.method) for x in links] == [("MESH:D002112", "ngram"), ("MESH:D000666", "ngram"),
                                                        (None, "nil"), ("MESH:D000666", "exact")]
    assert all(0.5 <= x.score < 1 for x in links[:2])
    strict = Normalizer(d).with_ngrams({"Chemical": 0.99}).link_document("x", [("amphotericine B", "Chemical")])
    assert strict[0].concept_id is None
    assert Normalizer(d).with_ngrams({"Chemical": None}).ngrams is None   # a type dev gave no threshold: none


def test_a_disease_adjective_no_name_matches_links_as_its_noun_and_says_so():
    from workers.inference.normalize import noun_forms

    d = Dictionary()
    d.add("Disease", "MESH:D007249", "inflammation", 1, preferred=True)
    d.add("Disease", "MESH:D010523", "neuropathy", 1, preferred=True)
    d.add("Chemical", "MESH:C000001", "inflammation", 1)
    n = Normalizer(d)
    links = n.link_document("x", [("inflammatory", "Disease"), ("peripheral neuropathic", "Disease"),
                                  ("neuropathy", "Disease"), ("inflammatory", "Chemical"), ("toxic", "Disease")])
    assert [(x.concept_id, x.method) for x in links] == [
        ("MESH:D007249", "adjective"), (None, "nil"), ("MESH:D010523", "exact"), (None, "nil"), (None, "nil")]
    assert noun_forms("neuropathic") == ["neuropathia", "neuropathy", "neuropathe"]
    assert noun_forms("toxic") == []   # too short a stem to read as an adjective


def test_british_spellings_of_medical_stems_meet_meshs_american_names():
    assert norm_key("Transient ischaemic attacks") == norm_key("transient ischemic attack")
    assert norm_key("hypoglycaemia") == norm_key("Hypoglycemia")
    assert norm_key("Tumours") == norm_key("tumor")
    assert norm_key("haemorrhage") == norm_key("hemorrhage")
    d = Dictionary()
    d.add("Disease", "MESH:D006943", "Hyperglycemia", 1, preferred=True)
    assert Normalizer(d).link_document("x", [("hyperglycaemia", "Disease")])[0].concept_id == "MESH:D006943"
