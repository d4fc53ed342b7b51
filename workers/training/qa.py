"""Question-answering reader training (``task: qa``): BioBERT's protocol on the data we have.

Three stages through the one loop (``fit``), each resumable:
1. general: extractive SQuAD v1.1 questions (its dev file is the SQuAD data here; we never score
   on SQuAD), as BioBERT fine-tunes on SQuAD first;
2. biomedical: BioASQ 7b factoid training snippets (span head), mixed with yes/no/maybe decisions
   (decision head): PubMedQA PQA-L's 500 non-test questions, the full-abstract BioASQ yes/no
   questions, and the yes/no questions of the 4B-6B golden batches with their snippets (the
   contexts BioASQ's test gives), minus any question of a 7B golden batch (the 7b test: checked
   by id and by text, not assumed).
   BioASQ's 7b yes/no *test* (in the bio_electra files) is never read.
3. decisions: the decision examples alone (with the encoder), each weighted inverse to its label's
   frequency within its own source (``decision_weighting``), every window of a long context a share
   of its example (``decision_windows``: the reader averages the windows when it answers).

Windows are ``max_length`` pieces sliding by ``stride``; a window that does not hold the whole
answer is taught to point at [CLS] (no answer here), as in BioBERT's run_factoid. Scores after
training (``score_test``): the official 7B golden batches by BioASQ's rules and PubMedQA's test split.
"""

from __future__ import annotations

import gzip
import json
import math
import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from pipeline.bioasq import QaScores, Question, read_golden, score_answers
from pipeline.errors import ConfigError, PubmineError
from workers.inference.artifacts import HEADS
from workers.inference.qa import DECISIONS, QaModel, QaReader, encode_pairs
from workers.training.artifacts import round_to_half, write_artifact
from workers.training.corpora import data_file
from workers.training.loop import (MINILM, Hyperparams, base_model_label, clear_checkpoint, fit, length_batches,
                                   load_base_model, load_base_tokenizer, prepare)

SQUAD = "qa/squad_v1.1/dev-v1.1.json"
BIOASQ_FACTOID = "qa/bioasq_biobert/train/BioASQ-train-factoid-7b.json"
BIOASQ_YESNO = ("qa/bioasq_fullabstract_derived/BioASQ-val-yesno.json", "qa/bioasq_fullabstract_derived/BioASQ-test-yesno.json")
PUBMEDQA = "qa/pubmedqa/ori_pqal.json"
PUBMEDQA_TEST = "qa/pubmedqa/test_ground_truth.json"
GOLDEN_7B = tuple(f"qa/bioasq_golden_7b/Task7BGoldenEnriched/7B{b}_golden.json" for b in range(1, 6))
# the earlier years' golden batches: questions a 7b model may learn from (BioASQ's 7b training set holds them)
GOLDEN_EARLIER = tuple(f"qa/bioasq_biobert/golden/{y}B{b}_golden.json" for y in (4, 5, 6) for b in range(1, 6))


@dataclass(frozen=True)
class SpanExample:
    question: str
    context: str
    start: int          # the answer's character offsets in the context
    end: int


@dataclass(frozen=True)
class DecisionExample:
    question: str
    context: str
    label: str          # yes | no | maybe
    source: str = ""    # where it comes from: a question is one question within its source


# how the decision examples' cross-entropy is weighted: inverse to each label's frequency within the
# example's own source (PubMedQA, BioASQ abstracts, BioASQ snippets), or pooled over all of them
DECISION_WEIGHTINGS = ("source", "pooled")


