"""Fine-tune a BERT-family encoder for NER (BIO token classification) and write an artifact.

Training examples are built the way the pipeline sees text: PubTator documents are laid out as
passages, split by pubmine's sentence splitter, tokenized by the model's fast tokenizer, and each
word (pre-tokenizer unit) gets B-/I-/O from the gold character spans; only a word's first piece
carries a label (the others are ignored by the loss), which is what the decoder reads back.

Protocol defaults follow BioBERT's NER fine-tuning (``Hyperparams``: lr 5e-5, batch 32, linear decay
with warmup, max length 128); the loop (``workers.training.loop.fit``) gives bf16 autocast where it is
fast, the GPU when present, a resumable checkpoint after each epoch and a progress bar; this module
adds dev-set model selection with early stopping.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pipeline.config import shared_data_dir
from pipeline.errors import ConfigError
from pipeline.parse.pubtator import read_pubtator
from workers.inference.decoding import (AIO, ALL_TASK, CALIBRATION, CASE_FEATURES, CASE_SHAPES, PER_TYPE, calibrated,
                                       piece_shapes, scheme_labels, task_tag_ids, word_spans)
from workers.inference.ner import NerTagger
from workers.inference.device import precision_name, resolve_precision
from workers.training.artifacts import round_to_half, write_artifact
from pipeline.parse.pubtator import doc_sentences
from pipeline.scores import score
from workers.training.corpora import IobSentence, read_iob
from workers.training.evaluate import iob_text, predict_documents, predict_iob, score_iob
from workers.training.loop import (MINILM, EpochEnd, Hyperparams, base_model_label, clear_checkpoint, fit,
                                   length_batches, load_base_model, load_base_tokenizer, prepare)


@dataclass(frozen=True)
class NerTrainConfig(Hyperparams):
    name: str = "bc5cdr-minilm-ner"
    task: str = "ner"
    base_model: str = MINILM           # "minilm", a local folder, or a hub name (dmis-lab/biobert-base-cased-v1.2)
    # training files; "path#Gene" marks a corpus that annotates only some of ``types`` (partial labels)
    train: tuple[str, ...] = ("bc5cdr/pubtator/CDR_TrainingSet.PubTator.txt.gz",)
    dev: tuple[str, ...] = ("bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt.gz",)
    types: tuple[str, ...] = ("Chemical", "Disease")
    # "BIO": one softmax over O + B/I x types (what HF's token-classification pipeline decodes);
    # "BIO-per-type": an O/B/I softmax per type over the same encoder pass, so types may overlap and a
    # corpus that does not annotate a type gives that type's head no loss at all (multi-task models);
    # "AIO": AIONER's all-in-one scheme, one softmax read under a task tag (<ALL> at inference)
    label_scheme: str = "BIO"
    patience: int = 2                  # epochs without dev improvement before stopping
    freeze_word_embeddings: bool = False  # skip the vocab x hidden matrix in backward and the optimizer
    limit_docs: int = 0                # >0: use only the first n training documents / IOB sentences (smoke runs)
    # each word's case shape as its token type id (decoding.CASE_FEATURES): what an uncased encoder
    # cannot see ("BRCA1" vs "brca1"); needs an encoder with token-type embeddings (the BERT family)
    case_features: bool = False
    # the share of training sentences without any mention (of the types their corpus annotates) that
    # is kept, drawn with the seed: on a short budget, more of the updates go to sentences with names
    empty_sentence_ratio: float = 1.0
    # type -> n: a training sentence with a mention of that type is seen n times per epoch; a rare type
    # (BioRED has 103 cell lines against 4,430 genes) otherwise leaves its head predicting O everywhere
    oversample: dict[str, int] = field(default_factory=dict)
    # the precision each type's accepted spans must reach on dev: the least calibrated span score
    # that gives it becomes the type's acceptance threshold (None: every decoded span is kept)
    accept_precision: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.task != "ner":
            raise ConfigError(f"task {self.task!r} is not an NER task (expected 'ner'; relations use task 're')")
        if not self.types:
            raise ConfigError("types must list at least one entity type")
        if not 0 < self.empty_sentence_ratio <= 1:
            raise ConfigError(f"empty_sentence_ratio must be in (0, 1] (got {self.empty_sentence_ratio})")
        bad = {t: n for t, n in self.oversample.items() if t not in self.types or not isinstance(n, int) or n < 1}
        if bad:
            raise ConfigError(f"oversample {bad} must map types of {list(self.types)} to whole numbers >= 1")
        if self.accept_precision is not None and not 0 < self.accept_precision < 1:
            raise ConfigError(f"accept_precision must be in (0, 1) or null (got {self.accept_precision})")
        if self.label_scheme not in ("BIO", PER_TYPE, AIO):
            raise ConfigError(f"label_scheme {self.label_scheme!r} is not 'BIO', {PER_TYPE!r} or {AIO!r}")


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


_RANGE = re.compile(r"@(\d*)-(\d*)$")  # not "a:b": YAML reads a value ending in ":" as a mapping


def split_range(path: str) -> tuple[str, slice]:
    """'biored/pubtator/Train.PubTator.gz@0-360' -> (path, documents 0-359; '@40-' from the 41st on,
    '@-40' the first 40): a corpus without its own dev split gives part of its training split to
    model selection; no '@a-b': all of it."""
    m = _RANGE.search(path)
    if not m:
        return path, slice(None)
    start, stop = (int(x) if x else None for x in m.groups())
    if start is not None and stop is not None and stop <= start:
        raise ConfigError(f"training source {path!r}: the document range {m.group(0)[1:]} is empty "
                          "(expected @first-stop with stop > first, either may be left out)")
    return path[: m.start()], slice(start, stop)


def load_sources(specs: tuple[str, ...], types: tuple[str, ...]) -> list[tuple[list, tuple[str, ...]]]:
    """Each training source's documents (PubTator) or sentences (MTL-style IOB .tsv) with the entity
    types that source annotates."""
    out = []
    for spec in specs:
        p, annotated = split_source(spec, types)
        p, part = split_range(p)
        path = _data_path(p)
        if not path.exists():
            raise ConfigError(f"training data {p} not found (looked at {path}); set PUBMINE_DATA or give a path")
        docs = read_iob(path) if _is_iob(p) else list(read_pubtator(path))
        if not docs[part]:
            raise ConfigError(f"training source {spec!r} has no documents in that range ({len(docs)} in the file)")
        out.append((docs[part], annotated))
    return out


def training_sentences(docs: list, types: tuple[str, ...]) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """(sentence text, [(start, end, type)] in that text) for PubTator documents (laid out and split as
    the pipeline does) or IOB sentences (tokens joined by spaces, the corpus's own sentences)."""
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


def oversampled(sentences: list[tuple[str, list[tuple[int, int, str]]]], times: dict[str, int],
                annotated: tuple[str, ...]) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """Each sentence repeated as often as the most oversampled type it mentions asks (once without)."""
    if not times:
        return sentences
    return [x for x in sentences
            for _ in range(max((times.get(t, 1) for *_, t in x[1] if t in annotated), default=1))]


def _tokenized(sentences: list[tuple[str, list[tuple[int, int, str]]]], tokenizer, max_length: int):
    """Per sentence: its word-piece ids, each word's first piece and character span, its mentions,
    and each piece's case shape (0 on [CLS]/[SEP])."""
    for text, mentions in sentences:
        enc = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=max_length)
        first, spans = word_spans(enc.word_ids(), enc["offset_mapping"])
        shapes = piece_shapes(text, first, spans, len(enc["input_ids"]))
        if enc["input_ids"] and enc["input_ids"][-1] == tokenizer.sep_token_id:
            shapes[-1] = 0
        yield enc["input_ids"], first, spans, mentions, shapes


