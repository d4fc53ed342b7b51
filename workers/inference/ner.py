"""Token-classification NER over sentences, with character spans.

``NerTagger.tag(texts)`` returns, for each text, entity spans in that text's own character offsets.
How it runs:
- one fast-tokenizer call for the whole batch (offsets and word ids, no truncation);
- sentences longer than ``max_length`` word pieces are cut into overlapping windows; each token's
  prediction comes from the window where it sits farthest from a cut edge, so no text is dropped;
- windows are sorted by length and packed into batches under a token budget (dynamic padding);
- ``torch.inference_mode`` and bf16 autocast where the hardware has fast bf16.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.errors import ModelError
from workers.inference.artifacts import load_artifact
from workers.inference.decoding import (AIO, ALL_TASK, CALIBRATION, CASE_FEATURES, PER_TYPE, Span, calibrated,
                                       decode_bio, piece_shapes, task_tag_ids, word_spans)
from workers.inference.device import (INT8, autocast, ner_precision_name, pick_device, precision_name, quantize_int8,
                                      resolve_precision)


@dataclass
class _Window:
    sent: int
    start: int    # token range [start, end) within the sentence's word pieces
    end: int


class NerTagger:
    def __init__(self, tokenizer, model, manifest: dict, *, max_length: int = 256, stride: int = 64,
                 max_tokens_per_batch: int = 8192, precision: str = "auto", device: str = "cpu"):
        self.device = device
        self.tokenizer, self.model, self.manifest = tokenizer, model, manifest
        limit = getattr(self.model.config, "max_position_embeddings", 512)
        self.max_length = min(max_length, limit)
        self.max_tokens = max_tokens_per_batch
        self.int8 = ner_precision_name(precision, self.device, manifest) == INT8
        if self.int8:
            self.model = quantize_int8(self.model)
        self.autocast = resolve_precision(precision, self.device)
        self.id2label = {int(k): v for k, v in self.model.config.id2label.items()}
        self.model_id = self.manifest["model_id"]
        # "BIO": one softmax over O + B/I x types. "BIO-per-type": one O/B/I softmax per type over
        # the same encoder pass (types may overlap: "insulin" can be a chemical and a gene).
        # case features: each word's case shape as its token type (see decoding.CASE_FEATURES)
        self.case = self.manifest.get("case_features")
        if self.case not in (None, CASE_FEATURES):
            raise ModelError(f"model {self.model_id}: case_features {self.case!r} is not one this pubmine reads "
                             f"({CASE_FEATURES!r}); upgrade pubmine or retrain the model")
        # span scores as P(correct), per type, from the calibration fitted on dev at training (at
        # int8, the one fitted on the quantized encoder's scores where the model carries one)
        calibration = (self.int8 and self.manifest.get("calibration_int8")) or self.manifest.get("calibration") or {}
        if calibration and calibration.get("method") != CALIBRATION:
            raise ModelError(f"model {self.model_id}: calibration method {calibration.get('method')!r} is not one "
                             f"this pubmine reads ({CALIBRATION!r}); upgrade pubmine or retrain the model")
        self.calibration = calibration.get("params", {})
        # per type, the least calibrated score a span needs to be kept (chosen on dev for a stated
        # precision at training: calibration.accept); a type without one keeps every span
        self.accept = (calibration.get("accept") or {}).get("thresholds", {})
        # "AIO" (AIONER): every window is read under the ALL task's tags, [CLS] <ALL> window </ALL>
        # [SEP]; a task's own O ("O-Gene") is an O here
        aio = self.manifest.get("label_scheme") == AIO
        self.tag_open, self.tag_close = task_tag_ids(tokenizer, ALL_TASK) if aio else ([], [])
        self.extra = 2 + len(self.tag_open) + len(self.tag_close)  # pieces a window carries beside its own
        if self.max_length - self.extra < 2:
            raise ModelError(f"max_length {self.max_length} leaves no room for a sentence beside [CLS], [SEP] and "
                             f"the task tags ({self.extra} pieces): raise extract.max_length")
        # windows overlap by at most half their width, so each one moves on (as max_length // 2 - 1 did
        # when [CLS] and [SEP] were all a window carried)
        self.stride = min(stride, (self.max_length - self.extra) // 2)
        if aio:
            self.id2label = {i: "O" if label.startswith("O-") else label for i, label in self.id2label.items()}
        per_type = self.manifest.get("label_scheme") == PER_TYPE
        self.per_type = tuple(self.manifest.get("entity_types", ())) if per_type else ()
        if per_type and 3 * len(self.per_type) != len(self.id2label):
            raise ModelError(f"model {self.model_id}: label scheme {PER_TYPE} needs 3 outputs per entity type, but "
                             f"entity_types {list(self.per_type)} and the head's {len(self.id2label)} labels disagree; "
                             "retrain it or fix pubmine.json")

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str | None = None, **kwargs) -> "NerTagger":
        """A tagger for a local artifact folder (see workers.inference.artifacts.stage_artifact)."""
        device = pick_device(device)
        tokenizer, model, manifest = load_artifact(folder, "ner", device)
        return cls(tokenizer, model, manifest, device=device, **kwargs)

    @property
    def precision(self) -> str:
        return INT8 if self.int8 else precision_name(self.autocast)

    def _windows(self, n_tokens: list[int]) -> list[_Window]:
        width = self.max_length - self.extra  # room for [CLS], [SEP] and any task tags
        out: list[_Window] = []
        for i, n in enumerate(n_tokens):
            if n == 0:
                continue
            start = 0
            while True:
                end = min(start + width, n)
                out.append(_Window(i, start, end))
                if end == n:
                    break
                start = end - self.stride
        return out

    def _batches(self, windows: list[_Window]) -> list[list[_Window]]:
        order = sorted(windows, key=lambda w: w.end - w.start, reverse=True)
        batches: list[list[_Window]] = []
        cur: list[_Window] = []
        cur_len = 0
        for w in order:
            length = w.end - w.start + self.extra
            width = max(cur_len, length)
            if cur and width * (len(cur) + 1) > self.max_tokens:
                batches.append(cur)
                cur, width = [], length
            cur.append(w)
            cur_len = width
        if cur:
            batches.append(cur)
        return batches

    @torch.inference_mode()
    def _forward(self, ids: list[list[int]], windows: list[_Window],
                 shapes: list | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        pad_id = self.tokenizer.pad_token_id or 0
        width = max(w.end - w.start for w in windows) + self.extra
        first = 1 + len(self.tag_open)  # where the window's own pieces start
        input_ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(windows), width), dtype=torch.long)
        types = torch.zeros((len(windows), width), dtype=torch.long) if shapes is not None else None
        for r, w in enumerate(windows):
            seq = [cls_id, *self.tag_open, *ids[w.sent][w.start:w.end], *self.tag_close, sep_id]
            input_ids[r, : len(seq)] = torch.tensor(seq)
            mask[r, : len(seq)] = 1
            if types is not None:
                types[r, first : first + w.end - w.start] = torch.as_tensor(shapes[w.sent][w.start:w.end])
        extra = {"token_type_ids": types.to(self.device)} if types is not None else {}
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        with autocast(self.device, self.autocast):
            logits = self.model(input_ids=input_ids, attention_mask=mask, **extra).logits.float()
        if self.per_type:  # [batch, width, types, (O, B, I)]
            logits = logits.view(*logits.shape[:2], len(self.per_type), 3)
        best, label = torch.softmax(logits, dim=-1).max(dim=-1)
        best, label = best.cpu().numpy(), label.cpu().numpy()
        return [(label[r, first : first + w.end - w.start], best[r, first : first + w.end - w.start])
                for r, w in enumerate(windows)]

    def encode(self, texts: list[str]) -> "Encoded":
        return encode(self.tokenizer, texts, shapes=self.case is not None)

    def tag(self, texts: list[str]) -> list[list[Span]]:
        if not texts:
            return []
        return self.tag_encoded(self.encode(texts))

    def tag_encoded(self, enc: "Encoded") -> list[list[Span]]:
        """Entity spans of pre-tokenized texts (see ``encode``), in each text's character offsets."""
        ids = enc.ids
        n_tokens = [len(x) for x in ids]
        tail = (len(self.per_type),) if self.per_type else ()
        labels = [np.zeros((n, *tail), dtype=np.int64) for n in n_tokens]
        probs = [np.zeros((n, *tail), dtype=np.float32) for n in n_tokens]
        margin = [np.full(n, -1, dtype=np.int64) for n in n_tokens]  # distance to nearest cut edge
        if self.case and enc.shapes is None:
            raise ModelError(f"model {self.model_id} reads case features; encode the texts with shapes=True "
                             "(NerTagger.encode does)")
        shapes = enc.shapes if self.case else None
        for batch in self._batches(self._windows(n_tokens)):
            for w, (lab, pr) in zip(batch, self._forward(ids, batch, shapes)):
                n = n_tokens[w.sent]
                pos = np.arange(w.start, w.end)
                left = np.where(w.start == 0, n, pos - w.start)
                right = np.where(w.end == n, n, w.end - 1 - pos)
                m = np.minimum(left, right)
                better = m > margin[w.sent][w.start:w.end]
                labels[w.sent][w.start:w.end][better] = lab[better]
                probs[w.sent][w.start:w.end][better] = pr[better]
                margin[w.sent][w.start:w.end][better] = m[better]
        out: list[list[Span]] = []
        for i, (first, spans) in enumerate(zip(enc.word_first, enc.word_spans)):
            first = np.asarray(first, dtype=np.int64)
            if not self.per_type:
                word_labels = [self.id2label[int(t)] for t in labels[i][first]]
                out.append(decode_bio(word_labels, probs[i][first].tolist(), spans))
                continue
            found = []
            for k, typ in enumerate(self.per_type):
                names = ("O", f"B-{typ}", f"I-{typ}")
                found.extend(decode_bio([names[t] for t in labels[i][first, k]], probs[i][first, k].tolist(), spans))
            out.append(sorted(found, key=lambda sp: (sp.start, sp.end, sp.type)))
        if self.calibration:
            out = [[Span(sp.start, sp.end, sp.type, calibrated(sp.score, self.calibration.get(sp.type))) for sp in sent]
                   for sent in out]
        if self.accept:
            out = [[sp for sp in sent if sp.score >= self.accept.get(sp.type, 0.0)] for sent in out]
        return out


@dataclass
class Encoded:
    ids: list                  # word-piece ids per text (no [CLS]/[SEP])
    word_first: list           # per text: the index of each word's first piece
    word_spans: list           # per text: each word's (start, end) characters
    shapes: list | None = None  # per text, per piece: its word's case shape (models with case features)


def encode(tokenizer, texts: list[str], shapes: bool = False) -> Encoded:
    """Word pieces of every text and, per word, its first piece and character span. This is the CPU
    half of tagging: the pipeline runs it as its own stage (workers.inference.stages.Tokenize) so the model
    never waits on it."""
    if not texts:
        return Encoded([], [], [], [] if shapes else None)
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                    return_attention_mask=False)
    firsts, spans = [], []
    for i in range(len(texts)):
        first, sp = word_spans(enc.word_ids(i), enc["offset_mapping"][i])
        firsts.append(first)
        spans.append(sp)
    ids = enc["input_ids"]
    cases = [piece_shapes(t, f, sp, len(x)) for t, f, sp, x in zip(texts, firsts, spans, ids)] if shapes else None
    return Encoded(ids, firsts, spans, cases)
