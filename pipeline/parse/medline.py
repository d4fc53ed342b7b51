"""Streaming MEDLINE/PubMed XML parser, record by record.

Handles PubmedArticleSet files (baseline and daily updates, 2019-2025 DTDs) and the pre-2017
MedlineCitationSet format, plain or gzip-compressed; memory holds one record at a time, whatever the
file.

Output of :func:`iter_medline`: a stream of ``("document", Document)``, ``("deletion", row)`` and
``("reject", row)`` events. The file is cut into records before any XML parsing
(``pipeline.parse.records``), so a bad record — not well-formed, an invalid character reference,
invalid UTF-8, too large, or failing the checks below — becomes one reject with a reason and the
rest of the file is still parsed. A file cut short raises :class:`ShardError` after its complete
records were yielded (the caller decides whether a partial file may be used; the pipeline does not).
"""

from __future__ import annotations

import re
from typing import IO, Iterator

from lxml import etree

from pipeline.errors import RecordError
from pipeline.parse import records
from pipeline.parse.document import (Author, Document, MeshHeading, MeshQualifier, Passage, document_text,
                                     layout_passages)

__all__ = ["Author", "Document", "Passage", "document_text", "layout_passages", "iter_medline",
           "parse_citation", "parse_book", "sequence_from_name"]

MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_SEQ_RE = re.compile(r"(?:pubmed|medline)(\d{2})n(\d{4})", re.IGNORECASE)
_YEAR_RE = re.compile(r"(1[89]\d\d|20\d\d)")


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
    if len(el):  # inline markup to flatten
        return "".join(el.itertext()).strip()
    t = el.text
    return t.strip() if t else ""


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


def _date_from_parts(parts: dict[str, str]) -> tuple[int | None, str | None]:
    """PubDate's children by name -> (year, date): 2019-03-15, 2019-03, '1990 Spring', or a
    MedlineDate kept verbatim ('1998 Dec-1999 Jan') with the first year in it."""
    year_s = parts.get("Year", "")
    if year_s.isdigit():
        year = int(year_s)
        month = _month(parts.get("Month"))
        day_s = parts.get("Day", "")
        if month and day_s.isdigit():
            return year, f"{year:04d}-{month:02d}-{int(day_s):02d}"
        if month:
            return year, f"{year:04d}-{month:02d}"
        season = parts.get("Season")
        return year, f"{year:04d} {season}" if season else f"{year:04d}"
    medline_date = parts.get("MedlineDate")
    if medline_date:
        m = _YEAR_RE.search(medline_date)
        return (int(m.group(1)) if m else None), medline_date
    return None, None


def _mesh_list(mesh_list) -> list[MeshHeading]:
    """MeSH headings with their qualifiers. A heading is major if its descriptor or any of its
    qualifiers is starred (PubMed's definition); each qualifier keeps its own flag."""
    if mesh_list is None:
        return []
    out = []
    for heading in mesh_list:
        desc = None
        qualifiers = []
        for ch in heading:
            if ch.tag == "DescriptorName":
                desc = ch
            elif ch.tag == "QualifierName":
                qualifiers.append(MeshQualifier(ch.get("UI"), (ch.text or "").strip(), ch.get("MajorTopicYN") == "Y"))
        if desc is None:
            continue
        major = desc.get("MajorTopicYN") == "Y" or any(q.major for q in qualifiers)
        out.append(MeshHeading(desc.get("UI"), (desc.text or "").strip(), major, qualifiers))
    return out


def _orcid(value: str) -> str:
    """'http://orcid.org/0000-0002-1825-0097' or '0000000218250097' -> '0000-0002-1825-0097'."""
    v = value.strip().rstrip("/").rsplit("/", 1)[-1].replace("-", "")
    return "-".join(v[i:i + 4] for i in range(0, 16, 4)) if len(v) == 16 else value.strip()


def _authors(author_list) -> list[Author]:
    """Authors in order, each with every affiliation (one pass over each Author's children; name parts
    are leaves, so their text is read directly)."""
    if author_list is None:
        return []
    out = []
    for a in author_list:
        if a.tag != "Author":
            continue
        last = fore = initials = collective = orcid = None
        affiliations: list[str] = []
        for ch in a:
            tag = ch.tag
            if tag == "LastName":
                last = (ch.text or "").strip() or None
            elif tag == "ForeName":
                fore = (ch.text or "").strip() or None
            elif tag == "Initials":
                initials = (ch.text or "").strip() or None
            elif tag == "AffiliationInfo" or tag == "Affiliation":  # 2013-2014 files: Affiliation under Author
                for x in (ch if tag == "AffiliationInfo" else (ch,)):
                    if x.tag == "Affiliation":
                        t = _text(x) if len(x) else (x.text or "").strip()
                        if t and t not in affiliations:
                            affiliations.append(t)
            elif tag == "CollectiveName":
                collective = _text(ch) or None
            elif tag == "Identifier" and orcid is None and ch.text and (ch.get("Source") or "").upper() == "ORCID":
                orcid = _orcid(ch.text)
        out.append(Author(last, fore, initials, collective, orcid, affiliations))
    return out