def _word_tag(mentions: list[tuple[int, int, str]], start: int, end: int, opened: set[int],
              kind: str | None = None) -> tuple[str, str] | None:
    """("B" or "I", type) from the first mention (of ``kind``, if given) that the word [start, end)
    overlaps: B on the mention's first word (``opened`` remembers it), I after; None when it is O."""
    for mi, (ms, me, mt) in enumerate(mentions):
        if (kind is None or mt == kind) and ms < end and me > start:
            prefix = "I" if mi in opened else "B"
            opened.add(mi)
            return prefix, mt
    return None


def encode_examples(sentences: list[tuple[str, list[tuple[int, int, str]]]], tokenizer, label2id: dict[str, int],
                    max_length: int, unannotated: tuple[int, ...] = (),
                    outside: str = "O") -> list[tuple[list[int], list[int], tuple]]:
    """(input_ids, labels, unannotated label ids) per sentence; labels -100 on special tokens and
    non-first pieces; a word gets B-/I- of the first mention it overlaps, else ``outside`` (O; AIO's
    task O). ``unannotated``: the B-/I- labels of types this sentence's corpus does not annotate — its
    O words may be any of those (partial-label loss), so a corpus without genes never teaches "not a
    gene"."""
    examples = []
    for ids, first, spans, mentions, shapes in _tokenized(sentences, tokenizer, max_length):
        labels = [-100] * len(ids)
        opened: set[int] = set()
        for t, (ws, we) in zip(first, spans):
            tag = _word_tag(mentions, ws, we, opened)
            labels[t] = label2id[f"{tag[0]}-{tag[1]}" if tag else outside]
        examples.append((ids, labels, unannotated, shapes))
    return examples


