"""Sentence splitting for biomedical prose, with character offsets.

A candidate boundary is a '.', '!' or '?' (plus closing quotes/brackets) followed by whitespace. What
comes next decides:

- an upper-case letter, an opening bracket or quote: a boundary, unless the word before the period is
  a known abbreviation (e.g., i.e., et al., Fig., Eq., vs., approx., cf., sp., spp., Dr., ...), a single
  letter (the initial in E. coli, J. Smith; HGVS c./p./g.) or a short dotted form (U.S., Ph.D.);
- a digit: a boundary only after a word (never inside a number, a p-value or a range: "0. 01",
  "P =. 03", "3. 5. 3. 1" in pre-tokenized corpora; "Fig. 2");
- a lower-case word: a boundary only when that word is a mixed-case biomedical name (mtDNA, cDNA,
  p53, beta-Glucuronidase) and the word before is an ordinary word, not an abbreviation.

A token with a digit before the period (K695R., C282Y.) is never an initial. ``split_spans(text)``
returns (start, end) pairs with ``text[start:end]`` the stripped sentence; every non-space character
of ``text`` lies in exactly one sentence.
"""

from __future__ import annotations

import re

ABBREVIATIONS = frozenset(
    """
    e.g i.e et al etc vs v cf approx ca fig figs eq eqs ref refs no nos vol vols pp p
    sp spp ssp subsp var cv dr mr mrs ms prof st resp incl viz nl
    jan feb mar apr jun jul aug sep sept oct nov dec
    """.split()
)
# journal-citation abbreviations ("J. Biol. Chem. 273", "Proc. Natl. Acad. Sci."): abbreviations only
# when capitalized, so a sentence can still end in a lower-case "...the cell."
CITATION_ABBREVIATIONS = frozenset(
    """
    j biol chem proc natl acad sci hum mol genet am med assoc nat res clin invest biochem biophys
    commun lett pharmacol exp ther int rev soc univ dept inst immunol neurol physiol opin engl
    neurosci neurobiol dis pharm co
    """.split()
)
_DOTTED = re.compile(r"[A-Za-z]{1,2}(?:\.[A-Za-z]{1,2})+\.?")
_NAME_NUMBER = re.compile(r"[a-z]+\d")
_INITIAL = re.compile(r"[A-Z]\.")
_WORD = re.compile(r"[\w-]+")
_NUMBER = re.compile(r"[\d.,]+")
_CANDIDATE = re.compile(r"[.!?]+[\"')\]]*(?=\s+(\S+))")
_TOKEN_BEFORE = re.compile(r"(\S*)$")
_OPENERS = "\"'([\u201c\u2018"


def _token_before(text: str, dot: int) -> str:
    """The whitespace-delimited word ending at ``dot`` (at most 40 characters), opening brackets off."""
    lo = max(0, dot - 40)
    start = max(text.rfind(" ", lo, dot), text.rfind("\n", lo, dot), text.rfind("\t", lo, dot)) + 1
    return text[max(start, lo):dot].lstrip(_OPENERS)


def _is_initial(text: str, dot: int, token: str, nxt: str) -> bool:
    """A single capital before the period is a person's initial when it follows another initial, a
    comma (Smith, J.), "and"/"by", an opening bracket or the start of the text, or when another initial
    follows (J. B. Smith, S. D.); after an ordinary word it ends a sentence ("vitamin E.", "G6PD A.")."""
    if _INITIAL.match(nxt):
        return True
    before = text[:dot - len(token)].rstrip()
    if not before or before[-1] in ",([;":
        return True
    prev = _TOKEN_BEFORE.search(before, max(0, len(before) - 40)).group(1).lstrip(_OPENERS)
    return bool(_INITIAL.fullmatch(prev)) or prev.lower() in ("and", "by", "dr.", "prof.", "mr.", "mrs.", "ms.")


