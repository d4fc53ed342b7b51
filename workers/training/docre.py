"""Training the document-level relation model (``task: re-doc``; the model is ``workers.inference.docre``).

BioRED Train's 400 abstracts: every concept of a related type (Chemical, Disease, Gene, Variant) is
an entity, every unordered pair of entities whose types BioRED relates is a candidate, labelled with
its relation type or none, and its novelty where it is a relation. The loss is ATLOP's adaptive
threshold loss over the labels plus binary cross-entropy of the novelty of gold relations. BioRED's
test split is withheld here; Dev is the test, scored once after the last epoch. One number is chosen
on it: the decision margin over the learned threshold class (``calibrate``), on half of Dev's
documents, and checked on the other half, which is what the manifest reports as held out.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.errors import ConfigError
from pipeline.parse.pubtator import PubtatorDoc, doc_sentences, gold_ids, read_pubtator
from pipeline.scores import RelationScores, gold_relations, score_doc_relations
from workers.inference.artifacts import HEADS
from workers.inference.docre import (NO_RELATION, NOVEL, DocRelationExtractor, DocRelationModel, Encoded, Entity,
                                     candidate_pairs, encode_document, marker_id)
from workers.training.artifacts import round_to_half, write_artifact
from workers.training.corpora import BIORED_TYPES, data_file
from workers.training.loop import (MINILM, Hyperparams, base_model_label, clear_checkpoint, fit, load_base_model,
                                   load_base_tokenizer, prepare)

DOC_RE_DATASETS = {  # name -> (train files, test files); BioRED's test split is withheld: Dev is the test
    "biored": (("biored/pubtator/Train.PubTator.gz",), ("biored/pubtator/Dev.PubTator.gz",)),
}
RELATED_TYPES = ("Chemical", "Disease", "Gene", "Variant")  # the types BioRED relates


@dataclass(frozen=True)
class DocReTrainConfig(Hyperparams):
    name: str = "biored-minilm-redoc"
    task: str = "re-doc"
    base_model: str = MINILM
    dataset: str = "biored"
    max_length: int = 512              # the encoder's window; longer documents are encoded in overlapping windows
    stride: int = 128                  # pieces two windows share
    batch_size: int = 2                # documents per step
    learning_rate: float = 5e-5        # the encoder's
    head_learning_rate: float = 1e-4   # the pair heads' (ATLOP: a higher rate for the new layers)
    warmup_ratio: float = 0.06
    epochs: int = 10
    novelty: bool = True               # learn BioRED's novelty label too
    calibrate: bool = True             # choose the decision margin on half of Dev (``calibrate``)
    limit_docs: int = 0                # >0: the first n training documents (smoke runs)
    score_test: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.task != "re-doc":
            raise ConfigError(f"task {self.task!r} is not the document-level relation task (expected 're-doc')")
        if self.dataset not in DOC_RE_DATASETS:
            raise ConfigError(f"dataset {self.dataset!r} unknown for re-doc; choose one of {', '.join(DOC_RE_DATASETS)}")
        if not 0 <= self.stride < self.max_length - 2 or self.head_learning_rate <= 0:
            raise ConfigError("stride must be in [0, max_length - 2) and head_learning_rate > 0")


def read_documents(dataset: str, split: str) -> list[PubtatorDoc]:
    train, test = DOC_RE_DATASETS[dataset]
    return [d for f in (train if split == "train" else test) for d in read_pubtator(data_file(f), BIORED_TYPES)]


def gold_entities(doc: PubtatorDoc, types=RELATED_TYPES) -> list[Entity]:
    """The document's concepts of ``types`` as entities, with the IDs the linker gives (``gold_ids``:
    composite IDs count for each), in order of first mention."""
    mentions: dict[tuple[str, str], list] = {}
    for m in sorted(doc.mentions, key=lambda m: (m.start, m.end)):
        if m.type in types:
            for cid in sorted(gold_ids(m.ids, m.type)):
                mentions.setdefault((m.type, cid), []).append((m.start, m.end))
    return [Entity(t, c, tuple(ms)) for (t, c), ms in mentions.items()]


def related_pairs(docs: list[PubtatorDoc]) -> list[tuple[str, str]]:
    """The entity-type pairs the documents relate, both orders."""
    pairs = set()
    for doc, rel in ((d, r) for d in docs for r in gold_relations(d)):
        (ta, _), (tb, _) = sorted(rel[1])
        pairs |= {(ta, tb), (tb, ta)}
    return sorted(pairs)


@dataclass
class DocExample:
    enc: Encoded
    type_ids: list[int]
    pairs: list[tuple[int, int]]
    labels: list[int]
    novel: list[int]          # 1 novel, 0 background, -1 no relation


def examples(docs, tokenizer, labels: list[str], types: list[str], type_pairs) -> list[DocExample]:
    marker, out = marker_id(tokenizer), []
    for doc in docs:
        ents = gold_entities(doc, tuple(types))
        enc = encode_document(tokenizer, doc.text, ents, marker)
        gold = {rel[1]: (rel[2], rel[3]) for rel in gold_relations(doc)}
        pairs, y, nov = candidate_pairs(ents, enc, type_pairs), [], []
        for i, j in pairs:
            a, b = ents[i], ents[j]
            rtype, novelty = gold.get(frozenset({(a.type, a.concept_id), (b.type, b.concept_id)}), (NO_RELATION, None))
            y.append(labels.index(rtype))
            nov.append(-1 if novelty is None else int(novelty == NOVEL))
        if pairs:
            out.append(DocExample(enc, [types.index(e.type) for e in ents], pairs, y, nov))
    return out


def threshold_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ATLOP's adaptive threshold loss with one gold label per pair (0: none): the gold label above
    the threshold class, the threshold above every other label."""
    logits = logits.float()
    labels = torch.nn.functional.one_hot(y, logits.shape[-1]).float()
    labels[:, 0] = 0.0
    th = torch.zeros_like(labels)
    th[:, 0] = 1.0
    keep_pos = labels + th                    # the gold label and the threshold
    loss_pos = -(torch.log_softmax(logits - (1 - keep_pos) * 1e30, -1) * labels).sum(-1)
    loss_neg = -(torch.log_softmax(logits - labels * 1e30, -1) * th).sum(-1)
    return (loss_pos + loss_neg).mean()


