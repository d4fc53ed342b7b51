"""The parsed document every parser produces (MEDLINE, PMC JATS), and its BioC text layout.

A document is a list of passages in reading order. Each passage has a document-level character
offset; the document text is the passages joined at those offsets with single spaces between them
(title at 0, next passage at len(title) + 1: PubTator's convention, so gold offsets compare directly).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass(slots=True)
class Passage:
    kind: str                     # title | abstract | abstract_section | other_abstract | section_title |
                                  # paragraph | fig_caption | table_caption | table_footnote | ...
    label: str | None             # section label/title: METHODS, "Results", "Figure 2"
    offset: int
    text: str
    category: str | None = None   # NlmCategory (MEDLINE) or sec-type (JATS): BACKGROUND, methods, ...
    language: str | None = None   # only where it differs from the document's (OtherAbstract, trans-abstract)


class Author(NamedTuple):
    """One author; a tuple in the order of schemas.AUTHOR, so Arrow takes it as the struct directly."""

    last_name: str | None
    fore_name: str | None
    initials: str | None
    collective_name: str | None
    orcid: str | None
    affiliations: list[str]        # every affiliation, in order


class MeshQualifier(NamedTuple):
    ui: str | None
    name: str
    major: bool


class MeshHeading(NamedTuple):
    """A MeSH heading in the order of schemas.MESH_HEADING."""

    ui: str | None
    name: str
    major: bool                    # the descriptor or any qualifier starred (PubMed's major topic)
    qualifiers: list[MeshQualifier]


@dataclass(slots=True)
class Document:
    doc_id: str
    pmid: int | None
    pmid_version: int | None
    pmcid: str | None
    doi: str | None
    title: str
    journal: str | None
    pub_year: int | None
    pub_date: str | None
    languages: list[str] = field(default_factory=list)
    pub_types: list[str] = field(default_factory=list)
    mesh: list[MeshHeading] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    source: str = "medline"
    position: int = 0
    record_type: str = "article"          # article | book
    vernacular_title: str | None = None
    journal_iso: str | None = None
    article_date: str | None = None       # electronic publication date, YYYY-MM-DD
    authors: list[Author] = field(default_factory=list)
    ref_pmids: list[int] = field(default_factory=list)
    source_member: str | None = None      # the member of a .tar.gz package this came from

    @property
    def text(self) -> str:
        return document_text(self.passages)

    def text_sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def text_at_offsets(pieces) -> str:
    """``(offset, text)`` pieces in offset order joined at their document-level offsets, gaps as spaces
    (BioC convention): the one way pubmine rebuilds a document's text, from passages (parsing, export)
    or from sentences (the document stage)."""
    out: list[str] = []
    cursor = 0
    for offset, text in pieces:
        if offset < cursor:
            raise ValueError(f"passage offsets overlap at {offset} (< {cursor})")
        out.append(" " * (offset - cursor))
        out.append(text)
        cursor = offset + len(text)
    return "".join(out)


def document_text(passages: list[Passage]) -> str:
    """Passages joined at their document-level offsets; gaps are spaces (BioC convention)."""
    return text_at_offsets((p.offset, p.text) for p in passages)


def layout_passages(parts: list) -> list[Passage]:
    """Passages (offset ignored) or (kind, label, text) tuples in reading order -> passages at offsets
    separated by one space, the first at 0."""
    passages: list[Passage] = []
    offset = 0
    for part in parts:
        p = Passage(part[0], part[1], 0, part[2]) if isinstance(part, tuple) else part
        p.offset = offset
        passages.append(p)
        offset += len(p.text) + 1
    return passages