def aio_tasks(annotated: tuple[str, ...], types: tuple[str, ...]) -> tuple[str, ...]:
    """AIONER's tasks for a corpus: ALL where it annotates every type, else one task per type it
    annotates (BC5CDR: Chemical and Disease, each sentence seen once under each tag)."""
    return (ALL_TASK,) if set(types) <= set(annotated) else tuple(t for t in types if t in annotated)


def encode_examples_aio(sentences: list[tuple[str, list[tuple[int, int, str]]]], tokenizer, label2id: dict[str, int],
                        types: tuple[str, ...], task: str, max_length: int) -> list[tuple]:
    """Label scheme "AIO": each sentence as [CLS] <task> sentence </task> [SEP] (the tag's pieces get
    no label); a word gets B-/I- of the first mention of the task's types it overlaps, else the task's
    O ("O" under ALL, "O-Gene" under Gene). Every label is a full one: the tag says which types the
    sentence's labels speak of, so no loss needs to be partial."""
    opening, closing = task_tag_ids(tokenizer, task)
    kinds = types if task == ALL_TASK else (task,)
    own = [(text, [m for m in mentions if m[2] in kinds]) for text, mentions in sentences]
    outside = "O" if task == ALL_TASK else f"O-{task}"
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    wrap = lambda xs, a, b: [xs[0], *a, *xs[1:-1], *b, xs[-1]]
    examples = []
    for ids, labels, _, shapes in encode_examples(own, tokenizer, label2id, max_length - len(opening) - len(closing),
                                                  outside=outside):
        if ids[0] != cls_id or ids[-1] != sep_id:
            raise ConfigError("label_scheme AIO needs a tokenizer that frames a sentence as [CLS] ... [SEP] "
                              "(the BERT family); use BIO-per-type with this base model")
        examples.append((wrap(ids, opening, closing), wrap(labels, [-100] * len(opening), [-100] * len(closing)), (),
                         wrap(shapes, [0] * len(opening), [0] * len(closing))))
    return examples


def encode_examples_per_type(sentences: list[tuple[str, list[tuple[int, int, str]]]], tokenizer,
                             types: tuple[str, ...], annotated: tuple[str, ...], max_length: int) -> list[tuple]:
    """Label scheme "BIO-per-type": (input_ids, per token a label per type (0 O, 1 B, 2 I; -100 =
    no loss), ()) per sentence. A word's tag for type T comes from the first T mention it overlaps, so
    a word can be in a chemical and a gene at once; a type the corpus does not annotate is -100 on
    every word: that head learns nothing from this corpus, neither "gene" nor "not a gene"."""
    examples = []
    for ids, first, spans, mentions, shapes in _tokenized(sentences, tokenizer, max_length):
        labels = [[-100] * len(types) for _ in ids]
        opened: set[int] = set()
        for t, (ws, we) in zip(first, spans):
            for k, typ in enumerate(types):
                if typ in annotated:
                    tag = _word_tag(mentions, ws, we, opened, typ)
                    labels[t][k] = 0 if tag is None else 1 if tag[0] == "B" else 2
        examples.append((ids, labels, (), shapes))
    return examples