@dataclass(frozen=True)
class QaTrainConfig(Hyperparams):
    name: str = "bioasq-minilm-qa"
    task: str = "qa"
    base_model: str = MINILM
    max_length: int = 384
    stride: int = 128
    batch_size: int = 16
    learning_rate: float = 5e-5
    epochs: int = 2                    # the biomedical stage
    general_epochs: int = 1            # the SQuAD stage (0: none)
    general_limit: int = 0             # >0: the first n SQuAD questions
    decisions: bool = True             # train the yes/no/maybe head too
    decision_epochs: int = 3           # then the decision head alone (with the encoder) this many epochs
    limit_examples: int = 0            # >0: the first n examples of each source (smoke runs)
    max_answer_pieces: int = 30
    n_best: int = 20
    list_threshold: float = 0.3        # a list answer: the merged spans at least this probable
    decision_dev: int = 5              # every n-th decision question held out to choose the decision bias (0: none)
    yes_no_snippets: bool = True       # also the 4B-6B golden yes/no questions, one example per snippet
    decision_weighting: str = "pooled"  # class weights inverse to frequency over all decision examples, or within each "source"
    decision_windows: str = "first"    # train on a context's first window, or on "all" (as the reader averages them)
    score_test: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.task != "qa":
            raise ConfigError(f"task {self.task!r} is not the question-answering task (expected 'qa')")
        if not 0 <= self.stride < self.max_length // 2 or self.general_epochs < 0 or not 0 < self.list_threshold < 1:
            raise ConfigError("stride must be in [0, max_length / 2), general_epochs >= 0, list_threshold in (0, 1)")
        if self.decision_weighting not in DECISION_WEIGHTINGS:
            raise ConfigError(f"decision_weighting {self.decision_weighting!r} is not one of {DECISION_WEIGHTINGS}")
        if self.decision_windows not in ("all", "first"):
            raise ConfigError(f"decision_windows {self.decision_windows!r} is not 'all' or 'first'")
        if self.decision_dev == 1 or self.decision_dev < 0:
            raise ConfigError(f"decision_dev holds out every n-th decision question: n >= 2, or 0 for none "
                              f"(got {self.decision_dev})")


def _json(rel: str):
    path = data_file(rel)
    if not path.exists():
        raise PubmineError(f"QA data file {path} not found (see ../shared/data/qa/PROVENANCE.md)")
    with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")) as f:
        return json.load(f)


def read_squad_spans(rel: str, exclude: set[str] = frozenset()) -> list[SpanExample]:
    """Every question of a SQuAD-format file with its first answer, offsets checked against the text;
    none whose question id (BioASQ's: before the ``_``) is in ``exclude``."""
    out = []
    for article in _json(rel)["data"]:
        for para in article["paragraphs"]:
            ctx = para["context"]
            for qa in para["qas"]:
                answers = qa.get("answers")
                if not isinstance(answers, list) or not answers or str(qa.get("id", "")).split("_")[0] in exclude:
                    continue
                a = answers[0]
                start, text = int(a["answer_start"]), a["text"]
                if ctx[start:start + len(text)] != text:
                    continue  # an offset that does not point at its text is not taught
                out.append(SpanExample(qa["question"], ctx, start, start + len(text)))
    return out


def golden_7b_ids() -> set[str]:
    return {q.id for q in read_golden([data_file(g) for g in GOLDEN_7B])}


def golden_7b_bodies() -> set[str]:
    return {_question_key(q.body) for q in read_golden([data_file(g) for g in GOLDEN_7B])}


def _question_key(text: str) -> str:
    return " ".join(text.lower().split())


def bioasq_golden_yes_no(exclude_ids: set[str], exclude_bodies: set[str]) -> list[DecisionExample]:
    """The yes/no questions of the 4B-6B golden batches, one example per non-empty snippet labelled
    with its question's answer (as BioBERT's yes/no training data is): the short evidence passages
    BioASQ's test gives, where the full-abstract questions give whole abstracts. None whose id or
    text (lowercased, spaces folded) is a question of ``exclude_*``."""
    out = []
    for q in read_golden([data_file(g) for g in GOLDEN_EARLIER]):
        if q.type != "yesno" or q.exact not in ("yes", "no") or q.id in exclude_ids or _question_key(q.body) in exclude_bodies:
            continue
        out += [DecisionExample(q.body, s.text, q.exact, "bioasq_snippets") for s in q.snippets if s.text.strip()]
    return out