def _after_number(text: str, dot: int, token: str) -> bool:
    """'24 h.', '15 y.', '2.8 g.': a unit after a number."""
    before = text[:dot - len(token)].rstrip()
    m = _TOKEN_BEFORE.search(before, max(0, len(before) - 40))
    return bool(m and _NUMBER.fullmatch(m.group(1)))


def _is_abbreviation(text: str, dot: int, token: str, nxt: str = "") -> bool:
    """Is ``token`` (the text before the period at ``dot``) an abbreviation or an initial?"""
    if not token or token[-1] in ")]":  # "(i.p.)." or "(EMG).": the period closes a sentence
        return False
    if len(token) > 1 and token.isupper():  # an acronym (CA, MR, DNA), not "ca." or "Mr."
        return False
    lower = token.lower().rstrip(".")
    if lower in ABBREVIATIONS or (token[0].isupper() and lower in CITATION_ABBREVIATIONS):
        return True
    if len(token) == 1 and token.isalpha():
        if token.islower():  # HGVS c./p./g. and s. c. never end a sentence; a unit after a number can
            return not (_after_number(text, dot, token) and nxt[:1].isupper())
        return _is_initial(text, dot, token, nxt)
    return bool(_DOTTED.fullmatch(token))  # U.S., e.g., i.p., Ph.D


def _opens_sentence_in_lower_case(word: str) -> bool:
    """mtDNA, cDNA, beta-Glucuronidase, rhIGF-I, p53: names that keep their case at a sentence start."""
    return any(ch.isupper() for ch in word[1:]) or bool(_NAME_NUMBER.match(word))


def _is_boundary(text: str, m: re.Match) -> bool:
    dot = m.start()
    nxt = m.group(1)
    first = nxt[0]
    if text[dot] != ".":  # ! and ? end a sentence before anything that can open one
        return first.isupper() or first.isdigit() or first in _OPENERS
    token = _token_before(text, dot)
    if first.isdigit():  # never inside a number: "0. 01", "P =. 03", "3. 5. 3. 1", "approximately. 03"
        return first != "0" and dot > 0 and (text[dot - 1].isalpha() or text[dot - 1] in ")]%") and \
            not _is_abbreviation(text, dot, token, nxt)
    if first.isupper() or first in _OPENERS:
        return not _is_abbreviation(text, dot, token, nxt)
    if first.islower():
        word = _WORD.match(nxt)
        return bool(word) and _opens_sentence_in_lower_case(word.group(0)) and len(token.rstrip(")]")) > 1 \
            and not _is_abbreviation(text, dot, token, nxt)
    return False


def split_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    n = len(text)
    start = 0
    while start < n and text[start].isspace():
        start += 1
    body = text.rstrip(" .!?)]")
    if "." not in body and "?" not in body and "!" not in body:
        # terminal punctuation only at the very end (most titles): no candidate can open a sentence
        end = n
        while end > start and text[end - 1].isspace():
            end -= 1
        return [(start, end)] if end > start else []
    is_boundary = _is_boundary
    abbreviations = ABBREVIATIONS
    for m in _CANDIDATE.finditer(text):
        dot = m.start()
        if text[dot] == "." and text[m.start(1)].isupper():
            # the common case, decided inline: "... word. Next" after a plain lower-case word
            token = text[text.rfind(" ", dot - 40 if dot > 40 else 0, dot) + 1:dot]
            if len(token) > 2 and token.isalpha() and token.islower():
                if token in abbreviations:
                    continue
            elif not is_boundary(text, m):
                continue
        elif not is_boundary(text, m):
            continue
        if m.end() > start:
            spans.append((start, m.end()))
        start = m.start(1)  # the next sentence opens at the next non-space character
    end = n
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))
    return spans


def split_sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_spans(text)]


def sentence_numbers(text: str, starts: list[int]) -> list[int]:
    """The sentence (0-based, as ``split_spans`` splits ``text``) that each character offset falls in."""
    from bisect import bisect_right

    opens = [s for s, _ in split_spans(text)]
    return [max(bisect_right(opens, start) - 1, 0) for start in starts]