def _abstract_parts(abstract, kind: str = "abstract", language: str | None = None) -> list[Passage]:
    """AbstractText elements -> passages. Structured sections keep Label and NlmCategory."""
    if abstract is None:
        return []
    sections = abstract.findall("AbstractText")
    structured = len(sections) > 1 or any(s.get("Label") or s.get("NlmCategory") for s in sections)
    out = []
    for s in sections:
        text = _text(s)
        if not text:
            continue
        label, category = s.get("Label"), s.get("NlmCategory")
        if structured and kind == "abstract":
            out.append(Passage("abstract_section", label or category, 0, text, category, language))
        else:
            out.append(Passage(kind, label, 0, text, category, language))
    return out


def _date_ymd(el) -> str | None:
    if el is None:
        return None
    parts = {ch.tag: (ch.text or "").strip() for ch in el}
    y, m, d = parts.get("Year"), _month(parts.get("Month")), parts.get("Day")
    if not (y and y.isdigit()):
        return None
    if m and d and d.isdigit():
        return f"{int(y):04d}-{m:02d}-{int(d):02d}"
    return f"{int(y):04d}-{m:02d}" if m else y


def _pmid(pmid_el, where: str) -> tuple[int, int]:
    """A <PMID Version="n"> element -> (pmid, version). Raises RecordError."""
    pmid_s = (pmid_el.text or "").strip() if pmid_el is not None else ""
    if not pmid_s.isdigit():
        raise RecordError("missing or invalid PMID", f"{where} PMID element holds {pmid_s!r}; expected digits")
    version_s = pmid_el.get("Version", "1")
    return int(pmid_s), int(version_s) if version_s.isdigit() else 1


def _ids(article_ids) -> dict[str, str]:
    """ArticleId elements -> {id type (lower case): first value}."""
    ids: dict[str, str] = {}
    for aid in article_ids:
        kind = (aid.get("IdType") or "").lower()
        if kind and kind not in ids and aid.text:
            ids[kind] = aid.text.strip()
    return ids


def _leaf(el) -> str:
    t = el.text
    return t.strip() if t else ""


_CITATION_SINGLES = frozenset({"PMID", "Article", "MeshHeadingList"})
_ARTICLE_SINGLES = frozenset({"ArticleTitle", "VernacularTitle", "Abstract", "AuthorList", "Affiliation", "Journal",
                              "ArticleDate"})


def _first_children(el, tags) -> dict:
    """The first child of ``el`` with each of ``tags``, by tag."""
    first: dict = {}
    for ch in el:
        if ch.tag in tags:
            first.setdefault(ch.tag, ch)
    return first