def pubmedqa_split(split: str) -> list[DecisionExample]:
    """PubMedQA PQA-L: the official 500-question test split, or the other 500 (train)."""
    data, test = _json(PUBMEDQA), set(_json(PUBMEDQA_TEST))
    keep = (lambda pmid: pmid in test) if split == "test" else (lambda pmid: pmid not in test)
    return [DecisionExample(r["QUESTION"], " ".join(r["CONTEXTS"]), r["final_decision"], "pubmedqa")
            for pmid, r in sorted(data.items()) if keep(pmid)]


def bioasq_yes_no(exclude: set[str]) -> list[DecisionExample]:
    """The full-abstract BioASQ yes/no instances, a question seen in both of its files once, none
    of ``exclude`` (question ids)."""
    seen, out = set(), []
    for rel in BIOASQ_YESNO:
        for article in _json(rel)["data"]:
            for para in article["paragraphs"]:
                for qa in para["qas"]:
                    qid = qa["id"].split("_")[0]
                    key = (qa["id"], para["context"][:200])
                    if qid in exclude or key in seen or qa.get("answers") not in ("yes", "no"):
                        continue
                    seen.add(key)
                    out.append(DecisionExample(qa["question"], para["context"], qa["answers"], "bioasq_abstracts"))
    return out


def span_features(tokenizer, examples: list[SpanExample], max_length: int, stride: int):
    """Windows of each example with their target pieces (0, 0: the answer is not whole in it)."""
    enc = encode_pairs(tokenizer, [x.question for x in examples], [x.context for x in examples], max_length, stride)
    feats = []
    for k, ids in enumerate(enc["input_ids"]):
        x = examples[enc["overflow_to_sample_mapping"][k]]
        seq, offsets = enc.sequence_ids(k), enc["offset_mapping"][k]
        inside = [i for i, s in enumerate(seq) if s == 1]
        s = next((i for i in inside if offsets[i][0] <= x.start < offsets[i][1] or offsets[i][0] >= x.start), None)
        e = next((i for i in reversed(inside) if offsets[i][0] < x.end), None)
        ok = (s is not None and e is not None and s <= e and offsets[inside[0]][0] <= x.start
              and offsets[inside[-1]][1] >= x.end)
        feats.append((ids, enc["token_type_ids"][k] if "token_type_ids" in enc else None, s if ok else 0, e if ok else 0))
    return feats


def decision_features(tokenizer, examples: list[DecisionExample], max_length: int, stride: int = 0,
                      windows: str = "first"):
    """(pieces, types, label, source, share) per window. ``first``: the context's first ``max_length``
    pieces, share 1. ``all``: every window ``encode_pairs`` makes (the reader's own windows, which it
    averages at answer time), each a ``1 / windows`` share of its example, so that a long context
    weighs what a short one does. A quarter of PubMedQA's contexts and half of BioASQ's full
    abstracts run past 384 pieces, and their results and conclusions are at the end."""
    if windows == "first":
        enc = tokenizer([x.question for x in examples], [x.context for x in examples], truncation="only_second",
                        max_length=max_length)
        of = list(range(len(examples)))
    else:
        enc = encode_pairs(tokenizer, [x.question for x in examples], [x.context for x in examples], max_length, stride)
        of = enc["overflow_to_sample_mapping"]
    n = [0] * len(examples)
    for j in of:
        n[j] += 1
    return [(ids, enc["token_type_ids"][k] if "token_type_ids" in enc else None, DECISIONS.index(examples[j].label),
             examples[j].source, 1 / n[j]) for k, (ids, j) in enumerate(zip(enc["input_ids"], of))]


def _collate(rows, pad: int, device: str):
    width = max(len(r[0]) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    types = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r[0])] = torch.tensor(r[0])
        if r[1] is not None:
            types[i, : len(r[1])] = torch.tensor(r[1])
        mask[i, : len(r[0])] = 1
    return ids.to(device), mask.to(device), types.to(device)


def _share(feature) -> float:
    """A decision window's share of its example (1 where features carry none)."""
    return feature[4] if len(feature) > 4 else 1.0


