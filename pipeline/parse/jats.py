"""PMC full text (JATS / NLM archiving .nxml) -> Document.

What becomes a passage, in reading order (kind, label):
- ``title``; the abstract's paragraphs (``abstract``, or ``abstract_section`` with the section title as
  label when the abstract has sections); other abstracts — author summaries, teasers, graphical
  abstracts (``other_abstract``, label = abstract-type) and translated abstracts (``other_abstract``
  with the passage's ``language``);
- body sections: each section title (``section_title``, label = its number when it has one) and each
  paragraph (``paragraph``, label = the innermost section title, category = the nearest sec-type);
- figure, table and supplementary-material captions (``fig_caption`` / ``table_caption`` /
  ``supplementary_caption``, label = "Figure 2", "Table 1"), placed right after the paragraph that
  holds them or where they stand in the section; table footnotes (``table_footnote``);
- figures and tables gathered in a ``floats-group`` (their captions, after the body);
- acknowledgements (``acknowledgement``) and appendices (``paragraph`` under their titles).

Deliberate omissions (documented in ARCHITECTURE.md): table cell text (a grid, not prose: NER over it
is noise and its reading order is not defined), display formulas (MathML/TeX markup, not text), the
reference list (not this article's prose; the cited PMIDs are kept in ``ref_pmids``), and footnote
groups (competing interests, abbreviations). Inline markup — italic, bold, sub/sup, xref, ext-link,
styled-content — is flattened to its text; an inline formula contributes its MathML text (or TeX
when that is all there is). Whitespace runs collapse to one space, so offsets are offsets into the
clean passage text that the sentences table and the entities refer to.
"""

from __future__ import annotations

import re
import tarfile
from typing import IO, Iterator

from lxml import etree

from pipeline.errors import RecordError, ShardError
from pipeline.parse import records
from pipeline.parse.document import Author, Document, Passage, layout_passages

MML = "{http://www.w3.org/1998/Math/MathML}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

FLOATS = {"fig", "table-wrap", "fig-group", "table-wrap-group", "supplementary-material", "boxed-text"}
DROPPED = {"disp-formula", "disp-formula-group", "table", "ref-list", "fn-group", "glossary", "graphic",
           "media", "alternatives", "object-id", "tex-math", "inline-graphic", "processing-meta",
           "institution-id"}
BLOCKS = {"p", "list-item", "def-item", "term", "def", "title", "caption", "td", "th", "break", "attrib"}
LANGS = {"en": "eng", "de": "ger", "fr": "fre", "es": "spa", "pt": "por", "it": "ita", "ja": "jpn",
         "zh": "chi", "ru": "rus", "nl": "dut", "pl": "pol", "ko": "kor", "tr": "tur", "sv": "swe"}
_WS = re.compile(r"\s+")
_PMC_DIGITS = re.compile(r"(\d+)")


def _flatten(el, out: list[str], floats: list | None) -> None:
    if el.text:
        out.append(el.text)
    for ch in el:
        tag = ch.tag if isinstance(ch.tag, str) else None  # comments and processing instructions: tail only
        if tag is None:
            pass
        elif floats is not None and tag in FLOATS:
            floats.append(ch)
        elif tag in FLOATS or tag in DROPPED:
            pass
        elif tag == "inline-formula":
            out.append(_formula_text(ch))
        elif tag in BLOCKS:
            out.append(" ")
            _flatten(ch, out, floats)
            out.append(" ")
        else:
            _flatten(ch, out, floats)
        if ch.tail:
            out.append(ch.tail)


def _formula_text(el) -> str:
    math = el.find(f".//{MML}math")
    if math is not None:
        return "".join(math.itertext())
    tex = el.find(".//tex-math")
    return (tex.text or "") if tex is not None else "".join(el.itertext())


def flat_text(el, floats: list | None = None) -> str:
    """Element -> its text with inline markup flattened and whitespace collapsed."""
    if el is None:
        return ""
    out: list[str] = []
    _flatten(el, out, floats)
    return _WS.sub(" ", "".join(out)).strip()