def parse_citation(record, position: int) -> Document:
    """One PubmedArticle (or legacy MedlineCitation) element -> Document. Raises RecordError.

    One pass over the children of MedlineCitation, Article, Journal and PubmedData, dispatching on
    the tag (the first occurrence of a singleton element wins, as ``find`` would give): path lookups
    per field cost more than the walk.
    """
    if record.tag == "MedlineCitation":
        citation, pubmed_data = record, None
    else:
        parts = _first_children(record, {"MedlineCitation", "PubmedData"})
        citation, pubmed_data = parts.get("MedlineCitation"), parts.get("PubmedData")
    if citation is None:
        raise RecordError("missing MedlineCitation", f"<{record.tag}> has no MedlineCitation element")

    other_abstracts = []
    keywords: list[str] = []
    first = {}
    for ch in citation:
        tag = ch.tag
        if tag in _CITATION_SINGLES:
            first.setdefault(tag, ch)
        elif tag == "OtherAbstract":
            other_abstracts.append(ch)
        elif tag == "KeywordList":
            for k in ch:
                if k.tag == "Keyword":
                    t = _text(k)
                    if t:
                        keywords.append(t)
    pmid, pmid_version = _pmid(first.get("PMID"), "MedlineCitation")
    article, mesh_list = first.get("Article"), first.get("MeshHeadingList")
    if article is None:
        raise RecordError("missing Article", "MedlineCitation has no Article element", pmid=pmid)

    languages: list[str] = []
    pub_types: list[str] = []
    eloc_doi = None
    first = {}
    for ch in article:
        tag = ch.tag
        if tag in _ARTICLE_SINGLES:
            first.setdefault(tag, ch)
        elif tag == "Language":  # (#PCDATA)
            t = _leaf(ch)
            if t:
                languages.append(t)
        elif tag == "PublicationTypeList":
            for pt in ch:
                if pt.tag == "PublicationType":  # (#PCDATA)
                    t = _leaf(pt)
                    if t:
                        pub_types.append(t)
        elif tag == "ELocationID":
            if eloc_doi is None and ch.get("EIdType") == "doi" and ch.text:
                eloc_doi = ch.text.strip()
    title_el, vernacular_el, abstract = first.get("ArticleTitle"), first.get("VernacularTitle"), first.get("Abstract")
    author_list, legacy_aff_el = first.get("AuthorList"), first.get("Affiliation")
    journal_el, article_date_el = first.get("Journal"), first.get("ArticleDate")

    vernacular = (_text(vernacular_el) or None) if vernacular_el is not None else None
    title = (_text(title_el) if title_el is not None else "") or vernacular or ""
    parts = [Passage("title", None, 0, title)]
    if abstract is not None:
        parts += _abstract_parts(abstract)
    for other in other_abstracts:
        parts += _abstract_parts(other, "other_abstract", other.get("Language") or "eng")
    if not title and len(parts) == 1:
        raise RecordError("no text", "record has neither a title nor an abstract", pmid=pmid)

    ids: dict[str, str] = {}
    ref_pmids: list[int] = []
    if pubmed_data is not None:
        for ch in pubmed_data:
            if ch.tag == "ArticleIdList":
                for kind, value in _ids(ch).items():
                    ids.setdefault(kind, value)
            elif ch.tag == "ReferenceList":
                for ref in ch.iterfind("Reference/ArticleIdList/ArticleId"):
                    if ref.get("IdType") == "pubmed" and ref.text and ref.text.strip().isdigit():
                        ref_pmids.append(int(ref.text.strip()))
    doi = ids.get("doi") or eloc_doi

    authors = _authors(author_list)
    if legacy_aff_el is not None and authors and not authors[0].affiliations:  # pre-2014: the first author's
        legacy = _text(legacy_aff_el)
        if legacy:
            authors[0].affiliations.append(legacy)

    journal = journal_iso = None
    year = date = None
    if journal_el is not None:
        for ch in journal_el:
            tag = ch.tag
            if tag == "Title":
                journal = journal if journal is not None else (_text(ch) or None)
            elif tag == "ISOAbbreviation":
                journal_iso = journal_iso if journal_iso is not None else (_text(ch) or None)
            elif tag == "JournalIssue" and date is None and year is None:
                for pd in ch:
                    if pd.tag == "PubDate":
                        year, date = _date_from_parts({x.tag: _leaf(x) for x in pd})
                        break
    article_date = _date_ymd(article_date_el)
    if year is None and date is None and article_date:
        year, date = int(article_date[:4]), article_date[:4]
    return Document(
        doc_id=f"pmid:{pmid}",
        pmid=pmid,
        pmid_version=pmid_version,
        pmcid=ids.get("pmc"),
        doi=doi,
        title=title,
        journal=journal,
        pub_year=year,
        pub_date=date,
        languages=languages,
        pub_types=pub_types,
        mesh=_mesh_list(mesh_list),
        keywords=keywords,
        passages=layout_passages(parts),
        position=position,
        vernacular_title=vernacular,
        journal_iso=journal_iso,
        article_date=article_date,
        authors=authors,
        ref_pmids=ref_pmids,
    )


def parse_book(record, position: int) -> Document:
    """One PubmedBookArticle (NCBI Bookshelf chapter or book) -> Document with record_type 'book'."""
    book_doc = record.find("BookDocument")
    if book_doc is None:
        raise RecordError("book record", "PubmedBookArticle has no BookDocument element")
    pmid, pmid_version = _pmid(book_doc.find("PMID"), "BookDocument")
    book = book_doc.find("Book")
    book_title = _child_text(book, "BookTitle") if book is not None else None
    vernacular = _child_text(book_doc, "VernacularTitle")
    title = _child_text(book_doc, "ArticleTitle") or book_title or vernacular or ""
    parts = [Passage("title", None, 0, title)] + _abstract_parts(book_doc.find("Abstract"))
    if not title and len(parts) == 1:
        raise RecordError("book record", "book record has neither a title nor an abstract", pmid=pmid)
    ids = _ids(book_doc.iterfind("ArticleIdList/ArticleId"))
    authors = []
    for author_list in book_doc.iterfind("AuthorList"):
        if author_list.get("Type", "authors") == "authors":
            authors += _authors(author_list)
    if not authors and book is not None:
        for author_list in book.iterfind("AuthorList"):
            if author_list.get("Type", "authors") == "authors":
                authors += _authors(author_list)
    pub_date = book.find("PubDate") if book is not None else None
    year_s = _child_text(pub_date, "Year") if pub_date is not None else None
    return Document(
        doc_id=f"pmid:{pmid}", pmid=pmid, pmid_version=pmid_version, pmcid=ids.get("pmc"),
        doi=ids.get("doi"), title=title, journal=book_title,
        pub_year=int(year_s) if year_s and year_s.isdigit() else None,
        pub_date=_date_ymd(pub_date) or _child_text(pub_date, "MedlineDate") if pub_date is not None else None,
        languages=[t for t in (_text(x) for x in book_doc.iterfind("Language")) if t],
        pub_types=[t for t in (_text(x) for x in book_doc.iterfind("PublicationType")) if t],
        keywords=[t for t in (_text(k) for k in book_doc.iterfind("KeywordList/Keyword")) if t],
        passages=layout_passages(parts), position=position, record_type="book",
        vernacular_title=vernacular, authors=authors,
    )