def balanced_weights(decisions: list) -> list[float]:
    """Cross-entropy weights of yes / no / maybe, inverse to their frequency among the decision
    examples (mean 1 over the labels present; 0 for an absent one). Unweighted, MiniLM's decision head
    learnt the majority answer: every 7B yes/no question answered "yes", PubMedQA below its majority class."""
    counts = [sum(_share(f) for f in decisions if f[2] == k) for k in range(len(DECISIONS))]
    present = [c for c in counts if c]
    return [sum(counts) / (len(present) * c) if c else 0.0 for c in counts]


def example_weights(decisions: list, weighting: str) -> list[float]:
    """Each decision example's cross-entropy weight. ``pooled``: ``balanced_weights`` over all the
    examples. ``source``: ``balanced_weights`` within the example's own source, so that each source's
    labels weigh the same within it and each source keeps its size. Pooled, the BioASQ yes/no
    questions (no "maybe") made PubMedQA's ~40 "maybe"s weigh 29.8 each against yes 0.42, and the
    reader sent PubMedQA answers to "maybe"; within PubMedQA alone "maybe" weighs about 3."""
    per = {k: balanced_weights(fs) for k, fs in _weight_groups(decisions, weighting).items()}
    return [per["all" if weighting == "pooled" else f[3]][f[2]] * _share(f) for f in decisions]


def _weight_groups(decisions: list, weighting: str) -> dict[str, list]:
    """The features whose labels are balanced together: all of them ("all"), or each source's."""
    groups: dict[str, list] = {}
    for f in decisions:
        groups.setdefault("all" if weighting == "pooled" else f[3], []).append(f)
    return groups


def weights_summary(decisions: list, weighting: str) -> str:
    """The class weights ``example_weights`` gives, per source (or pooled), for the training log."""
    return "; ".join(f"{src}: " + ", ".join(f"{d} {w:.2f}" for d, w in zip(DECISIONS, balanced_weights(fs)))
                     for src, fs in sorted(_weight_groups(decisions, weighting).items()))


def held_out(examples: list[DecisionExample], every: int) -> tuple[list[DecisionExample], list[DecisionExample]]:
    """(train, dev): every ``every``-th question by a hash of its text in dev (all of a question's
    contexts on one side), none when ``every`` is 0."""
    import hashlib

    if not every:
        return examples, []
    dev = lambda x: int(hashlib.sha256(x.question.encode()).hexdigest(), 16) % every == 0
    return [x for x in examples if not dev(x)], [x for x in examples if dev(x)]


def macro_f1(pred, gold, labels) -> float:
    """Mean over ``labels`` of each label's F1 (0 for a label never predicted right); labels as
    strings or as indices alike."""
    pred, gold, f1s = np.asarray(pred), np.asarray(gold), []
    for label in labels:
        tp = int(np.sum((pred == label) & (gold == label)))
        fp, fn = int(np.sum((pred == label) & (gold != label))), int(np.sum((pred != label) & (gold == label)))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / len(f1s)


# the decision biases tried for "no" and "maybe" (yes stays 0): -3 ... 3 in quarters
BIAS_GRID = tuple(i / 4 for i in range(-12, 13))
CV_HALVINGS = 20   # random halvings of the held-out questions that say whether choosing a bias pays


def _decide(z: np.ndarray, bias, keep: list[int]) -> np.ndarray:
    """Each row's decision (an index into DECISIONS) among ``keep``, logits ``z`` plus ``bias``."""
    return np.asarray(keep)[np.argmax(z[:, keep] + np.asarray(bias, np.float32)[keep], axis=1)]


def _choose(z: np.ndarray, gold: np.ndarray, candidates: list[tuple], score) -> tuple:
    """The candidate bias of the best scores (a tuple, compared in order, each rounded to 1e-6), ties
    to the smaller biases."""
    return max(candidates, key=lambda b: (*(round(v, 6) for v in score(z, gold, b)), -sum(abs(v) for v in b)))