class _Walker:
    """Collects passages from abstract/body/back in reading order."""

    def __init__(self) -> None:
        self.parts: list[Passage] = []

    def add(self, kind: str, label: str | None, text: str, category: str | None = None,
            language: str | None = None) -> None:
        if text:
            self.parts.append(Passage(kind, label or None, 0, text, category, language))

    def floating(self, el, category: str | None) -> None:
        tag = el.tag
        if tag in ("fig-group", "table-wrap-group"):
            for ch in el:
                if isinstance(ch.tag, str) and ch.tag in ("fig", "table-wrap"):
                    self.floating(ch, category)
            return
        if tag == "boxed-text":
            self.section(el, flat_text(el.find("caption/title")) or None, category, "paragraph", True)
            return
        label = flat_text(el.find("label")) or None
        caption = flat_text(el.find("caption"))
        kind = {"fig": "fig_caption", "table-wrap": "table_caption"}.get(tag, "supplementary_caption")
        self.add(kind, label, caption, category)
        if tag == "table-wrap":
            for foot in el.iterfind("table-wrap-foot"):
                self.add("table_footnote", label, flat_text(foot), category)

    def section(self, el, title: str | None, category: str | None, para_kind: str, emit_titles: bool,
                language: str | None = None) -> None:
        for ch in el:
            self.one(ch, title, category, para_kind, emit_titles, language)

    def one(self, ch, title: str | None, category: str | None, para_kind: str, emit_titles: bool,
            language: str | None = None) -> None:
        tag = ch.tag if isinstance(ch.tag, str) else None
        if tag is None or tag in ("title", "label", "sec-meta") or tag in DROPPED:
            return
        if tag in ("sec", "app"):
            sec_title = flat_text(ch.find("title")) or None
            sec_category = ch.get("sec-type") or category
            if emit_titles and sec_title:
                self.add("section_title", flat_text(ch.find("label")) or None, sec_title, sec_category)
            kind = "abstract_section" if para_kind == "abstract" else para_kind
            self.section(ch, sec_title or title, sec_category, kind, emit_titles, language)
        elif tag in FLOATS:
            self.floating(ch, category)
        elif tag in ("p", "disp-quote", "list", "def-list", "statement", "speech", "verse-group", "preformat"):
            floats: list = []
            self.add(para_kind, title, flat_text(ch, floats), category, language)
            for f in floats:
                self.floating(f, category)
        else:  # an unknown container (app-group, notes, custom wrappers): look inside
            self.section(ch, title, category, para_kind, emit_titles, language)


def _pmcid(value: str) -> str | None:
    m = _PMC_DIGITS.search(value or "")
    return f"PMC{m.group(1)}" if m else None


def _date(el) -> tuple[int | None, str | None]:
    y = (el.findtext("year") or "").strip()
    if not y.isdigit():
        return None, None
    m = (el.findtext("month") or "").strip()
    d = (el.findtext("day") or "").strip()
    season = (el.findtext("season") or "").strip()
    if m.isdigit() and 1 <= int(m) <= 12:
        if d.isdigit():
            return int(y), f"{int(y):04d}-{int(m):02d}-{int(d):02d}"
        return int(y), f"{int(y):04d}-{int(m):02d}"
    return int(y), f"{int(y):04d} {season}" if season else y


def _pub_dates(meta) -> tuple[int | None, str | None, str | None]:
    """(pub_year, pub_date, article_date): the issue date when there is one (as MEDLINE's PubDate),
    else the electronic date; article_date is the electronic date."""
    by_kind: dict[str, tuple] = {}
    for pd in meta.iterfind("pub-date"):
        kind = pd.get("pub-type") or pd.get("date-type") or pd.get("publication-format") or "pub"
        if pd.get("publication-format") == "electronic" or kind in ("epub", "epub-ppub"):
            kind = "epub" if kind != "epub-ppub" else kind
        by_kind.setdefault(kind, _date(pd))
    epub = by_kind.get("epub") or by_kind.get("epub-ppub")
    issue = by_kind.get("ppub") or by_kind.get("epub-ppub") or by_kind.get("collection") or by_kind.get("pub")
    chosen = issue if issue and issue[0] else (epub or next(iter(by_kind.values()), (None, None)))
    article_date = epub[1] if epub and epub[1] and len(epub[1]) == 10 else None
    return chosen[0], chosen[1], article_date


