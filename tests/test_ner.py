"""Decoding, windowing and the tagger on a tiny real BERT (random weights, the real tokenizer)."""

import re

import numpy as np
import pyarrow as pa
import pytest

from pipeline import schemas
from workers.inference.artifacts import read_manifest, stage_artifact
from workers.inference.decoding import Span, decode_bio, word_spans
from workers.inference.ner import NerTagger, _Window


def test_decode_bio_lenient_and_scores():
    spans = [(0, 3), (4, 9), (10, 12), (13, 20), (21, 25), (26, 30)]
    labels = ["B-Chemical", "I-Chemical", "O", "I-Disease", "I-Chemical", "B-Chemical"]
    scores = [0.9, 0.7, 0.99, 0.6, 0.8, 0.5]
    out = decode_bio(labels, scores, spans)
    assert out == [Span(0, 9, "Chemical", pytest.approx(0.8)), Span(13, 20, "Disease", 0.6),
                   Span(21, 25, "Chemical", 0.8), Span(26, 30, "Chemical", 0.5)]
    assert decode_bio(["O", "O"], [1.0, 1.0], [(0, 1), (2, 3)]) == []


def test_word_spans_join_pieces():
    # "naloxone's" -> nal ##ox ##one ' s : three words
    word_ids = [None, 0, 0, 0, 1, 2, None]
    offsets = [(0, 0), (0, 3), (3, 5), (5, 8), (8, 9), (9, 10), (0, 0)]
    assert word_spans(word_ids, offsets) == ([1, 4, 5], [(0, 8), (8, 9), (9, 10)])


@pytest.fixture(scope="module")
def tagger(tiny_model):
    return NerTagger.load(tiny_model, max_length=16, stride=4, max_tokens_per_batch=64, precision="fp32")


def test_windows_overlap_and_cover(tagger):
    wins = tagger._windows([30, 5, 0])
    assert [(w.sent, w.start, w.end) for w in wins] == [(0, 0, 14), (0, 10, 24), (0, 20, 30), (1, 0, 5)]
    batches = tagger._batches(wins)
    assert sorted((w.sent, w.start) for b in batches for w in b) == sorted((w.sent, w.start) for w in wins)
    for b in batches:
        assert max(w.end - w.start + 2 for w in b) * len(b) <= 64


