"""Streaming MEDLINE/PubMed XML parser.

Handles PubmedArticleSet files (baseline and daily updates, 2019-2025 DTDs) and the pre-2017
MedlineCitationSet format, plain or gzip-compressed. The file is read with ``iterparse`` and each
record (a direct child of the root element) is parsed and then cleared, so memory does not grow with
the file.

Output of :func:`iter_medline`: a stream of ``("document", Document)``, ``("deletion", row)`` and
``("reject", row)`` events. A bad record becomes a reject with a reason; the rest of the file is still
parsed. A file that is not well-formed XML raises :class:`ShardError` after the records before the
damage were yielded (the caller decides whether a partial file may be used; the pipeline does not).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import IO, Iterator

from lxml import etree

from pipeline.errors import RecordError, ShardError

MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_SEQ_RE = re.compile(r"(?:pubmed|medline)(\d{2})n(\d{4})", re.IGNORECASE)
_YEAR_RE = re.compile(r"(1[89]\d\d|20\d\d)")


@dataclass
class Passage:
    kind: str
    label: str | None
    offset: int
    text: str


@dataclass
class Document:
    doc_id: str
    pmid: int
    pmid_version: int
    pmcid: str | None
    doi: str | None
    title: str
    journal: str | None
    pub_year: int | None
    pub_date: str | None
    languages: list[str] = field(default_factory=list)
    pub_types: list[str] = field(default_factory=list)
    mesh: list[dict] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    source: str = "medline"
    position: int = 0

    @property
    def text(self) -> str:
        return document_text(self.passages)

    def text_sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def document_text(passages: list[Passage]) -> str:
    """Passages joined at their document-level offsets; gaps are spaces (BioC convention)."""
    out: list[str] = []
    cursor = 0
    for p in passages:
        if p.offset < cursor:
            raise ValueError(f"passage offsets overlap at {p.offset} (< {cursor})")
        out.append(" " * (p.offset - cursor))
        out.append(p.text)
        cursor = p.offset + len(p.text)
    return "".join(out)


def layout_passages(parts: list[tuple[str, str | None, str]]) -> list[Passage]:
    """(kind, label, text) in reading order -> passages at offsets separated by one space.

    Passage 0 (the title) sits at offset 0 and the next starts at len(title) + 1: PubTator's
    convention, so gold PubTator offsets compare directly.
    """
    passages: list[Passage] = []
    offset = 0
    for kind, label, text in parts:
        passages.append(Passage(kind, label, offset, text))
        offset += len(text) + 1
    return passages


def sequence_from_name(name: str) -> int | None:
    """pubmed25n1234.xml.gz -> 251234 (year, then file number): later files sort higher."""
    m = _SEQ_RE.search(name.rsplit("/", 1)[-1])
    return int(m.group(1)) * 10_000 + int(m.group(2)) if m else None


# ---------------------------------------------------------------------------------------------
# small pure extractors


def _text(el) -> str:
    """All text below an element with inline markup (i, sup, sub, b) flattened."""
    if el is None:
        return ""
    return "".join(el.itertext()).strip()


def _child_text(el, path: str) -> str | None:
    found = el.find(path)
    if found is None:
        return None
    t = _text(found)
    return t or None


def _month(value: str | None) -> int | None:
    if not value:
        return None
    v = value.strip().lower()
    if v.isdigit():
        n = int(v)
        return n if 1 <= n <= 12 else None
    return MONTHS.get(v[:3])


def _pub_date(article) -> tuple[int | None, str | None]:
    pub = article.find("Journal/JournalIssue/PubDate")
    if pub is not None:
        medline_date = _child_text(pub, "MedlineDate")
        year_s = _child_text(pub, "Year")
        if year_s and year_s.isdigit():
            year = int(year_s)
            month = _month(_child_text(pub, "Month"))
            day_s = _child_text(pub, "Day")
            if month and day_s and day_s.isdigit():
                return year, f"{year:04d}-{month:02d}-{int(day_s):02d}"
            if month:
                return year, f"{year:04d}-{month:02d}"
            season = _child_text(pub, "Season")
            return year, f"{year:04d} {season}" if season else f"{year:04d}"
        if medline_date:
            m = _YEAR_RE.search(medline_date)
            return (int(m.group(1)) if m else None), medline_date
    art_year = _child_text(article, "ArticleDate/Year")
    if art_year and art_year.isdigit():
        return int(art_year), art_year
    return None, None


def _mesh(citation) -> list[dict]:
    out = []
    for heading in citation.iterfind("MeshHeadingList/MeshHeading"):
        desc = heading.find("DescriptorName")
        if desc is None:
            continue
        major = desc.get("MajorTopicYN") == "Y" or any(
            q.get("MajorTopicYN") == "Y" for q in heading.iterfind("QualifierName")
        )
        out.append({"ui": desc.get("UI"), "name": _text(desc), "major": major})
    return out


def _article_ids(record) -> dict[str, str]:
    ids: dict[str, str] = {}
    for aid in record.iterfind("PubmedData/ArticleIdList/ArticleId"):
        kind = (aid.get("IdType") or "").lower()
        if kind and kind not in ids and aid.text:
            ids[kind] = aid.text.strip()
    return ids


def parse_citation(record, position: int) -> Document:
    """One PubmedArticle (or legacy MedlineCitation) element -> Document. Raises RecordError."""
    citation = record if record.tag == "MedlineCitation" else record.find("MedlineCitation")
    if citation is None:
        raise RecordError("missing MedlineCitation", f"<{record.tag}> has no MedlineCitation element")
    pmid_el = citation.find("PMID")
    pmid_s = (pmid_el.text or "").strip() if pmid_el is not None else ""
    if not pmid_s.isdigit():
        raise RecordError("missing or invalid PMID", f"PMID element holds {pmid_s!r}; expected digits")
    pmid = int(pmid_s)
    version_s = pmid_el.get("Version", "1")
    pmid_version = int(version_s) if version_s.isdigit() else 1

    article = citation.find("Article")
    if article is None:
        raise RecordError("missing Article", "MedlineCitation has no Article element", pmid=pmid)

    title = _text(article.find("ArticleTitle"))
    if not title:
        title = _text(article.find("VernacularTitle"))
    parts: list[tuple[str, str | None, str]] = [("title", None, title)]
    sections = [s for s in article.iterfind("Abstract/AbstractText")]
    structured = len(sections) > 1 or any(s.get("Label") for s in sections)
    for s in sections:
        text = _text(s)
        if not text:
            continue
        if structured:
            label = s.get("Label") or s.get("NlmCategory")
            parts.append(("abstract_section", label.upper() if label else None, text))
        else:
            parts.append(("abstract", None, text))
    if not title and len(parts) == 1:
        raise RecordError("no text", "record has neither a title nor an abstract", pmid=pmid)

    ids = _article_ids(record)
    doi = ids.get("doi")
    if doi is None:
        for eloc in article.iterfind("ELocationID"):
            if eloc.get("EIdType") == "doi" and eloc.text:
                doi = eloc.text.strip()
                break
    pmcid = ids.get("pmc")
    year, date = _pub_date(article)
    return Document(
        doc_id=f"pmid:{pmid}",
        pmid=pmid,
        pmid_version=pmid_version,
        pmcid=pmcid,
        doi=doi,
        title=title,
        journal=_child_text(article, "Journal/Title"),
        pub_year=year,
        pub_date=date,
        languages=[_text(x) for x in article.iterfind("Language") if _text(x)],
        pub_types=[_text(x) for x in article.iterfind("PublicationTypeList/PublicationType") if _text(x)],
        mesh=_mesh(citation),
        keywords=[_text(k) for k in citation.iterfind("KeywordList/Keyword") if _text(k)],
        passages=layout_passages(parts),
        position=position,
    )


RECORD_TAGS = {"PubmedArticle", "MedlineCitation", "PubmedBookArticle", "DeleteCitation", "DeleteDocument"}


def iter_medline(stream: IO[bytes], source_file: str) -> Iterator[tuple[str, object]]:
    """Stream events out of one MEDLINE XML file (already decompressed)."""
    position = 0
    depth = 0
    root = None
    context = etree.iterparse(stream, events=("start", "end"), huge_tree=True, resolve_entities=False,
                              no_network=True, load_dtd=False)
    try:
        for event, el in context:
            if event == "start":
                if depth == 0:
                    root = el
                    if root.tag not in ("PubmedArticleSet", "MedlineCitationSet", "PubmedBookArticleSet"):
                        raise ShardError(
                            source_file,
                            f"root element is <{root.tag}>; expected <PubmedArticleSet> or <MedlineCitationSet>",
                        )
                depth += 1
                continue
            depth -= 1
            if depth != 1:
                continue
            # a direct child of the root: one record
            tag = el.tag
            try:
                if tag in ("PubmedArticle", "MedlineCitation"):
                    yield "document", parse_citation(el, position)
                elif tag in ("DeleteCitation", "DeleteDocument"):
                    for p in el.iterfind("PMID"):
                        if p.text and p.text.strip().isdigit():
                            yield "deletion", {"pmid": int(p.text.strip())}
                elif tag == "PubmedBookArticle":
                    pmid_s = _child_text(el, "BookDocument/PMID")
                    raise RecordError("book record", "PubmedBookArticle records are not parsed yet",
                                      pmid=int(pmid_s) if pmid_s and pmid_s.isdigit() else None)
                elif isinstance(tag, str):
                    raise RecordError("unknown record", f"unexpected element <{tag}> under <{root.tag}>")
            except RecordError as err:
                yield "reject", {"position": position, "pmid": err.pmid, "reason": err.reason, "detail": err.detail}
            except Exception as exc:  # a parser bug must not take the file down: record it, keep going
                yield "reject", {"position": position, "pmid": None, "reason": "parser error",
                                 "detail": f"{type(exc).__name__}: {exc}"}
            if tag in RECORD_TAGS and tag not in ("DeleteCitation", "DeleteDocument"):
                position += 1
            el.clear(keep_tail=False)
            while el.getprevious() is not None:
                del root[0]
    except etree.XMLSyntaxError as exc:
        raise ShardError(source_file, f"XML is not well-formed ({exc}); {position} records came before the damage") from exc
    if root is None:
        raise ShardError(source_file, "file is empty; expected a PubmedArticleSet XML document")