def _aff_text(aff) -> str:
    """An <aff> as one line: its label dropped, structured parts (institution, city, country) joined
    by ', ' where the XML puts nothing but whitespace between them."""
    pieces: list[str] = [aff.text or ""]
    for ch in aff:
        if isinstance(ch.tag, str) and ch.tag not in ("label", "sup", "institution-id"):
            text = flat_text(ch)
            if text:
                if pieces and not "".join(pieces).strip() == "" and not pieces[-1].strip():
                    pieces.append(", ")
                pieces.append(text)
        pieces.append(ch.tail or "")
    text = _WS.sub(" ", "".join(pieces)).strip()
    text = re.sub(r"\s+([,;.])", r"\1", text)
    return re.sub(r"([,;])(?:\s*[,;])+", r"\1", text).strip(" ,;")


def _affiliations(article) -> dict[str, str]:
    return {aff.get("id") or f"_{i}": _aff_text(aff) for i, aff in enumerate(article.iterfind(".//front//aff"))}


def _authors(article) -> list[Author]:
    affs = _affiliations(article)
    referenced: set[str] = set()
    authors: list[tuple[Author, object]] = []
    for contrib in article.iterfind("front/article-meta/contrib-group/contrib"):
        if contrib.get("contrib-type", "author") != "author":
            continue
        name = contrib.find("name")
        if name is None:
            name = contrib.find("name-alternatives/name")
        collab = flat_text(contrib.find("collab")) or None
        orcid = next((c.text.strip().rstrip("/").rsplit("/", 1)[-1] for c in contrib.iterfind("contrib-id")
                      if c.get("contrib-id-type") == "orcid" and c.text), None)
        given = flat_text(name.find("given-names")) if name is not None else ""
        author = Author(last_name=flat_text(name.find("surname")) or None if name is not None else None,
                        fore_name=given or None,
                        initials="".join(w[0] for w in re.split(r"[\s.-]+", given) if w) or None,
                        collective_name=collab, orcid=orcid, affiliations=[])
        for x in contrib.iterfind("xref"):
            if x.get("ref-type") == "aff":
                for rid in (x.get("rid") or "").split():
                    referenced.add(rid)
                    if rid in affs and affs[rid] not in author.affiliations:
                        author.affiliations.append(affs[rid])
        for own in contrib.iterfind("aff"):
            text = affs.get(own.get("id")) if own.get("id") else _aff_text(own)
            if text and text not in author.affiliations:
                author.affiliations.append(text)
        authors.append((author, contrib))
    shared = [text for key, text in affs.items() if key not in referenced]
    if shared and not referenced:  # affiliations listed without xrefs belong to every author
        for author, _ in authors:
            if not author.affiliations:
                author.affiliations.extend(shared)
    return [a for a, _ in authors]


