"""The question-answering reader: span search, merging, the trainer's data and windows, one small
training run end to end through `pubmine train` and `pubmine evaluate --task qa`."""

import json
import re

import pytest

from pipeline.bioasq import read_golden, read_submission
from tests.conftest import DATA
from workers.inference.qa import SpanAnswer, best_spans, merge_answers

GOLDEN_7B1 = DATA / "qa/bioasq_golden_7b/Task7BGoldenEnriched/7B1_golden.json.gz"


def test_best_spans_stay_inside_the_context_in_order_and_short():
    start = [9.0, 1.0, 5.0, 0.0, 4.0, 0.0]
    end = [9.0, 0.0, 1.0, 6.0, 0.0, 3.0]
    ctx = [False, False, True, True, True, True]   # pieces 2-5 are the context ([CLS], question before)
    spans = best_spans(start, end, ctx, n_best=3, max_answer_pieces=3)
    assert spans[0] == (11.0, 2, 3)                 # the best start with the best end after it
    assert all(ctx[s] and ctx[e] and s <= e < s + 3 for _, s, e in spans)
    assert (8.0, 2, 5) not in spans                 # 4 pieces: too long
    assert best_spans(start, end, [False] * 6, 3, 3) == []


def test_answers_merge_case_insensitively_keeping_the_best():
    merged = merge_answers([SpanAnswer("PD-L1", 0.4, 0, 0, 5), SpanAnswer("pd-l1 ", 0.7, 1, 3, 9),
                            SpanAnswer("EGFR", 0.5, 0, 9, 13), SpanAnswer(" ", 0.9, 0, 0, 1)])
    assert [(a.text, a.probability, a.context) for a in merged] == [("pd-l1 ", 0.7, 1), ("EGFR", 0.5, 0)]


def test_training_data_never_holds_a_7b_test_question_and_pubmedqa_splits_in_halves():
    from workers.training.qa import BIOASQ_FACTOID, bioasq_yes_no, golden_7b_ids, pubmedqa_split, read_squad_spans

    held = golden_7b_ids()
    assert len(held) == 500
    factoid = read_squad_spans(BIOASQ_FACTOID, exclude=held)
    assert len(factoid) > 4000 and all(x.context[x.start:x.end] for x in factoid)
    yes_no = bioasq_yes_no(held)
    assert yes_no and {x.label for x in yes_no} == {"yes", "no"}
    test_bodies = {q.body for q in read_golden([GOLDEN_7B1])}
    assert not test_bodies & {x.question for x in yes_no}
    # the earlier years' golden yes/no questions, one example per snippet: none of 7B's, by id or by text
    from workers.training.qa import bioasq_golden_yes_no, golden_7b_bodies

    snippets = bioasq_golden_yes_no(held, golden_7b_bodies())
    assert len({x.question for x in snippets}) > 350 and {x.source for x in snippets} == {"bioasq_snippets"}
    seven = read_golden([DATA / f"qa/bioasq_golden_7b/Task7BGoldenEnriched/7B{b}_golden.json{'.gz' if b < 5 else ''}"
                         for b in range(1, 6)])
    assert not {q.body for q in seven} & {x.question for x in snippets}
    assert len(bioasq_golden_yes_no(set(), set())) == len(snippets)   # none of 7B among them to drop
    first = snippets[0].question   # the filter works: a question's text, spaced and cased otherwise, drops it
    kept = bioasq_golden_yes_no(held, golden_7b_bodies() | {" ".join(first.upper().split()).lower()})
    assert first not in {x.question for x in kept} and len(kept) < len(snippets)
    train, test = pubmedqa_split("train"), pubmedqa_split("test")
    assert len(train) == len(test) == 500 and not {x.question for x in train} & {x.question for x in test}
    assert {x.label for x in test} == {"yes", "no", "maybe"}


def test_windows_point_at_the_answer_or_at_cls_when_it_is_cut(tiny_model):
    from workers.inference.artifacts import load_tokenizer
    from workers.training.qa import SpanExample, span_features

    tok = load_tokenizer(tiny_model, "ner")
    ctx = "Filler words here. " * 12 + "Bazex syndrome is rare."
    a = ctx.index("Bazex")
    x = SpanExample("What is acrokeratosis paraneoplastica?", ctx, a, a + len("Bazex syndrome"))
    feats = span_features(tok, [x], max_length=64, stride=16)
    assert len(feats) > 1
    hits = [(ids, s, e) for ids, _, s, e in feats if s]
    assert hits and any(s == 0 for _, _, s, _ in feats)  # an early window without the answer: [CLS]
    for ids, s, e in hits:
        assert tok.decode(ids[s:e + 1]).replace(" ", "") == "bazexsyndrome"