def predict_scored(extractor: DocRelationExtractor, docs: list[PubtatorDoc]) -> list[tuple[tuple, float]]:
    """Each predicted (pmid, pair, label, novelty) for the documents given their gold entities, with
    its gap (``PairScore.gap``)."""
    inputs = []
    for d in docs:
        sents = [(s, s + len(t)) for s, t in doc_sentences(d)]
        inputs.append((d.text, sents, gold_entities(d, tuple(extractor.model.types))))
    out = []
    for d, (_, _, ents), scores in zip(docs, inputs, extractor.predict(inputs)):
        for p in scores:
            if p.label != NO_RELATION:
                a, b = ents[p.head], ents[p.tail]
                out.append(((d.pmid, frozenset({(a.type, a.concept_id), (b.type, b.concept_id)}), p.label, p.novelty),
                            p.gap))
    return out


def predict_relations(extractor: DocRelationExtractor, docs: list[PubtatorDoc]) -> set[tuple]:
    """Predicted (pmid, pair, label, novelty) for the documents given their gold entities."""
    return {r for r, _ in predict_scored(extractor, docs)}


# -- the decision margin: ATLOP's threshold class learns where "no relation" lies on the training
# documents, where the model is surer than on new ones (BioRED Dev: precision 69, recall 37 at margin
# 0). One number, chosen on half of Dev and checked on the other half.

MARGINS = tuple(round(-1.0 + 0.25 * k, 2) for k in range(21))  # -1 ... 4 logits


def calibration_halves(docs: list[PubtatorDoc]) -> tuple[list[PubtatorDoc], list[PubtatorDoc]]:
    """The documents by PMID, alternately into the half the margin is chosen on and the half it is checked on."""
    ordered = sorted(docs, key=lambda d: d.pmid)
    return ordered[0::2], ordered[1::2]