def parse_article(article, position: int) -> Document:
    """One <article> element -> Document (source 'pmc'). Raises RecordError."""
    meta = article.find("front/article-meta")
    if meta is None:
        raise RecordError("missing article-meta", "<article> has no front/article-meta element")
    ids: dict[str, str] = {}
    for aid in meta.iterfind("article-id"):
        kind = aid.get("pub-id-type") or ""
        if aid.text and kind not in ids:
            ids[kind] = aid.text.strip()
    pmcid = _pmcid(ids.get("pmc") or ids.get("pmcid") or "")
    pmid = int(ids["pmid"]) if ids.get("pmid", "").isdigit() else None
    if pmcid is None:
        raise RecordError("missing PMCID", f"article-meta has no article-id of pub-id-type 'pmc' (ids: {sorted(ids)})",
                          pmid=pmid)

    title = flat_text(meta.find("title-group/article-title"))
    walker = _Walker()
    walker.add("title", None, title)
    abstracts = meta.findall("abstract")
    main = next((a for a in abstracts if a.get("abstract-type") in (None, "abstract")), None)
    if main is not None:
        walker.section(main, None, None, "abstract", False)
    for other in abstracts:
        if other is not main:
            walker.section(other, other.get("abstract-type"), None, "other_abstract", False)
    for trans in meta.iterfind("trans-abstract"):
        lang = trans.get(XML_LANG)
        walker.section(trans, None, None, "other_abstract", False, LANGS.get(lang, lang))
    body = article.find("body")
    if body is not None:
        walker.section(body, None, None, "paragraph", True)
    for group in article.iterfind("floats-group"):  # JATS 1.0 may gather figures and tables at the end
        walker.section(group, None, None, "paragraph", True)
    back = article.find("back")
    if back is not None:
        for ch in back:
            if not isinstance(ch.tag, str):
                continue
            if ch.tag == "ack":
                walker.section(ch, flat_text(ch.find("title")) or "Acknowledgements", None, "acknowledgement", False)
            elif ch.tag in ("app-group", "app", "sec", "notes"):
                walker.one(ch, None, None, "paragraph", True)
    if not walker.parts:
        raise RecordError("no text", "article has no title, abstract or body text", pmid=pmid)
    if walker.parts[0].kind != "title":  # keep the BioC layout: passage 0 is the title, even when empty
        walker.parts.insert(0, Passage("title", None, 0, ""))

    journal_meta = article.find("front/journal-meta")
    journal = journal_iso = None
    if journal_meta is not None:
        journal = flat_text(journal_meta.find("journal-title-group/journal-title")) or \
            flat_text(journal_meta.find("journal-title")) or None
        jids = {j.get("journal-id-type"): (j.text or "").strip() for j in journal_meta.iterfind("journal-id")}
        journal_iso = jids.get("iso-abbrev") or jids.get("nlm-ta") or None
    year, date, article_date = _pub_dates(meta)
    lang = article.get(XML_LANG) or "en"
    refs = []
    for pid in article.iterfind("back/ref-list//pub-id"):
        if pid.get("pub-id-type") == "pmid" and (pid.text or "").strip().isdigit():
            refs.append(int(pid.text.strip()))
    return Document(
        doc_id=f"pmc:{pmcid}", pmid=pmid, pmid_version=None, pmcid=pmcid, doi=ids.get("doi"),
        title=title, journal=journal, pub_year=year, pub_date=date,
        languages=[LANGS.get(lang.lower(), lang.lower())],
        pub_types=[article.get("article-type")] if article.get("article-type") else [],
        keywords=[t for t in (flat_text(k) for k in meta.iterfind("kwd-group/kwd")) if t],
        passages=layout_passages(walker.parts), source="pmc", position=position,
        journal_iso=journal_iso, article_date=article_date, authors=_authors(article), ref_pmids=refs,
    )


def _article(el, position: int, member: str | None) -> tuple[str, object]:
    try:
        if el.tag != "article":
            raise RecordError("unknown record", f"unexpected element <{el.tag}> under <pmc-articleset>")
        doc = parse_article(el, position)
        doc.source_member = member
        return "document", doc
    except RecordError as err:
        return "reject", {"position": position, "pmid": err.pmid, "reason": err.reason, "detail": err.detail}
    except Exception as exc:  # a parser bug must not take the file down
        return "reject", {"position": position, "pmid": None, "reason": "parser error", "detail": f"{type(exc).__name__}: {exc}"}


def iter_articleset(stream: IO[bytes], source_file: str,
                    max_record_bytes: int = records.MAX_RECORD_BYTES) -> Iterator[tuple[str, object]]:
    """An efetch <pmc-articleset>, cut into its articles (``pipeline.parse.records``) and each parsed
    alone: an article that is not well-formed is one reject, the others are parsed; a file cut short
    fails whole."""
    position, encoding = 0, None
    for kind, piece in records.split(stream, source_file, {"pmc-articleset": ("article",)}, max_record_bytes):
        if kind == "root":
            encoding = piece[1]
            continue
        if piece.tag is None:
            yield "reject", {"position": position, "pmid": None, "reason": "unknown record",
                             "detail": f"unexpected text {piece.data[:60]!r} under <pmc-articleset> at byte {piece.offset}"}
        elif piece.problem:
            yield "reject", {"position": position, "pmid": None, "reason": "malformed article XML",
                             "detail": f"{piece.problem} (byte {piece.offset})"}
        else:
            try:
                el = records.parse_piece(piece, encoding)
            except (etree.XMLSyntaxError, ValueError) as exc:
                yield "reject", {"position": position, "pmid": None, "reason": "malformed article XML",
                                 "detail": f"<{piece.tag}> at byte {piece.offset} is not well-formed XML: {exc}"}
            else:
                yield _article(el, position, None)
        position += 1