def _cross_validated(z: np.ndarray, gold: np.ndarray, candidates: list[tuple], score) -> dict:
    """Whether choosing a bias on questions pays on others: over ``CV_HALVINGS`` random halvings, the
    score (``score``'s first) of the bias chosen on one half measured on the other (both ways),
    against no bias."""
    zero, chosen, none = (0.0, 0.0, 0.0), [], []
    for seed in range(CV_HALVINGS):
        order = np.random.default_rng(seed).permutation(len(gold))
        a, b = order[: len(order) // 2], order[len(order) // 2:]
        for fit_on, test_on in ((a, b), (b, a)):
            chosen.append(score(z[test_on], gold[test_on], _choose(z[fit_on], gold[fit_on], candidates, score))[0])
            none.append(score(z[test_on], gold[test_on], zero)[0])
    return {"chosen": round(float(np.mean(chosen)), 4), "none": round(float(np.mean(none)), 4)}


def fit_decision_bias(reader: QaReader, pubmedqa: list[DecisionExample], yes_no: list[DecisionExample]) -> dict:
    """Two logit biases, each chosen on held-out questions by the measure its task is scored by:
    - ``bias`` (yes 0, no, maybe) for yes/no/maybe decisions: PubMedQA's accuracy (its paper's
      measure, and the one it is held to), ties to the better macro F1;
    - ``bias_yes_no`` (yes 0, no, maybe unused) for yes/no decisions: BioASQ's macro F1 over yes and
      no, a question answered from all of its contexts within one source.
    A bias is kept only where choosing one pays on questions it was not chosen on: random halvings of
    the held-out questions (``_cross_validated``) score the bias chosen on one half on the other,
    against no bias; where that does not beat no bias, the bias is 0. Measured on the 2026-12-07
    default's held-out questions (`pubmine calibrate`), a 25 x 25 grid chosen on half of 109
    PubMedQA questions scored 56.83 on the other half against 57.80 without, and the yes/no bias
    68.68 against 69.70: it fitted the questions, not the head. Ties go to the smaller biases.
    Returns both biases, the dev scores without and with them, and the cross-validation that decided."""
    groups: dict[tuple[str, str], tuple[list[str], str]] = {}
    for x in yes_no:
        groups.setdefault((x.source, x.question), ([], x.label))[0].append(x.context)

    def table(rows):
        z = np.stack([reader.decision_logits(q, ctx).float().numpy() for q, ctx, _ in rows]) if rows else np.zeros((0, 3))
        return z.astype(np.float32), np.asarray([DECISIONS.index(g) for _, _, g in rows])

    zp, gp = table([(x.question, [x.context], x.label) for x in pubmedqa])
    zy, gy = table([(q, ctx, label) for (_, q), (ctx, label) in groups.items()])
    three, two = list(range(len(DECISIONS))), [DECISIONS.index("yes"), DECISIONS.index("no")]

    def pqa_scores(z, gold, bias):  # accuracy, then macro F1 for ties
        pred = _decide(z, bias, three)
        return float(np.mean(pred == gold)) if len(gold) else 0.0, macro_f1(pred, gold, three)

    yn_score = lambda z, gold, bias: (macro_f1(_decide(z, bias, two), gold, two),)
    zero = (0.0, 0.0, 0.0)
    grid3 = [(0.0, n, m) for n in BIAS_GRID for m in BIAS_GRID]
    grid2 = [(0.0, n, 0.0) for n in BIAS_GRID]
    cv, bias, bias_yes_no = {}, zero, zero
    if len(gp):
        cv["pubmedqa_acc"] = _cross_validated(zp, gp, grid3, pqa_scores)
        if cv["pubmedqa_acc"]["chosen"] > cv["pubmedqa_acc"]["none"]:
            bias = _choose(zp, gp, grid3, pqa_scores)
    if len(gy):
        cv["bioasq_yesno_macro_f1"] = _cross_validated(zy, gy, grid2, yn_score)
        if cv["bioasq_yesno_macro_f1"]["chosen"] > cv["bioasq_yesno_macro_f1"]["none"]:
            bias_yes_no = _choose(zy, gy, grid2, yn_score)

    def measured(b3, b2):
        out = {}
        if len(gp):
            out["pubmedqa_acc"], out["pubmedqa_macro_f1"] = (round(v, 4) for v in pqa_scores(zp, gp, b3))
        if len(gy):
            out["bioasq_yesno_macro_f1"] = round(yn_score(zy, gy, b2)[0], 4)
        return out

    return {"bias": list(bias), "bias_yes_no": list(bias_yes_no),
            "dev": {"questions": {"pubmedqa": len(gp), "bioasq_yesno": len(gy)}, "cross_validated": cv,
                    "without": measured(zero, zero), "with": measured(bias, bias_yes_no)}}


def decision_questions(decisions: bool, yes_no_snippets: bool, every: int, limit_examples: int = 0):
    """(PubMedQA train, PubMedQA held out, BioASQ yes/no train, BioASQ yes/no held out): the decision
    questions a reader trains on and the fifth (``every``) it chooses its biases on, none of a 7B
    golden batch."""
    if not decisions:
        return [], [], [], []
    limit = (lambda xs: xs[:limit_examples]) if limit_examples else (lambda xs: xs)
    exclude = golden_7b_ids()
    yes_no = bioasq_yes_no(exclude) + (bioasq_golden_yes_no(exclude, golden_7b_bodies()) if yes_no_snippets else [])
    return (*held_out(limit(pubmedqa_split("train")), every), *held_out(limit(yes_no), every))


def calibrate_qa_artifact(url: str, storage_options: dict | None = None, precision: str = "auto", log=print) -> dict:
    """``calibrate`` an existing reader in place: its decision biases chosen again by
    ``fit_decision_bias`` on the held-out decision questions of its own training config, written into
    its manifest with a model id that says so (``-cv``). Weights and heads are untouched."""
    from workers.inference.artifacts import content_hash, stage_artifact
    from workers.training.artifacts import rewrite_manifest

    folder = stage_artifact(url, storage_options)
    reader = QaReader.load(folder, precision=precision)
    manifest = dict(reader.manifest)
    t = manifest.get("training", {})
    every, held = t.get("decision_dev", 0), t.get("decision_held_out")
    if isinstance(every, dict):  # readers before 2026-12-07's third recorded the held-out counts under this name
        every, held = QaTrainConfig.decision_dev, every
    _, pqa_dev, _, yn_dev = decision_questions(t.get("decisions", False), t.get("yes_no_snippets", False),
                                               every, t.get("limit_examples", 0))
    if held is not None and held != {"pubmedqa": len(pqa_dev), "bioasq_yesno": len(yn_dev)}:
        raise PubmineError(f"{url}: held out {held} decision questions at training, and every {every}th gives "
                           f"{len(pqa_dev)} and {len(yn_dev)} now; the data or the split changed since: retrain it")
    if not (pqa_dev or yn_dev):
        raise PubmineError(f"{url}: trained without held-out decision questions (decision_dev 0 or no decisions); "
                           "nothing to choose its decision biases on")
    chosen = fit_decision_bias(reader, pqa_dev, yn_dev)
    log(f"decision bias (yes, no, maybe) {chosen['bias']}, yes/no {chosen['bias_yes_no']}: {chosen['dev']}")
    manifest["reader"] = {**manifest["reader"], "decision_bias": chosen["bias"], "decision_bias_yes_no": chosen["bias_yes_no"]}
    manifest["metrics"] = {**manifest.get("metrics", {}), "decision_dev": chosen["dev"]}
    manifest["model_id"] = f"{manifest['name']}-cv-{content_hash(folder)}"
    rewrite_manifest(url, folder, manifest, storage_options)
    return manifest


def _stage(model, cfg, name: str, epochs: int, spans: list, decisions: list, device: str, pad: int, progress, log):
    """One training stage over span windows and decision examples, batches of one kind each; the
    decisions weighted by ``example_weights`` (a weighted mean over each batch)."""
    rows = [("span", f) for f in spans] + [("decision", f) for f in decisions]
    weights = dict(zip(range(len(spans), len(rows)), example_weights(decisions, cfg.decision_weighting)))

    def make_batches(rng: random.Random):
        out = []
        for kind in ("span", "decision"):
            idx = [i for i, (k, _) in enumerate(rows) if k == kind]
            if idx:
                lengths = [len(rows[i][1][0]) for i in idx]
                out += [[idx[j] for j in b] for b in length_batches(lengths, cfg.batch_size, rng)]
        rng.shuffle(out)
        return out

    def batch_loss(batch):
        kind = rows[batch[0]][0]
        feats = [rows[i][1] for i in batch]
        ids, mask, types = _collate(feats, pad, device)
        start, end, decision = model(ids, mask, types)
        if kind == "span":
            s = torch.tensor([f[2] for f in feats], device=device)
            e = torch.tensor([f[3] for f in feats], device=device)
            start = start.masked_fill(mask == 0, -1e4)
            end = end.masked_fill(mask == 0, -1e4)
            return (torch.nn.functional.cross_entropy(start, s) + torch.nn.functional.cross_entropy(end, e)) / 2
        y = torch.tensor([f[2] for f in feats], device=device)
        w = torch.tensor([weights[i] for i in batch], device=device)
        loss = torch.nn.functional.cross_entropy(decision.float(), y, reduction="none")
        return (loss * w).sum() / w.sum().clamp_min(1e-8)

    steps = len(make_batches(random.Random(0)))
    return fit(model, replace(cfg, epochs=epochs), name=name, device=device, steps_per_epoch=steps,
               make_batches=make_batches, batch_loss=batch_loss, progress=progress, log=log)


def bioasq_answers(reader: QaReader, questions: list[Question]) -> dict[str, object]:
    """Each golden question answered from its own snippets, in BioASQ's submission shapes: factoid
    five ranked items, list the items above the reader's threshold, yes/no the decision."""
    out: dict[str, object] = {}
    for q in questions:
        contexts = [s.text for s in q.snippets if s.text.strip()]
        if not contexts or q.type == "summary":
            continue
        if q.type == "factoid":
            out[q.id] = [[a.text] for a in reader.factoid(q.body, contexts)]
        elif q.type == "list":
            out[q.id] = [[a.text] for a in reader.list_answer(q.body, contexts)]
        elif q.type == "yesno":
            out[q.id] = reader.decide(q.body, contexts, ("yes", "no"))[0]
    return out


def pubmedqa_scores(reader: QaReader, examples: list[DecisionExample]) -> dict[str, float]:
    """Accuracy and macro F1 over yes / no / maybe."""
    pred = [reader.decide(x.question, [x.context])[0] for x in examples]
    gold = [x.label for x in examples]
    acc = sum(p == g for p, g in zip(pred, gold)) / max(len(gold), 1)
    return {"acc": acc, "macro_f1": macro_f1(pred, gold, DECISIONS), "n": len(gold)}


def train_qa(cfg: QaTrainConfig, output: str, *, storage_options: dict | None = None,
             progress: bool | str = True, log=print) -> dict:
    from safetensors.torch import save_file
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    device = prepare(cfg)
    limit = (lambda xs: xs[: cfg.limit_examples]) if cfg.limit_examples else (lambda xs: xs)
    tokenizer = load_base_tokenizer(cfg.base_model)
    model = QaModel(load_base_model(cfg.base_model, "AutoModel")).to(device)
    pad = tokenizer.pad_token_id or 0
    held_out_ids = golden_7b_ids()
    factoid = read_squad_spans(BIOASQ_FACTOID, exclude=held_out_ids)  # none there (PROVENANCE.md); made sure
    pqa_train, pqa_dev, yn_train, yn_dev = decision_questions(cfg.decisions, cfg.yes_no_snippets, cfg.decision_dev,
                                                              cfg.limit_examples)
    decisions = pqa_train + yn_train
    counts = {"bioasq_factoid": len(factoid), "decision_questions": len(decisions),
              "decision_sources": {src: sum(x.source == src for x in decisions) for src in sorted({x.source for x in decisions})},
              "decision_held_out": {"pubmedqa": len(pqa_dev), "bioasq_yesno": len(yn_dev)}}
    history = {}
    if cfg.general_epochs:
        squad = read_squad_spans(SQUAD)
        squad = limit(squad[: cfg.general_limit] if cfg.general_limit else squad)
        counts["squad"] = len(squad)
        log(f"stage 1 (general): {len(squad):,} SQuAD questions")
        state = _stage(model, cfg, f"{cfg.name}-general", cfg.general_epochs,
                       span_features(tokenizer, squad, cfg.max_length, cfg.stride), [], device, pad, progress, log)
        history["general"] = state["history"]
    factoid = limit(factoid)
    log(f"stage 2 (biomedical): {len(factoid):,} BioASQ factoid snippets, {len(decisions):,} yes/no/maybe questions")
    feats = decision_features(tokenizer, decisions, cfg.max_length, cfg.stride, cfg.decision_windows)  # stages 2 and 3
    counts["decision_window_count"] = len(feats)   # not "decision_windows": that is the config's field
    state = _stage(model, cfg, f"{cfg.name}-bio", cfg.epochs,
                   span_features(tokenizer, factoid, cfg.max_length, cfg.stride), feats, device, pad, progress, log)
    history["bio"] = state["history"]
    if decisions and cfg.decision_epochs:
        log(f"stage 3 (decisions): {len(decisions):,} yes/no/maybe questions in {len(feats):,} windows, class weights {weights_summary(feats, cfg.decision_weighting)}")
        state = _stage(model, cfg, f"{cfg.name}-decisions", cfg.decision_epochs, [], feats, device, pad, progress, log)
        history["decisions"] = state["history"]
    model.to("cpu")
    round_to_half(model)
    reader_settings = {"max_length": cfg.max_length, "stride": cfg.stride, "max_answer_pieces": cfg.max_answer_pieces,
                       "n_best": cfg.n_best, "list_threshold": cfg.list_threshold}
    metrics = {}
    reader = QaReader(tokenizer, model, {"model_id": cfg.name, "reader": reader_settings}, precision=cfg.precision)
    if pqa_dev or yn_dev:
        chosen = fit_decision_bias(reader, pqa_dev, yn_dev)
        reader_settings["decision_bias"], reader_settings["decision_bias_yes_no"] = chosen["bias"], chosen["bias_yes_no"]
        reader.decision_bias, reader.decision_bias_yes_no = torch.tensor(chosen["bias"]), torch.tensor(chosen["bias_yes_no"])
        metrics["decision_dev"] = chosen["dev"]
        log(f"decision bias (yes, no, maybe) {chosen['bias']}, yes/no {chosen['bias_yes_no']}, chosen on held-out "
            f"questions {chosen['dev']}")
    if cfg.score_test:
        golden = read_golden([data_file(g) for g in GOLDEN_7B])
        s: QaScores = score_answers(golden, bioasq_answers(reader, golden))
        metrics["test_7b"] = {k: round(getattr(s, k), 4) for k in ("factoid_strict", "factoid_lenient", "factoid_mrr",
                                                                    "list_f1", "yesno_acc", "yesno_macro_f1")}
        metrics["test_pubmedqa"] = pubmedqa_scores(reader, pubmedqa_split("test"))
        log(f"7B golden: {s.result_line()}; PubMedQA test: {metrics['test_pubmedqa']}")
    meta = {
        "task": "qa", "decisions": list(DECISIONS), "reader": reader_settings, "base_model": base_model_label(cfg.base_model),
        "training": {**cfg.__dict__, **counts, "device": device, "seconds": state["seconds"], "precision": state["precision"]},
        "metrics": {**metrics, "history": history},
    }
    head_state = {k: v.half().contiguous() for k, v in model.head_state().items()}
    manifest = write_artifact(model.encoder, tokenizer, output, cfg.name, meta, storage_options, half=True,
                              extra=lambda stage: save_file(head_state, str(Path(stage) / HEADS)))
    for stage in ("general", "bio", "decisions"):
        clear_checkpoint(f"{cfg.name}-{stage}")
    return manifest