def sweep_margins(extractor: DocRelationExtractor, docs: list[PubtatorDoc], margins=MARGINS,
                  scored: list[tuple[tuple, float]] | None = None) -> dict[float, RelationScores]:
    """The scores at each margin, from one pass at the widest margin (a narrower one keeps the
    relations whose gap is below it); ``scored``: that pass's output for these or more documents."""
    gold = {r for d in docs for r in gold_relations(d)}
    if scored is None:
        scored = scored_at(extractor, docs, max(margins))
    pmids = {d.pmid for d in docs}
    return {m: score_doc_relations(gold, {r for r, g in scored if g < m and r[0] in pmids}) for m in margins}


def scored_at(extractor: DocRelationExtractor, docs: list[PubtatorDoc], margin: float) -> list[tuple[tuple, float]]:
    """``predict_scored`` at ``margin``, the extractor's own margin left as it was."""
    kept = extractor.margin
    extractor.margin = margin
    try:
        return predict_scored(extractor, docs)
    finally:
        extractor.margin = kept


def margin_objective(s: RelationScores) -> float:
    """What the margin maximises: the mean of pair F1 and pair + type F1 (the two measures the
    BioRED track leads with)."""
    summary = s.summary()
    return (summary["pair"]["f1"] + summary["type"]["f1"]) / 2


def calibrate(extractor: DocRelationExtractor, dev: list[PubtatorDoc], log=print) -> dict:
    """Choose the margin on one half of ``dev`` (``calibration_halves``), score it on the other half
    and on all of it, beside margin 0. Returns the manifest's ``calibration`` entry."""
    choose, check = calibration_halves(dev)
    scored = scored_at(extractor, dev, max(MARGINS))  # one pass over Dev serves every margin and half
    on_choose = sweep_margins(extractor, choose, scored=scored)
    margin = max(MARGINS, key=lambda m: (round(margin_objective(on_choose[m]), 6), -abs(m)))
    on_check = sweep_margins(extractor, check, (0.0, margin), scored)
    on_all = sweep_margins(extractor, dev, (0.0, margin), scored)
    brief = lambda s: {k: round(v["f1"], 4) for k, v in s.summary().items()}
    out = {"margin": margin, "objective": "mean of pair F1 and type F1", "grid": [MARGINS[0], MARGINS[-1], 0.25],
           "chosen_on": f"BioRED Dev, the {len(choose)} documents at even positions by PMID",
           "checked_on": f"BioRED Dev, the other {len(check)} documents",
           "chosen_half": {"margin_0": brief(on_choose[0.0]), "chosen": brief(on_choose[margin])},
           "checked_half": {"margin_0": brief(on_check[0.0]), "chosen": brief(on_check[margin])},
           "all": {"margin_0": brief(on_all[0.0]), "chosen": brief(on_all[margin])}}
    log(f"margin {margin:+.2f} (chosen on {len(choose)} Dev documents); on the other {len(check)}: pair F1 "
        f"{out['checked_half']['margin_0']['pair']:.4f} -> {out['checked_half']['chosen']['pair']:.4f}, type F1 "
        f"{out['checked_half']['margin_0']['type']:.4f} -> {out['checked_half']['chosen']['type']:.4f}")
    return out


def evaluate_gold_entities(extractor: DocRelationExtractor, docs: list[PubtatorDoc]) -> RelationScores:
    return score_doc_relations({r for d in docs for r in gold_relations(d)}, predict_relations(extractor, docs))