def iter_jats(stream: IO[bytes], source_file: str, member: str | None = None,
              start_position: int = 0) -> Iterator[tuple[str, object]]:
    """Stream documents out of one JATS file: a single <article> or a <pmc-articleset> of them (the
    pipeline sends a sniffed <pmc-articleset> to ``iter_articleset``, which isolates its records)."""
    position = start_position
    depth = 0
    root = None
    context = etree.iterparse(stream, events=("start", "end"), huge_tree=True, resolve_entities=False,
                              no_network=True, load_dtd=False)
    try:
        for event, el in context:
            if event == "start":
                if depth == 0:
                    root = el
                    if root.tag not in ("article", "pmc-articleset"):
                        raise ShardError(source_file, f"root element is <{root.tag}>; expected <article> (a PMC .nxml) "
                                                      "or <pmc-articleset>")
                depth += 1
                continue
            depth -= 1
            is_record = (depth == 0 and el.tag == "article") or (depth == 1 and root.tag == "pmc-articleset")
            if not is_record:
                continue
            yield _article(el, position, member)
            position += 1
            if depth == 1:
                el.clear(keep_tail=False)
                while el.getprevious() is not None:
                    del root[0]
    except etree.XMLSyntaxError as exc:
        raise ShardError(source_file, f"XML is not well-formed ({exc}); {position - start_position} articles "
                                      "came before the damage") from exc
    if root is None:
        raise ShardError(source_file, "file is empty; expected a JATS <article> or <pmc-articleset>")


PACKAGE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
MEMBER_SUFFIXES = (".nxml", ".xml")
_MEMBER_KINDS = {tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link", tarfile.CHRTYPE: "a character device",
                 tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a FIFO"}


def _unsafe_member(member: tarfile.TarInfo) -> str | None:
    """Why a package member must not be used (None when it is a regular file with a relative name)."""
    if not member.isfile():
        kind = _MEMBER_KINDS.get(member.type, f"tar entry type {member.type!r}")
        to = f" to {member.linkname}" if member.linkname else ""
        return f"{kind}{to}, not a regular file"
    parts = member.name.replace("\\", "/").split("/")
    if member.name.startswith(("/", "\\")) or (len(parts[0]) == 2 and parts[0][1] == ":"):
        return "an absolute path"
    if ".." in parts:
        return "a path that climbs out of the package with .."
    return None


def iter_package(stream: IO[bytes], source_file: str) -> Iterator[tuple[str, object]]:
    """A PMC OA bulk package (.tar.gz of PMCxxxx.xml / .nxml) streamed member by member.

    ``stream`` is the tar stream (already gunzipped: ``sources.open_input``). Members are read from the
    stream, never extracted to disk. A member that is not well-formed XML is one reject; so is an
    article member that is not a regular file (a link, a device, a FIFO: never followed or opened) or
    whose name is absolute or climbs out with ``..``; the other members are still parsed. Directories
    and non-article members (figures, PDFs, supplements) are skipped, as in every real package.
    """
    position = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if member.isdir() or not member.name.endswith(MEMBER_SUFFIXES):
                    continue
                unsafe = _unsafe_member(member)
                if unsafe:
                    yield "reject", {"position": position, "pmid": None, "reason": "unsafe package member",
                                     "detail": f"{member.name}: {unsafe}; it is neither read nor extracted"}
                    position += 1
                    continue
                data = tar.extractfile(member)
                if data is None:
                    continue
                before = position
                try:
                    for kind, payload in iter_jats(data, source_file, member=member.name, start_position=position):
                        if kind == "reject":
                            payload["detail"] = f"{member.name}: {payload['detail']}"
                        position += kind in ("document", "reject")
                        yield kind, payload
                except ShardError as err:
                    position = max(position, before + 1)
                    yield "reject", {"position": before, "pmid": None, "reason": "malformed article XML",
                                     "detail": f"{member.name}: {err.detail}"}
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ShardError(source_file, f"not a readable tar package ({type(exc).__name__}: {exc}); "
                                      f"{position} articles came before the damage") from exc
