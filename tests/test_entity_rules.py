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