def dev_scores(tagger, dev: list, types: tuple[str, ...], spans: list | None = None):
    """Dev-set scores in the dev set's own form (IOB sentences or PubTator documents); ``spans``, if
    given, gets (type, span score, correct) of every predicted span of the annotated ``types``."""
    found: dict = {}
    if dev and isinstance(dev[0], IobSentence):
        predicted = predict_iob(tagger, dev, scores=found)
        gold = {(i, a, b, t) for i, sent in enumerate(dev) for a, b, t in sent.spans()}
        result = score_iob(dev, predicted, types)
    else:
        predicted = predict_documents(tagger, dev, scores=found)
        gold = {(d.pmid, m.start, m.end, m.type) for d in dev for m in d.mentions}
        result = score(dev, predicted, types)
    if spans is not None:
        spans.extend((key[-1], sc, key in gold) for key, sc in found.items() if key[-1] in types)
    return result


def dev_prf(tagger, dev_sets: list[tuple[list, tuple[str, ...]]],
            spans: list | None = None) -> tuple[tuple[float, float, float], list[float]]:
    """Model-selection score: each dev source scored on the types it annotates (a gene predicted in
    a corpus without gene annotation is not an error), then P/R/F1 averaged over the sources, so a
    small corpus counts as much as a big one. Also each source's F1. ``spans``, if given, gets
    (type, span score, correct, source index) of every predicted span its source annotates."""
    scores = []
    for i, (docs, annotated) in enumerate(dev_sets):
        found: list | None = [] if spans is not None else None
        scores.append(dev_scores(tagger, docs, annotated, found).overall())
        if spans is not None:
            spans.extend((*x, i) for x in found)
    return tuple(sum(s[i] for s in scores) / len(scores) for i in range(3)), [s[2] for s in scores]


# a type's calibration is fitted on the complete-label dev sources alone when they hold at least
# this many of its predicted spans (the least fit_calibration fits on)
MIN_CALIBRATION_SPANS = 50


def calibration_spans(spans: list[tuple[str, float, bool, int]], dev_sets: list[tuple[list, tuple[str, ...]]],
                      types: tuple[str, ...]) -> list[tuple[str, float, bool]]:
    """The dev spans each type's calibration and acceptance threshold are fitted on: per type, those
    from the dev sources that annotate every type (BioRED: the whole-abstract, all-types tagging the
    pipeline does) where there are ``MIN_CALIBRATION_SPANS`` of them, else every source's.

    Why not pooled: a single-type corpus's exact-match judgement is not the pipeline's. BC2GM's
    dev file holds only its main gene boundaries (its alternative boundaries, which its own scoring
    accepts, are not in the IOB form), and its gene spans outnumber BioRED's ten to one; pooled, the
    70%-precision gene cut of the stop-29 default sat at 0.52 and kept 49% of BioRED Dev's genes."""
    complete = {i for i, (_, annotated) in enumerate(dev_sets) if set(types) <= set(annotated)}
    out = []
    for kind in sorted({k for k, *_ in spans}):
        mine = [x for x in spans if x[0] == kind]
        whole = [x for x in mine if x[3] in complete]
        out.extend((k, s, ok) for k, s, ok, _ in (whole if len(whole) >= MIN_CALIBRATION_SPANS else mine))
    return out


def fitted_calibration(spans: list[tuple[str, float, bool, int]], dev: tuple[str, ...], dev_sets: list,
                       types: tuple[str, ...], accept_precision: float | None) -> dict:
    """``fit_calibration`` on ``calibration_spans``, saying per type which dev sources it was fitted on."""
    cal = fit_calibration(calibration_spans(spans, dev_sets, types), accept_precision)
    complete = [d for d, (_, annotated) in zip(dev, dev_sets) if set(types) <= set(annotated)]
    cal["fitted_on"] = {k: (complete if sum(1 for t, *_, i in spans if t == k and dev[i] in complete)
                            >= MIN_CALIBRATION_SPANS else list(dev)) for k in sorted({t for t, *_ in spans})}
    return cal


