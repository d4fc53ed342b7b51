"""BioASQ Task B (phase B) by BioASQ's own rules: the official golden JSON read as it is, any
system's exact answers scored the way the challenge's evaluator (``EvaluatorTask1b -phaseB -e 5``)
scores them:

- every string is lowercased; nothing else is normalized (no trimming, no punctuation rules);
- a submitted factoid or list answer is its *first* synonym only (since BioASQ 5 systems submit no
  synonyms); a golden answer item keeps all of its synonyms;
- factoid: up to five ranked answers; strict accuracy = the first matches a golden synonym, lenient =
  any of the five does, MRR = 1 / rank of the first that does (0 when none);
- list: per question, a submitted item matching a synonym of a golden item not matched yet is a true
  positive (that golden item is then used up: a repeated answer is a false positive), any other a
  false positive; a golden item no remaining submitted item names is a false negative; precision,
  recall and F1 per question, then each averaged over the list questions;
- yes/no: an answer containing "yes" is yes, else one containing "no" is no (BioASQ's reading);
  accuracy, F1 of each label and their mean (macro F1).

Every measure is averaged over *all* golden questions of its type: a question without an answer
counts as wrong (0), so a partial submission cannot score higher than a full one. BioASQ's jar
skips questions a submission leaves out; on a submission that answers every question the two agree.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import PubmineError

TYPES = ("factoid", "list", "yesno", "summary")
MAX_FACTOID = 5   # BioASQ's rules: at most five ranked factoid answers


@dataclass(frozen=True)
class Snippet:
    pmid: str          # from the document URL (http://www.ncbi.nlm.nih.gov/pubmed/<pmid>)
    text: str
    section: str       # beginSection: title | abstract | sections.N
    start: int         # offsetInBeginSection
    end: int           # offsetInEndSection


@dataclass(frozen=True)
class Question:
    id: str
    type: str
    body: str
    exact: object                       # yes/no: "yes" | "no"; factoid/list: [[synonym, ...], ...]
    documents: tuple[str, ...] = ()     # PMIDs
    snippets: tuple[Snippet, ...] = field(default=())


def _open(path: str | Path):
    path = Path(path)
    if not path.exists():
        raise PubmineError(f"BioASQ file {path} not found")
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _questions(path: str | Path, expected: str) -> list:
    """The ``questions`` list of a BioASQ JSON file (golden or submission), or an error naming the file."""
    with _open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise PubmineError(f"{path}: not JSON ({err}); expected {expected}") from err
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise PubmineError(f"{path}: no 'questions' list at the top level; expected {expected}")
    return data["questions"]


def _pmid(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def read_golden(paths) -> list[Question]:
    """The questions of BioASQ golden files (``{"questions": [...]}``, plain or .gz), several read as
    one set; a question id seen twice is an error (the same batch given twice)."""
    out: list[Question] = []
    seen: set[str] = set()
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        for k, q in enumerate(_questions(path, "a BioASQ golden file")):
            if not isinstance(q, dict) or q.get("type") not in TYPES or "id" not in q:
                raise PubmineError(f"{path}: question {k} has no id or a type not in {TYPES}")
            if q["id"] in seen:
                raise PubmineError(f"{path}: question {q['id']} is in more than one of the files given")
            seen.add(q["id"])
            snippets = tuple(Snippet(_pmid(s.get("document", "")), s.get("text", ""), s.get("beginSection", ""),
                                     int(s.get("offsetInBeginSection", 0)), int(s.get("offsetInEndSection", 0)))
                             for s in q.get("snippets") or ())
            out.append(Question(q["id"], q["type"], q.get("body", ""), golden_exact(q),
                                tuple(_pmid(d) for d in q.get("documents") or ()), snippets))
    return out


def golden_exact(q: dict):
    """A golden question's exact answer as the scorer reads it: yes/no lowercased; factoid and list
    as lowercased synonym lists (a flat list of strings is one item's synonyms)."""
    ea = q.get("exact_answer")
    if q["type"] == "yesno":
        return yes_no(ea if isinstance(ea, str) else "")
    if q["type"] == "summary" or ea is None:
        return None
    if isinstance(ea, str):
        return [[ea.lower()]]
    if ea and all(isinstance(x, str) for x in ea):
        return [[x.lower() for x in ea]]
    return [[s.lower() for s in (item if isinstance(item, list) else [item])] for item in ea]


def yes_no(answer: str) -> str:
    a = answer.lower()
    return "yes" if "yes" in a else "no" if "no" in a else "none"


def submitted(answer) -> list[str]:
    """A submitted factoid/list answer as the scorer reads it: each item's first synonym, lowercased
    (``[["a", "a2"], ["b"]]``, ``["a", "b"]`` and ``"a"`` alike)."""
    if answer is None:
        return []
    if isinstance(answer, str):
        return [answer.lower()]
    out = []
    for item in answer:
        if isinstance(item, list):
            out.append(str(item[0]).lower() if item else None)  # an empty item keeps its rank and matches nothing
        else:
            out.append(str(item).lower())
    return out


def _names(gold: list[list[str]]) -> set[str]:
    return {s for item in gold for s in item}


def factoid_scores(gold: list[list[str]], answer) -> tuple[float, float, float]:
    """(strict, lenient, reciprocal rank) of one factoid question."""
    names = _names(gold or [])
    ranked = submitted(answer)[:MAX_FACTOID]
    rank = next((i + 1 for i, a in enumerate(ranked) if a in names), None)
    return float(rank == 1), float(rank is not None), 1.0 / rank if rank else 0.0


def list_scores(gold: list[list[str]], answer) -> tuple[float, float, float]:
    """(precision, recall, F1) of one list question, BioASQ's way (each golden item used up once)."""
    items = [a for a in submitted(answer) if a is not None]
    if not items:
        return 0.0, 0.0, 0.0
    remaining = [set(g) for g in gold or []]
    tp = fp = 0
    for a in items:
        hit = next((k for k, g in enumerate(remaining) if a in g), None)
        if hit is None:
            fp += 1
        else:
            tp += 1
            remaining.pop(hit)
    left = list(items)
    fn = 0
    for g in remaining:  # the evaluator's second pass: a golden item no remaining answer names
        hit = next((k for k, a in enumerate(left) if a in g), None)
        if hit is None:
            fn += 1
        else:
            left.pop(hit)
    p = tp / (tp + fp)
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, 2 * p * r / (p + r) if p and r else 0.0


@dataclass
class QaScores:
    factoid_strict: float = 0.0
    factoid_lenient: float = 0.0
    factoid_mrr: float = 0.0
    list_precision: float = 0.0
    list_recall: float = 0.0
    list_f1: float = 0.0
    yesno_acc: float = 0.0
    yesno_f1_yes: float = 0.0
    yesno_f1_no: float = 0.0
    yesno_macro_f1: float = 0.0
    counts: dict = field(default_factory=dict)   # type -> questions, and how many were answered

    def result_line(self) -> str:
        keys = ("factoid_mrr", "factoid_strict", "factoid_lenient", "list_f1", "yesno_acc", "yesno_macro_f1")
        return "RESULT qa " + " ".join(f"{k}={getattr(self, k):.4f}" for k in keys)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def score_answers(questions: list[Question], answers: dict[str, object]) -> QaScores:
    """``answers``: question id -> exact answer (yes/no a string; factoid ranked items; list items),
    in BioASQ's submission shapes. Summary questions are not scored (their ideal answers are ROUGE's
    and people's)."""
    s = QaScores()
    by_type: dict[str, list[Question]] = {t: [q for q in questions if q.type == t] for t in TYPES}
    s.counts = {t: {"questions": len(qs), "answered": sum(q.id in answers for q in qs)} for t, qs in by_type.items() if qs}
    fact = [factoid_scores(q.exact, answers.get(q.id)) for q in by_type["factoid"]]
    s.factoid_strict, s.factoid_lenient, s.factoid_mrr = (_mean([x[i] for x in fact]) for i in range(3))
    lists = [list_scores(q.exact, answers.get(q.id)) for q in by_type["list"]]
    s.list_precision, s.list_recall, s.list_f1 = (_mean([x[i] for x in lists]) for i in range(3))
    yn = [(q.exact, yes_no(answers[q.id]) if isinstance(answers.get(q.id), str) else "none") for q in by_type["yesno"]]
    if yn:
        s.yesno_acc = _mean([float(g == p) for g, p in yn])

        wrong = sum(g != p for g, p in yn)

        def f1(label: str) -> float:
            # the evaluator's confusion matrix: a wrong answer on a question of this label is an FP, on
            # one of the other label an FN (an unanswered one included), so 2TP + FP + FN = 2TP + wrong
            tp = sum(g == label == p for g, p in yn)
            return 2 * tp / (2 * tp + wrong) if 2 * tp + wrong else 0.0

        s.yesno_f1_yes, s.yesno_f1_no = f1("yes"), f1("no")
        s.yesno_macro_f1 = (s.yesno_f1_yes + s.yesno_f1_no) / 2
    return s


def read_submission(path: str | Path) -> dict[str, object]:
    """A BioASQ phase B submission (``{"questions": [{"id", "exact_answer"}, ...]}``) as id -> answer."""
    return {q["id"]: q.get("exact_answer") for q in _questions(path, "a BioASQ submission")
            if isinstance(q, dict) and "id" in q}
