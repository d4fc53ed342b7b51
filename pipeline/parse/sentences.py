"""Sentence splitting for biomedical prose, with character offsets.

A boundary is a '.', '!' or '?' (plus closing quotes/brackets) followed by whitespace and then
something that can open a sentence (an upper-case letter, a digit, an opening bracket or quote).
It is *not* a boundary after a known abbreviation (e.g., i.e., et al., Fig., Eq., vs., approx., cf.,
sp., spp., Dr.), after a single capital initial (E. coli, J. Smith), or inside a number (3.5, p<0.05).

``split_spans(text)`` returns (start, end) pairs with ``text[start:end]`` the stripped sentence; every
non-space character of ``text`` lies in exactly one sentence.
"""

from __future__ import annotations

import re

ABBREVIATIONS = frozenset(
    """
    e.g i.e et al etc vs v cf approx ca fig figs eq eqs ref refs no nos vol vols pp p
    sp spp ssp subsp var cv dr mr mrs ms prof st resp incl e.g.. i.e.. viz al
    jan feb mar apr jun jul aug sep sept oct nov dec
    """.split()
)
# the word just before the period, with its internal dots (e.g, i.e, U.S)
_BOUNDARY = re.compile(r"[.!?]+[\"')\]]*(?=\s+[\"'(\[]*[A-Z0-9])")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")


def _is_abbreviation(text: str, dot: int) -> bool:
    """Is the '.' at ``dot`` the end of an abbreviation or an initial?"""
    if text[dot] != ".":
        return False
    m = _WORD_BEFORE.search(text, max(0, dot - 20), dot)
    if not m:
        return False
    word = m.group(1)
    lower = word.lower().rstrip(".")
    if lower in ABBREVIATIONS:
        return True
    if len(word) == 1 and word.isupper():  # an initial: E. coli, J. Smith
        return True
    if "." in word and len(word) <= 6:  # dotted forms: U.S., i.e., e.g.
        return True
    return False


def split_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        end = m.end()
        first_dot = m.start()
        if _is_abbreviation(text, first_dot):
            continue
        spans.append((start, end))
        start = end
    spans.append((start, len(text)))
    out: list[tuple[int, int]] = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out


def split_sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_spans(text)]