RECORD_TAGS = ("PubmedArticle", "MedlineCitation", "PubmedBookArticle", "DeleteCitation", "DeleteDocument")


# the records of each MEDLINE set root (pipeline.parse.records cuts the file at them)
SET_RECORDS = {"PubmedArticleSet": ("PubmedArticle", "PubmedBookArticle", "DeleteCitation", "DeleteDocument"),
               "MedlineCitationSet": ("MedlineCitation", "DeleteCitation"),
               "PubmedBookArticleSet": ("PubmedBookArticle", "DeleteDocument")}


def iter_medline(stream: IO[bytes], source_file: str,
                 max_record_bytes: int = records.MAX_RECORD_BYTES) -> Iterator[tuple[str, object]]:
    """Stream events out of one MEDLINE XML file (already decompressed).

    The file is cut into its records (``pipeline.parse.records``) and each is parsed alone: a record
    that is not well-formed (or has an invalid character reference, invalid UTF-8, or is too large) is
    one reject with its position, byte offset and the parser's reason, and the other records are
    parsed. Elements under the root that are not records are rejects too. A file cut short raises
    ShardError after its complete records were yielded (the pipeline then fails the file whole).
    """
    position = 0
    encoding = None
    for kind, piece in records.split(stream, source_file, SET_RECORDS, max_record_bytes):
        if kind == "root":
            encoding = piece[1]
            continue
        tag = piece.tag
        if tag not in RECORD_TAGS:
            what = f"unexpected element <{tag}>" if tag else f"unexpected text {piece.data[:60]!r}"
            yield "reject", {"position": position, "pmid": None, "reason": "unknown record",
                             "detail": f"{what} under the root at byte {piece.offset}"}
            position += 1
            continue
        deletion = tag in ("DeleteCitation", "DeleteDocument")
        try:
            if piece.problem:
                raise RecordError("malformed record", f"{piece.problem} (byte {piece.offset})", _pmid_hint(piece.data))
            try:
                el = records.parse_piece(piece, encoding)
            except (etree.XMLSyntaxError, ValueError) as exc:
                raise RecordError("malformed record", f"<{tag}> at byte {piece.offset} is not well-formed XML: {exc}",
                                  _pmid_hint(piece.data)) from None
            if el.tag != tag:  # <PubmedArticle xmlns="..."> is not MEDLINE's element, whatever it holds
                raise RecordError("unknown record", f"<{tag}> at byte {piece.offset} is in namespace "
                                  f"{etree.QName(el).namespace!r}; MEDLINE elements are in no namespace",
                                  _pmid_hint(piece.data))
            if tag == "PubmedArticle" or tag == "MedlineCitation":
                yield "document", parse_citation(el, position)
            elif tag == "PubmedBookArticle":
                yield "document", parse_book(el, position)
            else:  # DeleteCitation / DeleteDocument
                for p in el.iterfind("PMID"):
                    if p.text and p.text.strip().isdigit():
                        yield "deletion", {"pmid": int(p.text.strip())}
        except RecordError as err:
            yield "reject", {"position": position, "pmid": err.pmid, "reason": err.reason, "detail": err.detail}
        except Exception as exc:  # a parser bug must not take the file down: record it, keep going
            yield "reject", {"position": position, "pmid": None, "reason": "parser error",
                             "detail": f"{type(exc).__name__}: {exc}"}
        if not deletion:
            position += 1


_PMID_HINT = re.compile(rb"<PMID[^>]*>\s*(\d{1,9})\s*</PMID>")


def _pmid_hint(data: bytes | None) -> int | None:
    """The PMID a broken record names, when its bytes still show one (for the reject row)."""
    m = _PMID_HINT.search(data or b"")
    return int(m.group(1)) if m else None