def test_tagger_spans_lie_on_words_and_long_text_is_not_dropped(tagger, monkeypatch):
    long = " ".join(["Naloxone reverses the antihypertensive effect of clonidine in rats."] * 6)
    texts = ["Famotidine-associated delirium.", "", long]
    out = tagger.tag(texts)
    assert len(out) == 3 and out[1] == []
    for text, spans in zip(texts, out):
        for sp in spans:
            assert 0 <= sp.start < sp.end <= len(text) and 0.0 <= sp.score <= 1.0
            assert text[sp.start:sp.end] == text[sp.start:sp.end].strip()
    # windowing never loses the tail: with a model that calls every word piece B-<type>, every word of
    # the long text (windowed: over max_length pieces) is a span, the last word too
    enc = tagger.tokenizer(long, add_special_tokens=False)
    assert len(enc["input_ids"]) > tagger.max_length
    b = next(i for i, name in tagger.id2label.items() if name.startswith("B-"))
    monkeypatch.setattr(tagger, "_forward", lambda ids, windows, shapes=None: [
        (np.full(w.end - w.start, b), np.ones(w.end - w.start, dtype=np.float32)) for w in windows])
    spans = tagger.tag([long])[0]
    words = [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", long)]
    assert [(sp.start, sp.end) for sp in spans] == words and spans[-1].end == len(long)


def test_artifact_manifest_and_refusals(tiny_model, tmp_path):
    m = read_manifest(tiny_model)
    assert m["task"] == "ner" and m["model_id"].startswith("tiny-bert-ner-") and m["labels"][0] == "O"
    assert stage_artifact(str(tiny_model)) == tiny_model
    from pipeline.errors import ModelError

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    (broken / "pytorch_model.bin").write_bytes(b"pickle!")
    with pytest.raises(ModelError, match="safetensors"):
        stage_artifact(str(broken))
    with pytest.raises(ModelError, match="does not exist"):
        stage_artifact(str(tmp_path / "missing"))


def _reference_spans(tokenizer, model, text: str) -> set[tuple[int, int, str]]:
    """The straightforward decoder: one sentence, one forward pass, argmax per piece; a word takes its
    first piece's label; B-X opens, I-X continues an open X, anything else closes (an I-X that does
    not continue an X opens one)."""
    import torch

    enc = tokenizer(text, return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    with torch.inference_mode():
        pred = model(**enc).logits[0].argmax(-1).tolist()
    words: dict[int, list] = {}
    for t, w in enumerate(enc.word_ids(0)):
        if w is None:
            continue
        if w not in words:
            words[w] = [offsets[t][0], offsets[t][1], model.config.id2label[pred[t]]]
        words[w][1] = max(words[w][1], offsets[t][1])
    out, cur = set(), None
    for start, end, label in (words[w] for w in sorted(words)):
        kind = label[2:] if label != "O" else None
        if label.startswith("I-") and cur and cur[2] == kind:
            cur[1] = end
            continue
        if cur:
            out.add(tuple(cur))
        cur = [start, end, kind] if kind else None
    if cur:
        out.add(tuple(cur))
    return out


def test_batched_tagging_equals_the_reference_decoder_on_every_test_sentence(tiny_model):
    """Every BC5CDR and NCBI-disease test sentence: length-sorted token-budget batches with dynamic
    padding give exactly the spans of decoding each sentence alone (fp32, no windows needed)."""
    from pipeline.parse.pubtator import read_pubtator
    from tests.conftest import DATA
    from pipeline.parse.pubtator import doc_sentences

    texts = [t for rel in ("bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", "ncbi_disease/pubtator/NCBItestset_corpus.txt")
             for d in read_pubtator(DATA / rel) for _, t in doc_sentences(d)]
    assert len(texts) > 5000
    tagger = NerTagger.load(tiny_model, max_length=512, max_tokens_per_batch=4096, precision="fp32")
    ours = tagger.tag(texts)
    n_spans = 0
    for text, spans in zip(texts, ours):
        ref = _reference_spans(tagger.tokenizer, tagger.model, text)
        assert {(s.start, s.end, s.type) for s in spans} == ref, text
        n_spans += len(ref)
    assert n_spans > 1000  # random weights: plenty of entities, I- after O, sub-word starts


def test_int8_quantizes_the_encoder_on_request_and_stays_close_to_fp32(tiny_model, monkeypatch):
    """``int8``: every Linear of the NER encoder dynamically quantized (the head not), the tagger says
    so, its spans are mostly fp32's; ``auto`` means bf16 on a CPU with fast bf16 and fp32 on one
    without (int8 only for a model whose int8 calibration says it pays); a GPU refuses int8;
    training refuses it."""
    import torch

    from pipeline.errors import ConfigError
    from workers.inference import device as dev
    from workers.inference.probe import precision_here
    from workers.training.loop import Hyperparams

    texts = ["Cisplatin induced nephrotoxicity in rats treated with dexamethasone ."] * 3 + [
        "Severe hypotension followed the infusion of magnesium sulfate in two patients ."]
    fp32 = NerTagger.load(tiny_model, precision="fp32")
    int8 = NerTagger.load(tiny_model, precision="int8")
    assert int8.precision == "int8" and fp32.precision == "fp32"
    encoder = [type(m).__module__ for name, m in int8.model.named_modules()
               if name.startswith("bert.") and type(m).__name__ == "Linear"]
    assert len(encoder) >= 6 and all("quantized.dynamic" in k for k in encoder)  # every encoder Linear: int8
    assert type(int8.model.classifier) is torch.nn.Linear  # the head stays fp32
    assert not any("quantized" in type(m).__module__ for m in fp32.model.modules())  # the fp32 model is untouched
    a = [{(s.start, s.end, s.type) for s in x} for x in fp32.tag(texts)]
    b = [{(s.start, s.end, s.type) for s in x} for x in int8.tag(texts)]
    assert sum(len(x) for x in a) and sum(len(x & y) for x, y in zip(a, b)) >= 0.8 * sum(len(x) for x in a)

    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda: False)
    # auto never picks int8 by itself (it costs ~1 F1 point), a setting of int8 reaches the actors
    assert dev.ner_precision_name("auto", "cpu") == precision_here("auto", False) == "fp32"
    assert precision_here("int8", False) == "int8" and dev.resolve_precision("int8", "cpu") is None
    assert NerTagger.load(tiny_model).precision == "fp32"
    # ...unless the model carries an int8 calibration whose dev F1 says it pays
    paying = {"calibration_int8": {"auto": True}}
    assert dev.ner_precision_name("auto", "cpu", paying) == precision_here("auto", False, paying) == "int8"
    assert dev.ner_precision_name("auto", "cpu", {"calibration_int8": {"auto": False}}) == "fp32"
    assert dev.ner_precision_name("fp32", "cpu", paying) == "fp32"  # a setting is what it says
    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda: True)
    assert dev.ner_precision_name("auto", "cpu", paying) == "bf16"  # bf16 is faster still where it is fast
    assert dev.ner_precision_name("auto", "cpu") == "bf16" and NerTagger.load(tiny_model).precision == "bf16"
    with pytest.raises(ValueError, match="CPUs only"):
        dev.ner_precision_name("int8", "cuda")
    with pytest.raises(ConfigError, match="inference precision"):
        Hyperparams(precision="int8")
    assert torch.backends.quantized.engine  # a quantized engine is there to run it
