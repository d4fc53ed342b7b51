"""What cannot be an entity, whatever the model says (each rule's dev numbers are in its docstring),
and per-type acceptance thresholds chosen on dev for a stated precision."""

from workers.inference.decoding import can_be_entity, one_type_per_span
from workers.training.ner import acceptance_thresholds


def test_a_span_needs_a_letter_and_two_characters():
    for junk in ("1", "-1", "P", "%", " 2 ", "(", "12.5"):
        assert not can_be_entity(junk), junk
    for name in ("K+", "p53", "IL-6", "Li", "5-FU", "PTEN"):
        assert can_be_entity(name), name


def test_one_span_keeps_its_best_scored_type_and_nested_spans_stay():
    spans = [{"start": 0, "end": 4, "type": "Chemical", "score": 0.4}, {"start": 0, "end": 4, "type": "Gene", "score": 0.9},
             {"start": 0, "end": 10, "type": "Disease", "score": 0.5}, {"start": 12, "end": 15, "type": "Gene", "score": 0.3}]
    kept = one_type_per_span(spans)
    assert [(s["start"], s["end"], s["type"]) for s in kept] == [(0, 4, "Gene"), (0, 10, "Disease"), (12, 15, "Gene")]


def test_acceptance_threshold_is_the_least_score_whose_spans_reach_the_precision():
    # Gene: 10 right at 0.9, then 10 wrong at 0.5, then 10 right at 0.4: precision 1.0, 0.5, 0.67
    spans = ([("Gene", 0.9, True)] * 10 + [("Gene", 0.5, False)] * 10 + [("Gene", 0.4, True)] * 10
             + [("Chemical", 0.8, True)] * 25 + [("Variant", 0.3, False)] * 30)
    out = acceptance_thresholds(spans, precision=0.6, min_spans=5)
    assert out["thresholds"]["Gene"] == 0.0          # all 30 kept (20/30 = 0.67 >= 0.6): no cut
    assert out["thresholds"]["Chemical"] == 0.0      # already precise: no cut
    assert "Variant" not in out["thresholds"] and out["dev"]["Variant"]["reached"] is False
    strict = acceptance_thresholds(spans, precision=0.8, min_spans=5)
    assert strict["thresholds"]["Gene"] == 0.9 and strict["dev"]["Gene"]["correct_kept"] == 0.5


def test_thresholds_are_fitted_on_the_corpora_that_annotate_every_type_when_they_have_enough():
    """BC2GM's dev genes (main boundaries only) outnumber BioRED's ten to one; where BioRED holds 50
    predicted spans of a type they alone set its calibration, else every source's do."""
    from workers.training.ner import MIN_CALIBRATION_SPANS, calibration_spans

    types = ("Gene", "Variant")
    dev_sets = [([], types), ([], ("Gene",))]           # source 0 annotates every type, source 1 genes only
    whole = [("Gene", 0.9, True, 0)] * MIN_CALIBRATION_SPANS + [("Variant", 0.5, True, 0)] * 3
    partial = [("Gene", 0.9, False, 1)] * 500 + [("Variant", 0.4, False, 1)] * 2
    picked = calibration_spans(whole + partial, dev_sets, types)
    assert [x for x in picked if x[0] == "Gene"] == [("Gene", 0.9, True)] * MIN_CALIBRATION_SPANS
    assert sorted(x for x in picked if x[0] == "Variant") == sorted([("Variant", 0.5, True)] * 3 + [("Variant", 0.4, False)] * 2)
    # too few whole-corpus genes: the pooled spans decide
    few = calibration_spans(whole[1:] + partial, dev_sets, types)
    assert sum(1 for x in few if x[0] == "Gene") == MIN_CALIBRATION_SPANS - 1 + 500
    # no complete source at all: everything is pooled
    assert len(calibration_spans(whole + partial, [([], ("Gene",)), ([], ("Gene",))], types)) == len(whole + partial)


def test_calibrate_refits_an_ner_models_thresholds_under_a_new_id_and_keeps_its_weights(tmp_path, tiny_relation):
    import re

    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.config import load_dataclass
    from workers.inference.artifacts import read_manifest, verify_hash
    from workers.inference.ner import NerTagger
    from workers.training.ner import NerTrainConfig, train_ner
    from workers.training.tiny import tiny_bert
    from tests.conftest import ROOT

    tiny = tmp_path / "tiny"
    tiny_bert(tiny, types=("Chemical", "Disease", "Gene"), label_scheme="BIO-per-type")
    cfg = load_dataclass(NerTrainConfig, ROOT / "configs/models/multitask-ner.yaml", [
        f"base_model={tiny}", "name=tiny-cal", "limit_docs=20", "epochs=1", "learning_rate=3e-3", "max_length=64",
        "accept_precision=0.5", "dev=[biored/pubtator/Train.PubTator.gz@-8, ncbi_disease/iob/devel.tsv#Disease]"])
    model = tmp_path / "m"
    before = train_ner(cfg, str(model), progress=False, log=lambda *_: None)
    result = CliRunner().invoke(app, ["calibrate", "-m", str(model), "--accept-precision", "0.9", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    m = read_manifest(model)
    assert m["model_id"] != before["model_id"] and m["model_id"].startswith("tiny-cal-c")
    assert m["calibration"]["accept"]["precision"] == 0.9 and m["training"]["accept_precision"] == 0.9
    assert set(m["calibration"]["fitted_on"]) <= {"Chemical", "Disease", "Gene"}
    verify_hash(model, m, str(model))            # the weights are the ones trained
    assert NerTagger.load(model, precision="fp32").accept == m["calibration"]["accept"]["thresholds"]
    assert re.search(r"RESULT calibrate model=tiny-cal-c\S+ precision=0.9", result.output)
    # int8: its own thresholds, fitted on the quantized encoder's scores, beside the model's own
    result = CliRunner().invoke(app, ["calibrate", "-m", str(model), "--precision", "int8"])
    assert result.exit_code == 0, result.output
    m8 = read_manifest(model)
    assert m8["model_id"] not in (m["model_id"], before["model_id"]) and m8["calibration"] == m["calibration"]
    c8 = m8["calibration_int8"]
    assert c8["accept"]["precision"] == 0.9 and set(c8["dev_f1"]) == {"fp32", "int8"}
    assert c8["auto"] == (c8["dev_f1"]["fp32"] - c8["dev_f1"]["int8"] <= 0.005)
    assert re.search(r"RESULT calibrate model=\S+ precision=0.9 calibration=int8 dev_f1_fp32=\S+ dev_f1_int8=\S+ "
                     r"auto_int8=(true|false)", result.output)
    verify_hash(model, m8, str(model))
    assert NerTagger.load(model, precision="int8").accept == c8["accept"]["thresholds"]
    assert NerTagger.load(model, precision="fp32").accept == m["calibration"]["accept"]["thresholds"]
    # a new main calibration drops the int8 one fitted beside the old
    again = CliRunner().invoke(app, ["calibrate", "-m", str(model), "--precision", "fp32"])
    assert again.exit_code == 0 and "dropped calibration_int8" in again.output
    assert "calibration_int8" not in read_manifest(model)
    # a model of another task is refused with what calibrate takes
    other = CliRunner().invoke(app, ["calibrate", "-m", str(tiny_relation)])
    assert other.exit_code != 0 and "calibrate takes an NER" in other.output
