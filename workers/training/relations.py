"""Relation classifier training: a BERT-family encoder with a sequence-classification head over
sentences whose two entities are masked or marked, as BioBERT fine-tunes on GAD, EU-ADR and ChemProt,
and over document-level concept-pair candidates (BC5CDR CID, BioRED; see
``workers.inference.relations.concept_pair_candidates``).

The corpora come with their markers (GAD: ``@GENE$`` / ``@DISEASE$`` masks; EU-ADR:
``[E1]@GENE$[/E1] ... [E2]@DISEASE$[/E2]``; ChemProt (SciBERT form): ``<< chemical >>``,
``[[ protein ]]``); the tokenizer reads them as ordinary text, the way BioBERT's run_re does. Scores
follow the paper (``workers.training.evaluate.score_relations``); gold document-level relations
without a candidate count as false negatives.

Protocol defaults (configs/models/gad.yaml): max length 128, batch 32, lr 5e-5, 3 epochs, linear
decay; dev-free corpora (GAD, EU-ADR folds) train for the fixed number of epochs, as in the paper.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from pipeline.errors import ConfigError
from workers.inference.relations import RelationClassifier
from workers.training.artifacts import round_to_half, write_artifact
from workers.training.corpora import (DOC_RE_CORPORA, DOC_RE_NEGATIVE, RelationExample, doc_relation_split, euadr_fold,
                                      read_chemprot, read_gad, related_type_pairs)
from workers.training.evaluate import score_relations
from workers.training.loop import (MINILM, Hyperparams, base_model_label, clear_checkpoint, fit, length_batches,
                                   load_base_model, load_base_tokenizer, prepare)

# dataset -> (train loader, test loader, negative label); a loader takes the fold
RE_DATASETS = {
    "gad": (lambda fold: read_gad("gad/biobert_fold1/train.tsv"), lambda fold: read_gad("gad/biobert_fold1/test.tsv"), "0"),
    "euadr": (lambda fold: euadr_fold(fold, "train"), lambda fold: euadr_fold(fold, "test"), "0"),
    "chemprot": (lambda fold: read_chemprot("chemprot/scibert_jsonl/train.jsonl"),
                 lambda fold: read_chemprot("chemprot/scibert_jsonl/test.jsonl"), None),
}
RE_NAMES = (*RE_DATASETS, *DOC_RE_CORPORA)


@dataclass(frozen=True)
class ReTrainConfig(Hyperparams):
    name: str = "gad-minilm-re"
    task: str = "re"
    base_model: str = MINILM
    dataset: str = "gad"
    fold: int = 0                      # EU-ADR: 0-9
    window: int = 2                    # document-level corpora: a candidate pair's mentions at most this many sentences apart - 1
    negative_ratio: float = 1.0        # document-level corpora: the share of negative candidates kept for training
    limit_examples: int = 0            # >0: the first n training examples (smoke runs)
    score_test: bool = True            # score the test split after training (the papers' protocol); false: leave
                                       # it to `pubmine evaluate` (make demo saves the minute and a half)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.task != "re":
            raise ConfigError(f"task {self.task!r} is not a relation task (expected 're')")
        if self.dataset not in RE_NAMES:
            raise ConfigError(f"dataset {self.dataset!r} unknown; choose one of {', '.join(RE_NAMES)}")
        if self.window < 1 or not 0 < self.negative_ratio <= 1:
            raise ConfigError("window must be >= 1 and negative_ratio in (0, 1]")


def load_split(dataset: str, split: str, fold: int = 0, window: int = 2) -> tuple[list[RelationExample], int]:
    """A split's examples and the number of gold relations that have none (document-level corpora)."""
    if dataset in DOC_RE_CORPORA:
        s = doc_relation_split(dataset, split, window)
        return s.examples, len(s.missed)
    train, test, _ = RE_DATASETS[dataset]
    return (train if split == "train" else test)(fold), 0


def negative_label(dataset: str) -> str | None:
    return DOC_RE_NEGATIVE if dataset in DOC_RE_CORPORA else RE_DATASETS[dataset][2]


def train_relation(cfg: ReTrainConfig, output: str, *, storage_options: dict | None = None,
                   progress: bool | str = True, log=print) -> dict:
    """Fine-tune, score on the test split (the paper's protocol: no dev set for GAD/EU-ADR), write the
    artifact; returns its manifest."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    device = prepare(cfg)
    negative = negative_label(cfg.dataset)
    train, _ = load_split(cfg.dataset, "train", cfg.fold, cfg.window)
    if cfg.negative_ratio < 1:
        keep = random.Random(cfg.seed)
        train = [x for x in train if x.label != negative or keep.random() < cfg.negative_ratio]
    if cfg.limit_examples:
        train = train[: cfg.limit_examples]
    test, missed = load_split(cfg.dataset, "test", cfg.fold, cfg.window) if cfg.score_test else ([], 0)
    labels = sorted({x.label for x in train} | {x.label for x in test})
    label2id = {l: i for i, l in enumerate(labels)}
    tokenizer = load_base_tokenizer(cfg.base_model)
    model = load_base_model(cfg.base_model, "AutoModelForSequenceClassification", num_labels=len(labels),
                            id2label=dict(enumerate(labels)), label2id=label2id, ignore_mismatched_sizes=True).to(device)
    enc = [tokenizer(x.text, truncation=True, max_length=cfg.max_length)["input_ids"] for x in train]
    y = [label2id[x.label] for x in train]
    pad = tokenizer.pad_token_id or 0

    def batch_loss(batch):
        width = max(len(enc[j]) for j in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, j in enumerate(batch):
            ids[r, : len(enc[j])] = torch.tensor(enc[j])
            mask[r, : len(enc[j])] = 1
        return model(input_ids=ids.to(device), attention_mask=mask.to(device),
                     labels=torch.tensor([y[j] for j in batch], device=device)).loss

    state = fit(model, cfg, name=cfg.name, device=device, steps_per_epoch=math.ceil(len(enc) / cfg.batch_size),
                # document windows vary 20-256 pieces: length-bucketed batches
                make_batches=lambda rng: length_batches([len(x) for x in enc], cfg.batch_size, rng),
                batch_loss=batch_loss, progress=progress, log=log)
    model.to("cpu")
    round_to_half(model)  # the test score below is of the weights stored
    metrics = {}
    if cfg.score_test:
        clf = RelationClassifier(tokenizer, model, {}, cfg.max_length)
        s = score_relations([x.label for x in test], clf.predict([x.text for x in test]), negative, missed)
        log(f"test P {s.precision:.4f} R {s.recall:.4f} F1 {s.f1:.4f} ({s.n} examples"
            + (f", {missed} gold relations without a candidate" if missed else "") + ")")
        metrics["test"] = {"precision": s.precision, "recall": s.recall, "f1": s.f1, "n": s.n}
    meta = {
        "task": "re", "labels": labels, "negative_label": negative, "dataset": cfg.dataset,
        "type_pairs": ([list(p) for p in (DOC_RE_CORPORA[cfg.dataset][3] or related_type_pairs(cfg.dataset))]
                       if cfg.dataset in DOC_RE_CORPORA else None),
        "base_model": base_model_label(cfg.base_model),
        "training": {**cfg.__dict__, "train_examples": len(train), "device": device, "seconds": state["seconds"]},
        "metrics": {**metrics, "history": state["history"]},
    }
    manifest = write_artifact(model, tokenizer, output, cfg.name, meta, storage_options, half=True)
    clear_checkpoint(cfg.name)
    return manifest