def calibrate_ner_artifact(url: str, accept_precision: float | None = None, storage_options: dict | None = None,
                           precision: str = "auto", log=print) -> dict:
    """Fit an NER artifact's span calibration and acceptance thresholds anew on the dev sources it was
    trained with (``calibration_spans``), at ``accept_precision`` (None: the one it was trained
    with), and write them into its manifest under a new model id (the pipeline's extraction
    fingerprint moves with it). The weights are untouched; their hash check still holds.

    ``precision="int8"`` fits them on the int8-quantized encoder's scores instead and writes them
    as ``calibration_int8`` beside the model's own (the tagger reads it when it runs int8): int8
    shifts span scores, and thresholds chosen on full-precision scores then drop right spans. It
    also scores dev at fp32 and at int8, each with its own calibration, and sets
    ``calibration_int8.auto`` when int8 loses at most ``INT8_AUTO_MAX_DEV_LOSS`` of dev F1: only
    then does ``precision: auto`` choose int8 on a CPU without fast bf16."""
    import hashlib
    import json

    from workers.inference.artifacts import content_hash, load_artifact, stage_artifact
    from workers.inference.device import INT8
    from workers.training.artifacts import rewrite_manifest

    folder = stage_artifact(url, storage_options)
    tokenizer, model, manifest = load_artifact(folder, "ner")
    training = manifest.get("training") or {}
    if not training.get("dev"):
        raise ConfigError(f"model {manifest.get('model_id')} at {url} names no dev sources in its manifest "
                          "(training.dev); only a model trained by pubmine can be recalibrated")
    types = tuple(manifest["entity_types"])
    dev = tuple(training["dev"])
    target = accept_precision if accept_precision is not None else training.get("accept_precision")
    key = "calibration_int8" if precision == INT8 else "calibration"
    uncalibrated = {k: v for k, v in manifest.items() if k not in ("calibration", "calibration_int8")}
    raw = NerTagger(tokenizer, model, uncalibrated, precision=precision)
    dev_sets = load_sources(dev, types)
    spans: list = []
    (p, r, f), _ = dev_prf(raw, dev_sets, spans)
    log(f"dev at {raw.precision} (every span kept): P {p:.4f} R {r:.4f} F1 {f:.4f}; {len(spans)} spans")
    cal = fitted_calibration(spans, dev, dev_sets, types, target)
    for kind, info in (cal.get("accept") or {}).get("dev", {}).items():
        log(f"{kind}: threshold {info.get('threshold', '-')} on {len(cal['fitted_on'][kind])} source(s), "
            f"precision {info.get('precision', info['precision_all'])} of {info['spans']} spans")
    if key == "calibration_int8":
        if target != training.get("accept_precision"):
            raise ConfigError(f"the int8 calibration keeps the model's own accept precision "
                              f"({training.get('accept_precision')}); recalibrate the model first for another")
        full = NerTagger(tokenizer, model, manifest, precision="fp32")
        (_, _, f32), _ = dev_prf(full, dev_sets)
        (_, _, f8), _ = dev_prf(NerTagger(tokenizer, model, {**manifest, key: cal}, precision=INT8), dev_sets)
        cal["dev_f1"] = {"fp32": round(f32, 4), INT8: round(f8, 4)}
        cal["auto"] = f32 - f8 <= INT8_AUTO_MAX_DEV_LOSS
        log(f"dev F1 with each one's calibration: fp32 {f32:.4f}, int8 {f8:.4f} "
            f"({'within' if cal['auto'] else 'over'} {INT8_AUTO_MAX_DEV_LOSS} of fp32: auto "
            f"{'chooses' if cal['auto'] else 'does not choose'} int8 on CPUs without fast bf16)")
    else:
        training = {**training, "accept_precision": target}
        if manifest.pop("calibration_int8", None):
            log("dropped calibration_int8 (fitted beside the old calibration): "
                "pubmine calibrate --precision int8 fits it again")
    manifest = {**manifest, key: cal, "training": training}
    both = {k: manifest.get(k) for k in ("calibration", "calibration_int8") if manifest.get(k)}
    digest = hashlib.sha256(json.dumps(both if len(both) > 1 else cal, sort_keys=True).encode()).hexdigest()[:6]
    manifest["model_id"] = f"{manifest['name']}-c{digest}-{content_hash(folder)}"
    rewrite_manifest(url, folder, manifest, storage_options)
    return manifest


# the dev F1 (mean over the dev sources) int8 may lose against fp32, each with its own calibration,
# for ``precision: auto`` to choose it on a CPU without fast bf16: half a point, the loss the
# issue accepts on the test splits for a silent choice
INT8_AUTO_MAX_DEV_LOSS = 0.005