def test_decisions_train_on_every_window_the_reader_averages(tiny_model):
    from workers.inference.artifacts import load_tokenizer
    from workers.training.qa import DecisionExample, decision_features, example_weights

    tok = load_tokenizer(tiny_model, "ner")
    long = DecisionExample("Does it work?", "Background words here. " * 30 + "It worked in all patients.", "yes", "pqa")
    short = DecisionExample("Is it safe?", "It was not safe.", "no", "pqa")
    first = decision_features(tok, [long, short], max_length=64, stride=16, windows="first")
    assert [(f[2], f[4]) for f in first] == [(0, 1.0), (1, 1.0)] and "patients" not in tok.decode(first[0][0])
    every = decision_features(tok, [long, short], max_length=64, stride=16, windows="all")
    longs = [f for f in every if f[2] == 0]
    assert len(longs) > 1 and "patients" in tok.decode(longs[-1][0])  # the end of the context is trained on
    assert abs(sum(f[4] for f in longs) - 1) < 1e-9 and every[-1][4] == 1.0
    # the long example's windows weigh together what the short one weighs (one yes, one no in its source)
    w = example_weights(every, "source")
    assert abs(sum(w[: len(longs)]) - w[-1]) < 1e-9


def test_a_small_reader_trains_loads_answers_and_is_scored_by_bioasq_rules(tiny_model, tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app
    from workers.inference.qa import QaReader

    out = tmp_path / "qa"
    result = CliRunner().invoke(app, ["train", "-c", "configs/models/default-qa.yaml", "-o", str(out),
                                      "--set", f"base_model={tiny_model}", "--set", "limit_examples=24",
                                      "--set", "general_limit=16", "--set", "max_length=128", "--set", "stride=32",
                                      "--set", "batch_size=8", "--set", "score_test=false", "--set", "epochs=1",
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    reader = QaReader.load(out, precision="fp32")
    ctx = ["Acrokeratosis paraneoplastica (Bazex syndrome) is rare.", "Bazex syndrome appears with carcinoma."]
    answers = reader.factoid("Name a synonym of acrokeratosis paraneoplastica.", ctx)
    assert 1 <= len(answers) <= 5 and len({a.text.lower().strip() for a in answers}) == len(answers)
    assert all(ctx[a.context][a.start:a.end] == a.text for a in answers)
    label, probs = reader.decide("Is Bazex syndrome rare?", ctx, ("yes", "no"))
    assert label in ("yes", "no") and sum(probs.values()) == pytest.approx(1.0)
    # the decision bias chosen on held-out decision questions is in the reader's settings, and applied
    bias, bias_yes_no = reader.manifest["reader"]["decision_bias"], reader.manifest["reader"]["decision_bias_yes_no"]
    assert len(bias) == 3 and bias[0] == 0.0 and reader.decision_bias.tolist() == bias
    assert bias_yes_no[0] == bias_yes_no[2] == 0.0 and reader.decision_bias_yes_no.tolist() == bias_yes_no
    assert reader.manifest["training"]["decision_held_out"]["pubmedqa"] >= 1 and reader.manifest["training"]["decision_dev"] == 5
    z = reader.decision_logits("Is Bazex syndrome rare?", ctx) + reader.decision_bias_yes_no
    assert label == ("yes" if z[0] >= z[1] else "no")

    sub = tmp_path / "answers.json"
    result = CliRunner().invoke(app, ["evaluate", "--task", "qa", "-m", str(out), "--data", str(GOLDEN_7B1),
                                      "--out", str(sub), "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("RESULT qa factoid_mrr=")
    answered = read_submission(sub)
    golden = {q.id: q for q in read_golden([GOLDEN_7B1])}
    assert answered and all(golden[k].type != "summary" for k in answered)
    assert all(isinstance(v, str) for k, v in answered.items() if golden[k].type == "yesno")
    assert all(len(v) <= 5 for k, v in answered.items() if golden[k].type == "factoid")
    json.loads(sub.read_text())  # a plain BioASQ submission file
    result = CliRunner().invoke(app, ["evaluate", "--task", "qa", "-m", str(tmp_path / "none"), "--data", str(GOLDEN_7B1)])
    assert result.exit_code != 0 and "no question-answering reader" in result.output


def test_pubmedqa_is_scored_on_its_official_test_split(tiny_reader):
    """`pubmine evaluate --task qa --dataset pubmedqa`: the 500 test questions, yes/no/maybe, the RESULT line."""

    from typer.testing import CliRunner

    from pipeline.cli import app

    result = CliRunner().invoke(app, ["evaluate", "--task", "qa", "--dataset", "pubmedqa", "-m", str(tiny_reader),
                                      "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    acc, f1 = map(float, re.search(r"RESULT qa dataset=pubmedqa acc=(\S+) macro_f1=(\S+)", result.output).groups())
    assert "(500 questions)" in result.output and 0 <= acc <= 1 and 0 <= f1 <= 1
    assert acc >= 0.1  # a three-way decision: not every answer can be wrong by chance alone on 500


def test_the_decision_bias_is_chosen_on_held_out_questions_and_moves_the_answers(tiny_model, tmp_path):
    """fit_decision_bias over a reader whose logits lean to "maybe": the bias it picks takes the
    answers back to the gold ones, and the reader applies the bias stored in its settings."""
    import torch

    from workers.training.qa import DecisionExample, fit_decision_bias, held_out

    class Leaning:   # "maybe" a little above the truth for every question
        def decision_logits(self, question, contexts):
            truth = {"yes": 0, "no": 1}[question.split()[0]]
            z = torch.zeros(3)
            z[truth], z[2] = 1.0, 1.5
            return z

    pqa = [DecisionExample(f"{'yes' if i % 3 else 'no'} q{i}", "c", "yes" if i % 3 else "no") for i in range(30)]
    yn = [DecisionExample(f"{'yes' if i // 2 % 2 else 'no'} b{i // 2}", f"c{i}", "yes" if i // 2 % 2 else "no")
          for i in range(20)]   # two contexts per question
    chosen = fit_decision_bias(Leaning(), pqa, yn)
    assert chosen["bias"][0] == 0.0 and chosen["bias"][2] <= -0.5   # maybe no longer above the truth
    dev = chosen["dev"]
    # choosing pays on questions it was not chosen on: the halves say so, and the bias is kept
    assert dev["cross_validated"]["pubmedqa_acc"]["chosen"] > dev["cross_validated"]["pubmedqa_acc"]["none"]
    assert dev["without"]["pubmedqa_acc"] == 0.0 and dev["with"]["pubmedqa_acc"] == 1.0
    assert dev["with"]["pubmedqa_macro_f1"] > dev["without"]["pubmedqa_macro_f1"]
    assert dev["questions"] == {"pubmedqa": 30, "bioasq_yesno": 10}  # a question's contexts answer it once
    # yes/no decisions never see "maybe": their bias is chosen apart, and none is needed here
    assert chosen["bias_yes_no"] == [0.0, 0.0, 0.0] and dev["with"]["bioasq_yesno_macro_f1"] == 1.0
    # the same question in two sources is two questions (full abstracts, or the test's snippets)
    both = yn + [DecisionExample(x.question, x.context, x.label, "bioasq_snippets") for x in yn]
    assert fit_decision_bias(Leaning(), pqa, both)["dev"]["questions"]["bioasq_yesno"] == 20
    # held out by question: all of a question's contexts on one side, about one in five
    train, dev_set = held_out([DecisionExample(f"q{i // 2}", f"c{i}", "yes") for i in range(400)], 5)
    assert {x.question for x in train}.isdisjoint({x.question for x in dev_set}) and 20 <= len(dev_set) <= 70
    assert held_out(pqa, 0) == (pqa, [])


def test_a_bias_that_fits_the_held_out_questions_but_not_their_halves_is_not_kept():
    """Logits already centred (each label drawn around them with noise): over the 80 questions the
    best bias is +0.5, a fit of the noise; chosen on half the questions it scores worse on the other
    half than no bias, so none is kept."""
    import numpy as np
    import torch

    from workers.training.qa import (BIAS_GRID, DecisionExample, _choose, _decide, fit_decision_bias,
                                     macro_f1)

    rng = np.random.default_rng(2)
    margin = rng.normal(size=80) * 2
    gold = np.array([0 if m + rng.normal() * 1.5 > 0 else 1 for m in margin])
    z = np.stack([[m / 2, -m / 2, -9.0] for m in margin]).astype(np.float32)

    class Centred:
        def decision_logits(self, question, contexts):
            return torch.from_numpy(z[int(question[1:])])

    f1 = lambda z, g, b: (macro_f1(_decide(z, b, [0, 1]), g, [0, 1]),)
    assert _choose(z, gold, [(0.0, n, 0.0) for n in BIAS_GRID], f1) == (0.0, 0.5, 0.0)  # unguarded
    yn = [DecisionExample(f"q{i}", "c", ("yes", "no")[g], "bioasq_snippets") for i, g in enumerate(gold)]
    chosen = fit_decision_bias(Centred(), [], yn)
    cv = chosen["dev"]["cross_validated"]["bioasq_yesno_macro_f1"]
    assert cv["chosen"] < cv["none"] and chosen["bias_yes_no"] == [0.0, 0.0, 0.0]
    assert chosen["dev"]["with"] == chosen["dev"]["without"]


def test_calibrate_chooses_a_readers_decision_biases_again_on_its_held_out_questions(tiny_reader, tmp_path):
    from tests.conftest import calibrated_copy
    from workers.inference.qa import QaReader

    folder = tmp_path / "reader"
    before, after, output = calibrated_copy(tiny_reader, folder)
    assert after["model_id"] == before["model_id"].replace("tiny-qa-", "tiny-qa-cv-") != before["model_id"]
    cv = after["metrics"]["decision_dev"]["cross_validated"]
    assert set(cv) == {"pubmedqa_acc", "bioasq_yesno_macro_f1"} and all(set(v) == {"chosen", "none"} for v in cv.values())
    assert re.search(r"RESULT calibrate model=tiny-qa-cv-\S+ decision_bias=\S+ decision_bias_yes_no=\S+ "
                     r"cv_bioasq_yesno_macro_f1_chosen=", output)
    reader = QaReader.load(folder)  # the hash check still holds, and the reader applies the new biases
    assert reader.decision_bias.tolist() == after["reader"]["decision_bias"]
    # a bias kept only where the halves said it pays
    for key, bias in (("pubmedqa_acc", "decision_bias"), ("bioasq_yesno_macro_f1", "decision_bias_yes_no")):
        assert (cv[key]["chosen"] > cv[key]["none"]) or after["reader"][bias] == [0.0, 0.0, 0.0]


def test_decision_classes_are_weighted_inverse_to_their_frequency():
    from workers.training.qa import balanced_weights

    feats = [([1], None, 0)] * 6 + [([1], None, 1)] * 3  # six yes, three no, no maybe
    w = balanced_weights(feats)
    assert w == [0.75, 1.5, 0.0]  # yes and no weigh the same in all (6 * 0.75 == 3 * 1.5); maybe absent


def test_decision_weights_within_each_source_keep_a_small_source_from_dominating():
    from workers.training.qa import example_weights, weights_summary

    # PubMedQA-like: six yes, three no, one maybe; BioASQ-like: 80 yes, 20 no, no maybe
    pqa = [([1], None, 0, "pqa")] * 6 + [([1], None, 1, "pqa")] * 3 + [([1], None, 2, "pqa")]
    yn = [([1], None, 0, "yn")] * 80 + [([1], None, 1, "yn")] * 20
    feats = pqa + yn
    pooled = example_weights(feats, "pooled")
    source = example_weights(feats, "source")
    # pooled: the single maybe weighs 110 / (3 * 1) = 36.7, the yes 110 / (3 * 86) = 0.43
    assert round(pooled[9], 2) == 36.67 and round(pooled[0], 2) == 0.43
    # within its source the maybe weighs 10 / (3 * 1) = 3.33; BioASQ's no 100 / (2 * 20) = 2.5
    assert round(source[9], 2) == 3.33 and source[10] == 100 / 160 and source[-1] == 2.5
    # each source keeps its size: its weights sum to its count
    assert abs(sum(source[:10]) - 10) < 1e-9 and abs(sum(source[10:]) - 100) < 1e-9
    assert weights_summary(feats, "source").startswith("pqa: yes 0.56, no 1.11, maybe 3.33; yn: yes 0.62, no 2.50")


def test_decision_weighting_is_checked():
    from pipeline.errors import ConfigError
    from workers.training.qa import QaTrainConfig

    with pytest.raises(ConfigError, match="decision_weighting"):
        QaTrainConfig(decision_weighting="uniform")
