"""Tiny real models for tests and smoke runs: random weights, the real MiniLM WordPiece tokenizer,
written as real artifacts, so every code path of a model runs at a fraction of the cost."""

from __future__ import annotations

import os

import torch

from workers.inference.decoding import scheme_labels
from workers.inference.relations import DOC_RE_NEGATIVE, DOCUMENT_FORMS
from workers.training.artifacts import write_artifact
from workers.training.loop import MINILM, load_base_tokenizer


def _tiny_config(tokenizer, labels):
    from transformers import BertConfig

    return BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=512, num_labels=len(labels),
                      id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})


def tiny_bert(folder: str | os.PathLike, types: tuple[str, ...] = ("Chemical", "Disease"), seed: int = 0,
              name: str = "tiny-bert-ner", label_scheme: str = "BIO", o_bias: float = 0.0) -> dict:
    """A tiny real BERT (random weights, the MiniLM WordPiece tokenizer) saved as an artifact.

    For tests and smoke runs: every code path of a real model, at a fraction of the cost. ``o_bias``
    raises the "O" logit, so that a random model tags a few words (about as many as a real one) rather
    than most of them (benchmarks.scale).
    """
    from transformers import BertForTokenClassification

    torch.manual_seed(seed)
    labels = scheme_labels(label_scheme, types)
    tokenizer = load_base_tokenizer(MINILM)
    model = BertForTokenClassification(_tiny_config(tokenizer, labels))
    if o_bias:
        with torch.no_grad():
            for i, label in enumerate(labels):
                if label == "O" or label.startswith(("O/", "O-")):
                    model.classifier.bias[i] += o_bias
    return write_artifact(model, tokenizer, str(folder), name,
                          {"task": "ner", "label_scheme": label_scheme, "labels": labels, "entity_types": list(types),
                           "base_model": "random tiny BERT", "training": None, "metrics": {}})


def tiny_relation_bert(folder: str | os.PathLike, labels: tuple[str, ...] = ("CID", "None"), always: str | None = None,
                       dataset: str = "bc5cdr-cid", seed: int = 0, name: str = "tiny-bert-re") -> dict:
    """A tiny real sequence classifier saved as a relation artifact (document level, BC5CDR CID form).
    ``always``: bias the head so every candidate gets that label (plumbing tests)."""
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    tokenizer = load_base_tokenizer(MINILM)
    model = BertForSequenceClassification(_tiny_config(tokenizer, labels))
    if always is not None:
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.copy_(torch.tensor([10.0 if l == always else 0.0 for l in labels]))
    negative = DOC_RE_NEGATIVE if dataset in DOCUMENT_FORMS else ("0" if "0" in labels else None)
    return write_artifact(model, tokenizer, str(folder), name, {
        "task": "re", "labels": list(labels), "negative_label": negative, "dataset": dataset,
        "type_pairs": [list(p) for p in DOCUMENT_FORMS[dataset]] if DOCUMENT_FORMS.get(dataset) else None,
        "base_model": "random tiny BERT",
        "training": {"window": 2, "max_length": 128}, "metrics": {}})


def tiny_docre(folder: str | os.PathLike, always: str | None = None, seed: int = 0, name: str = "tiny-bert-redoc",
               labels: tuple[str, ...] = ("None", "Association", "Positive_Correlation"),
               types: tuple[str, ...] = ("Chemical", "Disease", "Gene")) -> dict:
    """A tiny real document-level relation artifact (task re-doc: encoder + heads.safetensors).
    ``always``: bias the heads so every candidate pair gets that label, and Novel (plumbing tests)."""
    from safetensors.torch import save_file
    from transformers import BertModel

    from workers.inference.artifacts import HEADS
    from workers.inference.docre import DocRelationModel

    torch.manual_seed(seed)
    tokenizer = load_base_tokenizer(MINILM)
    encoder = BertModel(_tiny_config(tokenizer, labels), add_pooling_layer=False)
    model = DocRelationModel(encoder, list(labels), list(types), True, 128, 32)
    if always is not None:
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.copy_(torch.tensor([10.0 if l == always else 0.0 for l in labels]))
            model.novelty.weight.zero_()
            model.novelty.bias.fill_(3.0)
    heads = {k: v.contiguous() for k, v in model.head_state().items()}
    type_pairs = sorted({(a, b) for a in types for b in types if a != b})
    return write_artifact(model.encoder, tokenizer, str(folder), name, {
        "task": "re-doc", "dataset": "biored", "type_pairs": [list(p) for p in type_pairs],
        "heads": {"labels": list(labels), "types": list(types), "novelty": True, "window": 128, "stride": 32},
        "base_model": "random tiny BERT", "training": {"max_length": 128}, "metrics": {}},
        extra=lambda stage: save_file(heads, str(stage / HEADS)))
