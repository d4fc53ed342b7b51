"""Word pieces -> words -> BIO -> character spans.

A word is what the tokenizer's pre-tokenizer calls a word (BERT: split on whitespace and
punctuation). The model's label for a word is the label of its first word piece (that is how it is
trained). Decoding is lenient the usual way: an ``I-X`` after ``O`` or after another type opens a
new ``X`` entity instead of being dropped.
"""

from __future__ import annotations

from dataclasses import dataclass


PER_TYPE = "BIO-per-type"  # label scheme: an O/B/I softmax per entity type (see per_type_labels)


def bio_labels(types) -> list[str]:
    """One softmax over O + B/I x types (label scheme "BIO")."""
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def per_type_labels(types) -> list[str]:
    """Label scheme "BIO-per-type": the head's outputs, three per type (O/T, B-T, I-T), each triple
    its own softmax; a word may be inside entities of several types at once."""
    return [lab for t in types for lab in (f"O/{t}", f"B-{t}", f"I-{t}")]


def has_letter_or_digit(text: str) -> bool:
    """Whether a span can be a name: "-", "(" or "%" alone are never entities, whatever the model says
    (the default model called a lone "-" a Gene 29 times in the MEDLINE sample)."""
    return any(ch.isalnum() for ch in text)


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
