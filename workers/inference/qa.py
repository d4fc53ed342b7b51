"""Extractive question answering in BioBERT's protocol, and yes/no/maybe decisions, from one encoder.

A ``qa`` artifact is a BERT-family encoder plus two small heads (``heads.safetensors``):
- ``span``: a start and an end logit per word piece of the context (BioBERT's SQuAD head). The
  question and a context (a snippet, a sentence, an abstract) are encoded as one pair, contexts
  longer than the window in overlapping windows; an answer is a piece span of at most
  ``max_answer_pieces`` inside the context, scored start + end logit. Each context's n best spans
  get probabilities by a softmax over that n-best (BioBERT's ``nbest_predictions``); the answers of
  all of a question's contexts are then merged case-insensitively, each keeping its best
  probability, and ranked: the first five are a factoid answer, those above ``list_threshold`` (at
  least one) a list answer.
- ``decision``: yes / no / maybe from the pair's [CLS] state; a question's logits are averaged over
  its contexts (BioBERT's yes/no: snippet logits averaged per question). BioASQ asks yes or no, so
  there the larger of those two wins; PubMedQA asks all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.errors import ModelError
from workers.inference.artifacts import HEADS, load_artifact
from workers.inference.device import autocast, pick_device, resolve_precision

DECISIONS = ("yes", "no", "maybe")


@dataclass(frozen=True)
class SpanAnswer:
    text: str
    probability: float   # within its context's n-best (the best over contexts once merged)
    context: int         # which of the question's contexts it comes from
    start: int           # character offsets in that context
    end: int


class QaModel(torch.nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.span = torch.nn.Linear(hidden, 2)
        self.decision = torch.nn.Linear(hidden, len(DECISIONS))

    def forward(self, ids, mask, type_ids=None):
        h = self.encoder(input_ids=ids, attention_mask=mask, token_type_ids=type_ids).last_hidden_state
        start, end = self.span(h).float().unbind(-1)
        return start, end, self.decision(h[:, 0]).float()

    def head_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}


def encode_pairs(tokenizer, questions: list[str], contexts: list[str], max_length: int, stride: int):
    """Question/context pairs as windows (``overflow_to_sample_mapping`` says whose), with each
    piece's character offsets and which sequence it belongs to (1: the context)."""
    return tokenizer(questions, contexts, truncation="only_second", max_length=max_length, stride=stride,
                     return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)


def best_spans(start: list[float], end: list[float], context_mask: list[bool], n_best: int,
               max_answer_pieces: int) -> list[tuple[float, int, int]]:
    """The ``n_best`` (score, first piece, last piece) spans inside the context: the top-20 starts and
    ends paired, end at or after start, at most ``max_answer_pieces`` long."""
    idx = [i for i, c in enumerate(context_mask) if c]
    if not idx:
        return []
    top_s = sorted(idx, key=lambda i: -start[i])[:20]
    top_e = sorted(idx, key=lambda i: -end[i])[:20]
    spans = [(start[s] + end[e], s, e) for s in top_s for e in top_e if s <= e < s + max_answer_pieces]
    return sorted(spans, reverse=True)[:n_best]


def merge_answers(answers: list[SpanAnswer]) -> list[SpanAnswer]:
    """One answer per lowercased text (stripped), the most probable occurrence kept, best first."""
    best: dict[str, SpanAnswer] = {}
    for a in answers:
        key = a.text.strip().lower()
        if key and (key not in best or a.probability > best[key].probability):
            best[key] = a
    return sorted(best.values(), key=lambda a: (-a.probability, a.text.lower()))


