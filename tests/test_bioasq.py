"""BioASQ phase B scoring by the challenge's rules, against cases computed by hand."""

import json

import pytest

from pipeline.bioasq import (Question, factoid_scores, list_scores, read_golden, read_submission, score_answers,
                             submitted)
from pipeline.errors import PubmineError
from tests.conftest import DATA

GOLDEN_7B = sorted((DATA / "qa/bioasq_golden_7b/Task7BGoldenEnriched").glob("7B*_golden.json*"))


def test_factoid_strict_lenient_and_reciprocal_rank_over_synonyms_first_synonym_only():
    gold = [["bazex syndrome", "acrokeratosis paraneoplastica"]]
    assert factoid_scores(gold, [["Bazex syndrome"], ["x"]]) == (1.0, 1.0, 1.0)           # case does not matter
    assert factoid_scores(gold, [["x"], ["y"], ["Acrokeratosis paraneoplastica"]]) == (0.0, 1.0, 1 / 3)
    # a submitted item is its first synonym only: the second one here is not read
    assert factoid_scores(gold, [["x", "bazex syndrome"]]) == (0.0, 0.0, 0.0)
    # two matching answers (a tie in the gold's eyes): the first one's rank counts
    assert factoid_scores(gold, [["q"], ["bazex syndrome"], ["acrokeratosis paraneoplastica"]]) == (0.0, 1.0, 0.5)
    # only the first five count; an empty item keeps its rank
    assert factoid_scores(gold, [["a"], ["b"], ["c"], ["d"], ["e"], ["bazex syndrome"]]) == (0.0, 0.0, 0.0)
    assert factoid_scores(gold, [[], ["bazex syndrome"]]) == (0.0, 1.0, 0.5)
    assert factoid_scores(gold, None) == (0.0, 0.0, 0.0)
    assert factoid_scores(gold, [" bazex syndrome"]) == (0.0, 0.0, 0.0)  # no trimming: BioASQ compares exactly
    assert submitted("PD-L1") == ["pd-l1"] and submitted(["a", ["B", "c"]]) == ["a", "b"]


def test_list_questions_use_each_golden_item_once():
    gold = [["hallucination"], ["dizziness", "dissiness"], ["orthostatic hypotension"], ["pedal edema"]]
    # 3 right (one through a synonym), 1 repeat (a false positive: its item is used up), 1 wrong
    p, r, f = list_scores(gold, [["Hallucination"], ["dissiness"], ["hallucination"], ["pedal edema"], ["rash"]])
    assert (p, r) == (3 / 5, 3 / 4) and f == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert list_scores(gold, [[g[0]] for g in gold]) == (1.0, 1.0, 1.0)
    assert list_scores(gold, []) == (0.0, 0.0, 0.0) and list_scores(gold, None) == (0.0, 0.0, 0.0)
    assert list_scores(gold, [["rash"]]) == (0.0, 0.0, 0.0)


def test_yes_no_accuracy_and_f1_per_label_as_the_evaluator_counts_them():
    qs = [Question(f"q{i}", "yesno", "?", g) for i, g in enumerate(["yes"] * 6 + ["no"] * 4)]
    # yes questions: 5 right, 1 answered no; no questions: 2 right, 1 answered yes, 1 unanswered
    answers = {"q0": "Yes", "q1": "yes", "q2": "yes.", "q3": "yes", "q4": "yes", "q5": "no",
               "q6": "no", "q7": "No", "q8": "yes"}
    s = score_answers(qs, answers)
    assert s.yesno_acc == pytest.approx(7 / 10)
    wrong = 3
    assert s.yesno_f1_yes == pytest.approx(2 * 5 / (2 * 5 + wrong))
    assert s.yesno_f1_no == pytest.approx(2 * 2 / (2 * 2 + wrong))
    assert s.yesno_macro_f1 == pytest.approx((10 / 13 + 4 / 7) / 2)
    assert s.counts["yesno"] == {"questions": 10, "answered": 9}


