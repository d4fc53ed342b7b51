"""Word pieces -> words -> BIO -> character spans.

A word is what the tokenizer's pre-tokenizer calls a word (BERT: split on whitespace and
punctuation). The model's label for a word is the label of its first word piece (that is how it is
trained). Decoding is lenient the usual way: an ``I-X`` after ``O`` or after another type opens a
new ``X`` entity instead of being dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


PER_TYPE = "BIO-per-type"  # label scheme: an O/B/I softmax per entity type (see per_type_labels)


def bio_labels(types) -> list[str]:
    """One softmax over O + B/I x types (label scheme "BIO")."""
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


AIO = "AIO"        # label scheme: PubTator3's AIONER, one softmax under a task tag (see aio_labels)
ALL_TASK = "ALL"   # AIO's task tag for a corpus that annotates every type, and the one inference runs


def aio_labels(types) -> list[str]:
    """Label scheme "AIO" (AIONER's all-in-one tags): one softmax over O, a task's own O per type
    ("O-Gene": not a gene, in a sentence tagged with the Gene task, whatever else it may be) and
    B/I x types. A corpus that annotates one type is trained under that type's tag; one that
    annotates every type (BioRED) under ALL, the tag inference uses."""
    return ["O"] + [f"O-{t}" for t in types] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def scheme_labels(label_scheme: str, types) -> list[str]:
    """The head's labels under a label scheme ("BIO", "BIO-per-type" or "AIO")."""
    return {PER_TYPE: per_type_labels, AIO: aio_labels}.get(label_scheme, bio_labels)(types)


def task_tag_ids(tokenizer, task: str) -> tuple[list[int], list[int]]:
    """The word pieces of AIO's task tags, "<task>" before the sentence and "</task>" after it (plain
    text for the tokenizer, so any BERT-family vocabulary has them and frozen embeddings still serve)."""
    return (tokenizer(f"<{task}>", add_special_tokens=False)["input_ids"],
            tokenizer(f"</{task}>", add_special_tokens=False)["input_ids"])


def per_type_labels(types) -> list[str]:
    """Label scheme "BIO-per-type": the head's outputs, three per type (O/T, B-T, I-T), each triple
    its own softmax; a word may be inside entities of several types at once."""
    return [lab for t in types for lab in (f"O/{t}", f"B-{t}", f"I-{t}")]


# case features: an uncased encoder (BERT uncased, MiniLM) lowercases before it sees a word, so "BRCA1",
# "NaCl" and "Hg" look like "brca1", "nacl" and "hg". A model trained with ``case_features`` gets
# each word's case shape as its token type id (BERT's token-type embedding, resized to the shapes;
# a standard config, loaded by any BERT-family class): every piece of a word carries the word's shape.
CASE_FEATURES = "word-shape-4"
CASE_SHAPES = 4  # 0 no capital, 1 Capitalized (or one capital letter), 2 ALL CAPS, 3 MiXed (mRNA, NaCl, IgG)


def word_shape(word: str) -> int:
    """The case shape of a word (see CASE_SHAPES)."""
    upper = [ch.isupper() for ch in word if ch.isalpha()]
    if not any(upper):
        return 0
    if all(upper):
        return 2 if len(upper) > 1 else 1
    return 1 if upper[0] and not any(upper[1:]) else 3


def piece_shapes(text: str, first: list[int], spans: list[tuple[int, int]], n_pieces: int) -> list[int]:
    """Per word piece, the case shape of the word it belongs to (pieces before the first word: 0)."""
    out = [0] * n_pieces
    bounds = [*first, n_pieces]
    for k, (a, b) in enumerate(spans):
        shape = word_shape(text[a:b])
        if shape:
            out[bounds[k]:bounds[k + 1]] = [shape] * (bounds[k + 1] - bounds[k])
    return out


# span-score calibration (NER manifest "calibration"): per type, Platt scaling fitted on dev at training
CALIBRATION = "platt-logit"


def calibrated(score: float, ab: list[float] | None) -> float:
    """P(correct) of a span from its raw score (the mean of its words' label probabilities):
    sigmoid(a * logit(score) + b); the raw score when the type has no parameters."""
    if not ab:
        return score
    s = min(max(score, 1e-6), 1 - 1e-6)
    t = ab[0] * math.log(s / (1 - s)) + ab[1]
    return 1.0 / (1.0 + math.exp(-min(max(t, -50.0), 50.0)))  # a saturated map is 0 or 1, not an overflow


def can_be_entity(text: str) -> bool:
    """Whether a span can be a name: it has a letter and two characters or more. Measured on the
    training and dev gold of BioRED and BC5CDR (32,327 mentions): none is without a letter ("1",
    "-1", "%"), and 78 (0.24%) are one character (element symbols: K, P, T as Chemical), while the
    default model tagged "1" as Gene 24 times and "P" as Disease 20 times in the MEDLINE sample."""
    stripped = text.strip()
    return len(stripped) >= 2 and any(ch.isalpha() for ch in stripped)


_DANGLING_START, _DANGLING_END = "-/),;:", "-/(,;:"


def trimmed(text: str, start: int, end: int, kind: str) -> tuple[int, int]:
    """A span's offsets without punctuation left dangling at its edges ("MAPK-", "-IgA", "poly (",
    "SKI-1)/", "EBV)-": the tokenizer splits words at punctuation, and the model sometimes takes the
    piece beside a name). A hyphen next to a digit stays (the charge of "O2-"), and variants are left
    alone ("-930G" is a promoter position). Of the 38,259 gold mentions of BioRED train, BC5CDR
    train and dev and NCBI-disease train and dev, it changes 2 ("TGF-beta,", "G6PD A-"), while
    `make demo`'s snapshot held 28 such entities."""
    if kind == "Variant":
        return start, end
    s, e = start, end
    while True:
        before = (s, e)
        while e > s and (text[e - 1].isspace() or (text[e - 1] in _DANGLING_END
                                                   and not (text[e - 1] == "-" and e - 2 >= s and text[e - 2].isdigit()))):
            e -= 1
        while s < e and (text[s].isspace() or (text[s] in _DANGLING_START
                                               and not (text[s] == "-" and s + 1 < e and text[s + 1].isdigit()))):
            s += 1
        inner = text[s:e]
        if inner.endswith(")") and inner.count(")") > inner.count("("):   # a parenthesis it does not open
            e -= 1
        elif inner.startswith("(") and inner.count("(") > inner.count(")"):
            s += 1
        if (s, e) == before:
            return s, e


def one_type_per_span(spans: list[dict]) -> list[dict]:
    """Of the spans a per-type model gives the same characters under several types ("PTEN" as Chemical
    and as Gene), the one with the highest (calibrated) score; order kept. In the training and dev
    gold of BioRED and BC5CDR no span (of 32,327) has two types, while the default model gave 520 in
    the MEDLINE sample. Nested or overlapping spans of different types stay."""
    best: dict[tuple[int, int], dict] = {}
    for sp in spans:
        key = (sp["start"], sp["end"])
        if key not in best or sp["score"] > best[key]["score"]:
            best[key] = sp
    return [sp for sp in spans if best[(sp["start"], sp["end"])] is sp]


@dataclass(frozen=True)
class Span:
    start: int   # character offsets in the decoded text
    end: int
    type: str
    score: float


def word_spans(word_ids: list[int | None], offsets: list[tuple[int, int]]) -> tuple[list[int], list[tuple[int, int]]]:
    """First-piece token index and character span of every word, in order."""
    first_token: list[int] = []
    spans: list[tuple[int, int]] = []
    last = None
    for t, w in enumerate(word_ids):
        if w is None:
            continue
        s, e = offsets[t]
        if w != last:
            first_token.append(t)
            spans.append((s, e))
            last = w
        else:
            spans[-1] = (spans[-1][0], max(spans[-1][1], e))
    return first_token, spans


def decode_bio(labels: list[str], scores: list[float], spans: list[tuple[int, int]]) -> list[Span]:
    """Word labels (B-X/I-X/O), their probabilities, and word spans -> entity spans."""
    out: list[Span] = []
    cur_type: str | None = None
    cur_start = cur_end = 0
    cur_scores: list[float] = []

    def close() -> None:
        if cur_type is not None:
            out.append(Span(cur_start, cur_end, cur_type, sum(cur_scores) / len(cur_scores)))

    for label, score, (s, e) in zip(labels, scores, spans):
        if label == "O" or "-" not in label:
            close()
            cur_type = None
            continue
        prefix, typ = label.split("-", 1)
        if prefix == "B" or typ != cur_type:
            close()
            cur_type, cur_start, cur_end, cur_scores = typ, s, e, [score]
        else:
            cur_end = e
            cur_scores.append(score)
    close()
    return out