def _collate(examples, batch: list[int], pad_id: int, num_labels: int = 0):
    """Padded ids, attention mask, labels, token types (each piece's case shape); and, when a
    sentence of the batch comes from a corpus that leaves some types unannotated, the allowed-label
    mask [batch, width, labels] (else None)."""
    width = max(len(examples[j][0]) for j in batch)
    per_type = examples[batch[0]][1] and isinstance(examples[batch[0]][1][0], list)
    tail = (len(examples[batch[0]][1][0]),) if per_type else ()
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width, *tail), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    types = torch.zeros((len(batch), width), dtype=torch.long)
    for r, j in enumerate(batch):
        x, y = examples[j][0], examples[j][1]
        ids[r, : len(x)] = torch.tensor(x)
        labels[r, : len(y)] = torch.tensor(y)
        mask[r, : len(x)] = 1
        types[r, : len(x)] = torch.tensor(examples[j][3])
    allow = None
    if num_labels and any(examples[j][2] for j in batch):
        allow = torch.nn.functional.one_hot(labels.clamp(min=0), num_labels).bool()
        for r, j in enumerate(batch):
            if examples[j][2]:
                outside = labels[r] == 0  # O words: O, or an entity of a type the corpus does not annotate
                for label in examples[j][2]:
                    allow[r, outside, label] = True
    return ids, mask, labels, types, allow


def _loss(model, ids, mask, y, allow, types=None):
    extra = {"token_type_ids": types} if types is not None else {}
    if y.dim() == 3:  # per-type heads: [batch, width, types] targets, one (O, B, I) softmax per type
        logits = model(input_ids=ids, attention_mask=mask, **extra).logits.float()
        return torch.nn.functional.cross_entropy(logits.reshape(-1, 3), y.reshape(-1), ignore_index=-100)
    if allow is None:
        return model(input_ids=ids, attention_mask=mask, labels=y, **extra).loss
    return partial_label_loss(model(input_ids=ids, attention_mask=mask, **extra).logits, y, allow.to(ids.device))


def add_case_shapes(model) -> None:
    """Resize the encoder's token-type embedding to the CASE_SHAPES case shapes, every new row a copy
    of type 0: the model starts exactly where the pretrained one is and learns what case adds."""
    emb = getattr(getattr(model.base_model, "embeddings", None), "token_type_embeddings", None)
    if emb is None:
        raise ConfigError(f"case_features needs an encoder with token-type embeddings (BERT family); "
                          f"{type(model.base_model).__name__} has none: set case_features: false")
    grown = torch.nn.Embedding(CASE_SHAPES, emb.embedding_dim)
    with torch.no_grad():
        grown.weight.copy_(emb.weight[:1].expand(CASE_SHAPES, -1))
    model.base_model.embeddings.token_type_embeddings = grown
    model.config.type_vocab_size = CASE_SHAPES


def partial_label_loss(logits: torch.Tensor, labels: torch.Tensor, allow: torch.Tensor) -> torch.Tensor:
    """-log of the probability mass on each token's allowed labels, averaged over labelled tokens;
    with one allowed label it is the usual cross-entropy."""
    logp = logits.float().log_softmax(-1)
    tok = -torch.logsumexp(logp.masked_fill(~allow, float("-inf")), dim=-1)
    valid = labels != -100
    return tok[valid].mean()


def platt_fit(z, y, ridge: float = 1.0):
    """(a, b) maximizing the logistic log-likelihood of y given sigmoid(a * z + b), with a ridge
    pulling toward the identity map (1, 0): damped Newton, each step halved until the penalized loss
    goes down (plain Newton from (1, 0) overshot to a = 8e6 on one model's gene spans). None when it
    does not settle on a finite map."""
    import numpy as np

    feats = np.stack([z, np.ones_like(z)], 1)
    prior = np.array([1.0, 0.0])

    def loss(ab):
        t = feats @ ab
        return float(np.sum(np.logaddexp(0, t) - y * t) + 0.5 * ridge * np.sum((ab - prior) ** 2))

    ab, current = prior.copy(), loss(prior)
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(feats @ ab, -50, 50)))
        grad = feats.T @ (p - y) + ridge * (ab - prior)
        hess = (feats * (p * (1 - p))[:, None]).T @ feats + ridge * np.eye(2)
        step, shrink = np.linalg.solve(hess, grad), 1.0
        while shrink > 1e-6 and loss(ab - shrink * step) > current:
            shrink /= 2
        ab, previous = ab - shrink * step, current
        current = loss(ab)
        if previous - current < 1e-10 * max(1.0, abs(current)):
            break
    return ab if np.all(np.isfinite(ab)) and abs(ab[0]) < 100 else None