def test_every_question_of_a_type_counts_and_summaries_are_not_scored():
    qs = [Question("f1", "factoid", "?", [["a"]]), Question("f2", "factoid", "?", [["b"]]),
          Question("l1", "list", "?", [["x"], ["y"]]), Question("s1", "summary", "?", None)]
    s = score_answers(qs, {"f1": [["z"], ["a"]], "l1": [["x"]], "s1": "anything"})
    assert (s.factoid_strict, s.factoid_lenient, s.factoid_mrr) == (0.0, 0.5, 0.25)  # f2 unanswered: 0
    assert (s.list_precision, s.list_recall) == (1.0, 0.5) and s.list_f1 == pytest.approx(2 / 3)
    assert s.result_line() == ("RESULT qa factoid_mrr=0.2500 factoid_strict=0.0000 factoid_lenient=0.5000 "
                               "list_f1=0.6667 yesno_acc=0.0000 yesno_macro_f1=0.0000")


def test_the_official_7b_golden_batches_read_as_one_set_and_their_own_answers_score_perfectly(tmp_path):
    qs = read_golden(GOLDEN_7B)
    kinds = {t: sum(q.type == t for q in qs) for t in ("factoid", "list", "yesno", "summary")}
    assert kinds == {"factoid": 162, "list": 88, "yesno": 140, "summary": 110}
    assert all(q.snippets and q.documents for q in qs if q.type != "summary")
    assert all(sn.pmid.isdigit() for q in qs for sn in q.snippets)
    perfect = {"questions": [{"id": q.id, "exact_answer": q.exact if q.type == "yesno" else [[item[0]] for item in q.exact]}
                             for q in qs if q.type != "summary"]}
    path = tmp_path / "perfect.json"
    path.write_text(json.dumps(perfect))
    s = score_answers(qs, read_submission(path))
    assert (s.factoid_strict, s.factoid_mrr, s.list_f1, s.yesno_acc, s.yesno_macro_f1) == (1.0, 1.0, 1.0, 1.0, 1.0)
    # always "yes" on 7b's 94 yes / 46 no: accuracy 0.67 but macro F1 only 0.40
    s = score_answers(qs, {q.id: "yes" for q in qs if q.type == "yesno"})
    assert s.yesno_acc == pytest.approx(94 / 140) and s.yesno_macro_f1 == pytest.approx((2 * 94 / (2 * 94 + 46)) / 2)
    with pytest.raises(PubmineError, match="more than one"):
        read_golden(GOLDEN_7B + GOLDEN_7B[:1])


def test_files_that_are_not_bioasq_are_refused_with_the_reason(tmp_path):
    bad = tmp_path / "squad.json"
    bad.write_text(json.dumps({"data": []}))
    with pytest.raises(PubmineError, match="no 'questions' list"):
        read_golden(bad)
    with pytest.raises(PubmineError, match="not found"):
        read_golden(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(PubmineError, match="not JSON"):
        read_submission(tmp_path / "broken.json")


def test_pubmine_evaluate_task_qa_scores_a_submission_against_golden_batches(tmp_path):
    """The command the checks use: golden batches as one set, a submission, the RESULT line last."""
    from typer.testing import CliRunner

    from pipeline.cli import app

    qs = read_golden(GOLDEN_7B[:2])
    factoids = [q for q in qs if q.type == "factoid"]
    # the first factoid right at rank 2, every other factoid wrong; every yes/no answered "yes"
    sub = {"questions": [{"id": factoids[0].id, "exact_answer": [["wrong"], [factoids[0].exact[0][0]]]}]
           + [{"id": q.id, "exact_answer": [["wrong"]]} for q in factoids[1:]]
           + [{"id": q.id, "exact_answer": "yes"} for q in qs if q.type == "yesno"]}
    path = tmp_path / "sub.json"
    path.write_text(json.dumps(sub))
    args = ["evaluate", "--task", "qa", "--answers", str(path)] + [x for g in GOLDEN_7B[:2] for x in ("--data", str(g))]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    n = len(factoids)
    assert last.startswith(f"RESULT qa factoid_mrr={0.5 / n:.4f} factoid_strict=0.0000 factoid_lenient={1 / n:.4f} list_f1=0.0000")
    assert "BioBERT (published)" in result.output
    missing = CliRunner().invoke(app, ["evaluate", "--task", "qa", "--answers", str(path)])
    assert missing.exit_code != 0 and "needs --data" in missing.output
    other = CliRunner().invoke(app, ["evaluate", "--task", "qa", "--answers", str(path), "--data", str(GOLDEN_7B[4])])
    assert other.exit_code != 0 and "in none of the golden files" in other.output