class QaReader:
    """A loaded ``qa`` artifact: a question and its contexts in; ranked spans, or a decision, out."""

    def __init__(self, tokenizer, model: QaModel, manifest: dict, device: str = "cpu", precision: str = "fp32",
                 batch_size: int = 16):
        self.tokenizer, self.model, self.manifest = tokenizer, model.eval(), manifest
        self.device, self.batch_size = device, batch_size
        self.autocast = resolve_precision(precision, device)
        settings = manifest.get("reader", {})
        self.max_length = settings.get("max_length", 384)
        self.stride = settings.get("stride", 128)
        self.max_answer_pieces = settings.get("max_answer_pieces", 30)
        self.n_best = settings.get("n_best", 20)
        self.list_threshold = settings.get("list_threshold", 0.3)
        # added to a question's mean decision logits (yes, no, maybe): chosen at training on held-out
        # decision questions (workers.training.qa.fit_decision_bias), one for yes/no/maybe decisions and
        # one for yes/no (readers before 2026-12-07's second had one for both; none, older ones)
        self.decision_bias = torch.tensor(settings.get("decision_bias") or [0.0] * len(DECISIONS))
        self.decision_bias_yes_no = torch.tensor(settings.get("decision_bias_yes_no") or self.decision_bias.tolist())

    @classmethod
    def load(cls, folder, device: str | None = None, precision: str = "fp32") -> "QaReader":
        from safetensors.torch import load_file

        device = pick_device(device)
        tokenizer, encoder, manifest = load_artifact(folder, "qa", device)
        model = QaModel(encoder)
        state = {k: v.float() for k, v in load_file(str(Path(folder) / HEADS)).items()}
        result = model.load_state_dict(state, strict=False)
        unexpected = [k for k in result.missing_keys if not k.startswith("encoder.")] + list(result.unexpected_keys)
        if unexpected:
            raise ModelError(f"{folder}: {HEADS} does not fit this reader ({', '.join(unexpected[:3])}); "
                             "retrain it or upgrade pubmine")
        return cls(tokenizer, model.to(device), manifest, device, precision)

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    def _run(self, question: str, contexts: list[str]):
        """Per window: (context index, start logits, end logits, decision logits, offsets, context mask)."""
        enc = encode_pairs(self.tokenizer, [question] * len(contexts), contexts, self.max_length, self.stride)
        order = sorted(range(len(enc["input_ids"])), key=lambda k: len(enc["input_ids"][k]))
        pad = self.tokenizer.pad_token_id or 0
        out = [None] * len(order)
        with torch.inference_mode(), autocast(self.device, self.autocast):
            for b in range(0, len(order), self.batch_size):
                part = order[b:b + self.batch_size]
                width = max(len(enc["input_ids"][k]) for k in part)
                ids = torch.full((len(part), width), pad, dtype=torch.long)
                types = torch.zeros((len(part), width), dtype=torch.long)
                mask = torch.zeros((len(part), width), dtype=torch.long)
                for r, k in enumerate(part):
                    n = len(enc["input_ids"][k])
                    ids[r, :n] = torch.tensor(enc["input_ids"][k])
                    if "token_type_ids" in enc:
                        types[r, :n] = torch.tensor(enc["token_type_ids"][k])
                    mask[r, :n] = 1
                start, end, decision = self.model(ids.to(self.device), mask.to(self.device), types.to(self.device))
                for r, k in enumerate(part):
                    n = len(enc["input_ids"][k])
                    seq = enc.sequence_ids(k)
                    out[k] = (enc["overflow_to_sample_mapping"][k], start[r, :n].tolist(), end[r, :n].tolist(),
                              decision[r].cpu(), enc["offset_mapping"][k], [s == 1 for s in seq])
        return out

    def answer(self, question: str, contexts: list[str]) -> list[SpanAnswer]:
        """Every context's n-best spans, merged case-insensitively over the contexts, best first."""
        found: list[SpanAnswer] = []
        for ctx, start, end, _, offsets, in_context in self._run(question, contexts):
            spans = best_spans(start, end, in_context, self.n_best, self.max_answer_pieces)
            if not spans:
                continue
            probs = torch.softmax(torch.tensor([s for s, _, _ in spans]), 0).tolist()
            text = contexts[ctx]
            for p, (_, s, e) in zip(probs, spans):
                a, b = offsets[s][0], offsets[e][1]
                found.append(SpanAnswer(text[a:b], p, ctx, a, b))
        return merge_answers(found)

    def factoid(self, question: str, contexts: list[str], k: int = 5) -> list[SpanAnswer]:
        return self.answer(question, contexts)[:k]

    def list_answer(self, question: str, contexts: list[str], limit: int = 100) -> list[SpanAnswer]:
        ranked = self.answer(question, contexts)
        return ([a for a in ranked if a.probability >= self.list_threshold] or ranked[:1])[:limit]

    def decide(self, question: str, contexts: list[str], labels: tuple[str, ...] = DECISIONS) -> tuple[str, dict]:
        """The decision among ``labels`` (a subset of yes/no/maybe) from the contexts' mean logits, with
        the probability of each."""
        label, scores, _ = self.decide_each(question, contexts, labels)
        return label, scores

    def decide_each(self, question: str, contexts: list[str],
                    labels: tuple[str, ...] = DECISIONS) -> tuple[str, dict, list[dict]]:
        """``decide``'s answer and probabilities, and each context's own probabilities (from the same
        encoder pass), for showing which contexts support which side."""
        bias = self.decision_bias if "maybe" in labels else self.decision_bias_yes_no
        means = {ctx: v + bias for ctx, v in self._context_logits(question, contexts).items()}
        keep = [DECISIONS.index(l) for l in labels]
        probs = lambda logits: dict(zip(labels, torch.softmax(logits[keep], 0).tolist()))
        scores = probs(torch.stack(list(means.values())).mean(0))
        each = [probs(means[c]) if c in means else dict.fromkeys(labels, 0.0) for c in range(len(contexts))]
        return max(scores, key=scores.get), scores, each

    def decision_logits(self, question: str, contexts: list[str]) -> torch.Tensor:
        """A question's decision logits (yes, no, maybe) averaged over its contexts as ``decide``
        averages them, before the decision bias."""
        return torch.stack(list(self._context_logits(question, contexts).values())).mean(0)

    def _context_logits(self, question: str, contexts: list[str]) -> dict[int, torch.Tensor]:
        """Each non-empty context's decision logits, its windows averaged (then each context weighs
        the same in a question's mean)."""
        runs = self._run(question, contexts)
        if not runs:
            raise ModelError("a decision needs at least one non-empty context")
        per_context: dict[int, list[torch.Tensor]] = {}
        for ctx, _, _, logits, _, _ in runs:
            per_context.setdefault(ctx, []).append(logits)
        return {ctx: torch.stack(v).mean(0) for ctx, v in per_context.items()}