def fit_calibration(spans: list[tuple[str, float, bool]], accept_precision: float | None = None) -> dict:
    """Per entity type, Platt scaling of the span score on the dev spans of the selected epoch:
    P(correct) = sigmoid(a * logit(score) + b), (a, b) by maximum likelihood; types with fewer than
    50 dev spans, or all right or all wrong, keep the raw score. Read by decoding.calibrated."""
    import numpy as np

    params = {}
    for kind in sorted({k for k, _, _ in spans}):
        x = np.array([s for k, s, _ in spans if k == kind], dtype=np.float64)
        y = np.array([ok for k, _, ok in spans if k == kind], dtype=np.float64)
        if len(x) < 50 or y.min() == y.max():
            continue
        ab = platt_fit(np.log(np.clip(x, 1e-6, 1 - 1e-6) / np.clip(1 - x, 1e-6, 1)), y)
        if ab is not None:
            params[kind] = [round(float(ab[0]), 6), round(float(ab[1]), 6)]
    out = {"method": CALIBRATION, "params": params, "fitted_on": "dev",
           "spans": {k: sum(1 for t, _, _ in spans if t == k) for k in params}}
    if accept_precision is not None:
        out["accept"] = acceptance_thresholds([(k, calibrated(s, params.get(k)), ok) for k, s, ok in spans],
                                              accept_precision)
    return out


def acceptance_thresholds(spans: list[tuple[str, float, bool]], precision: float, min_spans: int = 20) -> dict:
    """Per type, the least calibrated score at which the dev spans scored at least that are
    ``precision`` correct (0.0 where all of them already are; no threshold where no cut with
    ``min_spans`` spans reaches it), with the dev precision and the share of correct spans kept."""
    out: dict = {"precision": precision, "thresholds": {}, "dev": {}}
    for kind in sorted({k for k, _, _ in spans}):
        scored = sorted(((s, ok) for k, s, ok in spans if k == kind), key=lambda x: -x[0])
        right = sum(ok for _, ok in scored)
        best, hits = None, 0
        for i, (score, ok) in enumerate(scored, start=1):
            hits += ok
            if i >= min_spans and hits / i >= precision and (i == len(scored) or scored[i][0] < score):
                best = (score, hits, i)   # the lowest cut so far that is still precise enough
        if not scored:
            continue
        info = {"spans": len(scored), "precision_all": round(right / len(scored), 4)}
        if best is None:
            info["reached"] = False
        else:
            t = 0.0 if best[2] == len(scored) else round(float(best[0]), 6)
            out["thresholds"][kind] = t
            info.update(threshold=t, precision=round(best[1] / best[2], 4), correct_kept=round(best[1] / max(right, 1), 4))
        out["dev"][kind] = info
    return out