def train_docre(cfg: DocReTrainConfig, output: str, *, storage_options: dict | None = None,
                progress: bool | str = True, log=print) -> dict:
    from safetensors.torch import save_file
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    device = prepare(cfg)
    all_train = read_documents(cfg.dataset, "train")
    type_pairs = related_pairs(all_train)  # of the whole split, also in smoke runs
    train_docs = all_train[: cfg.limit_docs] if cfg.limit_docs else all_train
    types = sorted({t for p in type_pairs for t in p})
    counts = Counter(r[2] for d in train_docs for r in gold_relations(d))
    labels = [NO_RELATION, *sorted(counts)]
    tokenizer = load_base_tokenizer(cfg.base_model)
    encoder = load_base_model(cfg.base_model, "AutoModel")
    model = DocRelationModel(encoder, labels, types, cfg.novelty, cfg.max_length, cfg.stride).to(device)
    train = examples(train_docs, tokenizer, labels, types, set(type_pairs))
    log(f"{len(train)} training documents, {sum(len(x.pairs) for x in train)} candidate pairs, "
        f"{sum(v for v in counts.values())} relations ({', '.join(f'{k} {v}' for k, v in counts.most_common())})")
    tok, pad = tokenizer, tokenizer.pad_token_id or 0

    def batch_loss(batch):
        docs = [train[i] for i in batch]
        states = model.encode([x.enc for x in docs], tok.cls_token_id, tok.sep_token_id, pad)
        losses = []
        for x, (h, a) in zip(docs, states):
            logits, novelty, _ = model.pair_logits(h, a, x.enc, x.type_ids, x.pairs)
            y = torch.tensor(x.labels, device=h.device)
            loss = threshold_loss(logits, y)
            nov = torch.tensor(x.novel, device=h.device)
            if novelty is not None and (nov >= 0).any():
                known = nov >= 0
                loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(
                    novelty.float()[known], nov[known].float())
            losses.append(loss)
        return torch.stack(losses).mean()

    def make_batches(rng: random.Random):
        order = list(range(len(train)))
        rng.shuffle(order)
        return [order[k:k + cfg.batch_size] for k in range(0, len(order), cfg.batch_size)]

    heads = {n for n, _ in model.named_parameters() if not n.startswith("encoder.")}
    state = fit(model, cfg, name=cfg.name, device=device, steps_per_epoch=math.ceil(len(train) / cfg.batch_size),
                make_batches=make_batches, batch_loss=batch_loss, progress=progress, log=log,
                learning_rates=lambda n: cfg.head_learning_rate if n in heads else cfg.learning_rate)
    model.to("cpu")
    round_to_half(model)  # the score below is of the weights stored
    meta_heads = {"labels": labels, "types": types, "novelty": cfg.novelty, "window": cfg.max_length,
                  "stride": cfg.stride}
    metrics, meta_calibration = {}, {}
    if cfg.score_test:
        extractor = DocRelationExtractor(tokenizer, model, {"type_pairs": type_pairs}, precision=cfg.precision)
        test_docs = read_documents(cfg.dataset, "test")
        s = evaluate_gold_entities(extractor, test_docs)
        metrics["test"] = s.summary()
        log("test (gold entities) " + " ".join(f"{k} {v['f1']:.4f}" for k, v in s.summary().items()))
        if cfg.calibrate:
            meta_calibration = {"calibration": calibrate(extractor, test_docs, log)}
    meta = {
        "task": "re-doc", "dataset": cfg.dataset, "type_pairs": [list(p) for p in type_pairs], "heads": meta_heads,
        "relation_counts": dict(counts), "base_model": base_model_label(cfg.base_model),
        "training": {**cfg.__dict__, "train_documents": len(train), "device": device, "seconds": state["seconds"],
                     "precision": state["precision"]},
        "metrics": {**metrics, "history": state["history"]}, **meta_calibration,
    }
    head_state = {k: v.half().contiguous() for k, v in model.head_state().items()}
    manifest = write_artifact(model.encoder, tokenizer, output, cfg.name, meta, storage_options, half=True,
                              extra=lambda stage: save_file(head_state, str(stage / HEADS)))
    clear_checkpoint(cfg.name)
    return manifest


def calibrate_artifact(url: str, storage_options: dict | None = None, precision: str = "auto", log=print) -> dict:
    """``calibrate`` an existing re-doc artifact in place: its manifest gains the ``calibration``
    entry, and a model id that says so (the pipeline's extraction fingerprint moves with it: the
    relations are different ones). Weights and heads are untouched; the hash check still holds."""
    from workers.inference.artifacts import content_hash, stage_artifact
    from workers.training.artifacts import rewrite_manifest

    folder = stage_artifact(url, storage_options)
    extractor = DocRelationExtractor.load(folder, precision=precision)  # calibrate scores at its own margins
    manifest = dict(extractor.manifest)
    cal = calibrate(extractor, read_documents(manifest.get("dataset", "biored"), "test"), log)
    manifest["calibration"] = cal
    manifest["model_id"] = f"{manifest['name']}-m{round(100 * cal['margin'])}-{content_hash(folder)}"
    rewrite_manifest(url, folder, manifest, storage_options)
    return manifest