def train_ner(cfg: NerTrainConfig, output: str, *, storage_options: dict | None = None,
              progress: bool | str = True, log=print) -> dict:
    """Train, select on dev, write the artifact to ``output``; returns its manifest."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the "newly initialized classifier" report is expected here
    device = prepare(cfg)
    labels = scheme_labels(cfg.label_scheme, cfg.types)
    label2id = {l: i for i, l in enumerate(labels)}
    tokenizer = load_base_tokenizer(cfg.base_model)
    model = load_base_model(cfg.base_model, "AutoModelForTokenClassification", num_labels=len(labels),
                            id2label=dict(enumerate(labels)), label2id=label2id,
                            ignore_mismatched_sizes=True)  # a base that is itself a tagger for other labels gets a fresh head
    model.to(device)
    if cfg.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    if cfg.case_features:
        add_case_shapes(model)

    examples, train_docs = [], []
    for docs, annotated in load_sources(cfg.train, cfg.types):
        if cfg.limit_docs:
            docs = docs[: cfg.limit_docs]
        train_docs.extend(docs)
        sentences = training_sentences(docs, cfg.types)
        if cfg.empty_sentence_ratio < 1:
            keep = random.Random(cfg.seed)
            sentences = [x for x in sentences if any(t in annotated for *_, t in x[1])
                         or keep.random() < cfg.empty_sentence_ratio]
        sentences = oversampled(sentences, cfg.oversample, annotated)
        if cfg.label_scheme == PER_TYPE:
            examples.extend(encode_examples_per_type(sentences, tokenizer, cfg.types, annotated, cfg.max_length))
            continue
        if cfg.label_scheme == AIO:
            for task in aio_tasks(annotated, cfg.types):
                examples.extend(encode_examples_aio(sentences, tokenizer, label2id, cfg.types, task, cfg.max_length))
            continue
        unannotated = tuple(label2id[f"{p}-{t}"] for t in cfg.types if t not in annotated for p in ("B", "I"))
        examples.extend(encode_examples(sentences, tokenizer, label2id, cfg.max_length, unannotated))
    dev_sets = load_sources(cfg.dev, cfg.types)
    pad = tokenizer.pad_token_id or 0
    case = {"case_features": CASE_FEATURES} if cfg.case_features else {}

    def batch_loss(batch):
        ids, mask, y, types, allow = _collate(examples, batch, pad, len(labels))
        return _loss(model, ids.to(device), mask.to(device), y.to(device), allow,
                     types.to(device) if cfg.case_features else None)

    # dev is scored at the precision training runs at (never int8: the thresholds and calibration
    # chosen on it belong to the weights, not to one CPU's inference path)
    score_precision = precision_name(resolve_precision(cfg.precision, device))

    def after_epoch(end: EpochEnd) -> bool:
        """Score on dev, keep the best weights, stop after ``patience`` epochs without a better F1."""
        model.eval()
        tagger = NerTagger(tokenizer, model, {"model_id": cfg.name, "label_scheme": cfg.label_scheme,
                                              "entity_types": list(cfg.types), **case}, precision=score_precision, device=device)
        spans: list = []
        (p, r, f), per_source = dev_prf(tagger, dev_sets, spans)
        state = end.state
        state["history"].append({"epoch": end.epoch, "train_loss": end.train_loss, "dev_precision": p,
                                 "dev_recall": r, "dev_f1": f, "seconds": end.seconds,
                                 **({"dev_f1_by_source": per_source} if len(per_source) > 1 else {})})
        each = f"  ({', '.join(f'{x:.4f}' for x in per_source)})" if len(per_source) > 1 else ""
        log(f"epoch {end.epoch}: train loss {end.train_loss:.4f}  dev P {p:.4f} R {r:.4f} F1 {f:.4f}{each}")
        if f > state.get("best_f1", -1.0):
            state["best_f1"], state["bad_epochs"] = f, 0
            state["best_state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            state["best_spans"] = spans  # what the score calibration is fitted on
        else:
            state["bad_epochs"] = state.get("bad_epochs", 0) + 1
        if state["bad_epochs"] >= cfg.patience:
            log(f"early stop: dev F1 has not improved for {state['bad_epochs']} epochs")
            return True
        return False

    state = fit(model, cfg, name=cfg.name, device=device, steps_per_epoch=math.ceil(len(examples) / cfg.batch_size),
                make_batches=lambda rng: length_batches([len(e[0]) for e in examples], cfg.batch_size, rng),
                batch_loss=batch_loss, after_epoch=after_epoch, progress=progress, log=log)
    if state.get("best_state") is not None:
        model.load_state_dict(state["best_state"])
    model.to("cpu")
    round_to_half(model)  # what is stored (dev F1 above is before rounding; README states test F1 after)
    meta = {
        "task": "ner",
        "label_scheme": cfg.label_scheme,
        "labels": labels,
        "entity_types": list(cfg.types),
        **case,
        **({"calibration": fitted_calibration(state["best_spans"], cfg.dev, dev_sets, cfg.types, cfg.accept_precision)}
           if state.get("best_spans") else {}),
        "base_model": base_model_label(cfg.base_model),
        "training": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
                     "train_sentences": len(examples), "train_documents": len(train_docs),
                     "device": device, "precision": state["precision"], "seconds": state["seconds"]},
        "metrics": {"dev": {"f1": state.get("best_f1", -1.0)}, "history": state["history"]},
    }
    manifest = write_artifact(model, tokenizer, output, cfg.name, meta, storage_options, half=True)
    clear_checkpoint(cfg.name)
    return manifest
