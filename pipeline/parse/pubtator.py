"""PubTator files (BC5CDR, NCBI-disease, BioRED) and the corpus-to-dump tool.

A PubTator document is ``PMID|t|title``, ``PMID|a|abstract``, mention lines
``PMID<TAB>start<TAB>end<TAB>text<TAB>type<TAB>ids`` and relation lines
``PMID<TAB>REL<TAB>id1<TAB>id2`` (BioRED adds ``<TAB>Novel`` or ``<TAB>No``: a novel finding of
the paper or background knowledge). Offsets are over ``title + " " + abstract`` — the same convention
as pubmine's MEDLINE passages, so gold mentions compare to pipeline output directly.

``write_medline_xml`` turns documents into a MEDLINE-style PubmedArticleSet (real PMIDs, titles,
abstracts) so the whole pipeline can be run and scored on abstracts with gold annotations.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from lxml import etree

from pipeline.parse.document import layout_passages
from pipeline.parse.sentences import split_spans
from pipeline.storage import open_text

# PubTator class names -> pubmine's entity types: NCBI-disease's fine-grained classes are all
# diseases for NER purposes; BioRED's classes are its six types (BC5CDR's "Chemical"/"Disease" and
# PubTator3's "Gene"/"Species"/"CellLine" already are pubmine's names and pass through)
TYPE_MAP = {"SpecificDisease": "Disease", "DiseaseClass": "Disease", "Modifier": "Disease",
            "CompositeMention": "Disease",
            "GeneOrGeneProduct": "Gene", "DiseaseOrPhenotypicFeature": "Disease", "ChemicalEntity": "Chemical",
            "SequenceVariant": "Variant", "OrganismTaxon": "Species", "CellLine": "CellLine"}


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    text: str
    type: str
    ids: str


@dataclass
class PubtatorDoc:
    pmid: int
    title: str
    abstract: str
    mentions: list[Mention] = field(default_factory=list)
    relations: list[tuple[str, str, str]] = field(default_factory=list)
    novelty: dict[tuple[str, str], str] = field(default_factory=dict)  # BioRED: (id1, id2) -> "Novel" / "No"

    @property
    def text(self) -> str:
        return f"{self.title} {self.abstract}" if self.abstract else self.title


def _repair(text: str, start: int, end: int, mention: str, slack: int = 3) -> tuple[int, int]:
    """A mention whose offsets are a few characters off, or whose text carries stray spaces (NCBI-disease
    train has ``seizures " plus "  `` at 711:761): find the stripped mention within ``slack`` characters."""
    m = mention.strip()
    for delta in sorted(range(-slack, slack + 1), key=abs):
        s = start + delta
        if s >= 0 and text[s:s + len(m)] == m:
            return s, s + len(m)
    return -1, -1


def doc_sentences(doc: PubtatorDoc) -> list[tuple[int, str]]:
    """(document offset, sentence text) as the pipeline's parse stage produces them."""
    out = []
    for p in layout_passages([("title", None, doc.title), ("abstract", None, doc.abstract)]):
        for s, e in split_spans(p.text):
            out.append((p.offset + s, p.text[s:e]))
    return out


ID_PREFIX = {"Gene": "NCBIGene:", "Species": "NCBITaxon:"}  # corpus IDs of these types are bare numbers


def gold_ids(ids: str, kind: str | None = None) -> set[str]:
    """A corpus's ID column as the concept IDs the linker returns: chemicals and diseases
    (``D003924``, ``OMIM:613097``, ``D001|D002``, ``MESH:C001``) as MeSH/OMIM IDs; genes and species
    (``7157``, ``22083,54624``) with their NCBI prefix; cell lines (``CVCL_0030``) and variants
    (tmVar's ``p|SUB|V|600|E``, ``rs113488022``: the '|' is part of the ID) as they are."""
    raw = raw_ids(ids, kind)
    if kind == "Variant" or kind == "CellLine":
        return set(raw)
    if kind in ID_PREFIX:
        return {ID_PREFIX[kind] + i for i in raw if i.isdigit()}
    return {i if i.startswith("OMIM:") else f"MESH:{i.removeprefix('MESH:')}" for i in raw}


def raw_ids(ids: str, kind: str | None = None) -> list[str]:
    """A corpus's ID column split into its IDs as written (relation lines name these), the way
    ``gold_ids`` splits it: variants and cell lines on ';' (a tmVar ID holds '|'), genes and species on
    ',' and ';', chemicals and diseases on ',' and '|'; unnormalized entries left out."""
    if kind == "Variant" or kind == "CellLine":
        parts, unknown = ids.split(";"), ("", "-", "-1")
    elif kind in ID_PREFIX:
        parts, unknown = ids.replace(";", ",").split(","), ("",)
    else:
        parts, unknown = ids.replace(",", "|").split("|"), ("", "-1")
    return [i.strip() for i in parts if i.strip() not in unknown]


_TITLE_LINE = re.compile(r"(\d+)\|t\|")


def read_pubtator(path: str | Path, type_map: dict[str, str] | None = None) -> Iterator[PubtatorDoc]:
    """Documents of a PubTator file (.txt or .txt.gz), mentions checked against the text."""
    tmap = TYPE_MAP if type_map is None else type_map
    doc: PubtatorDoc | None = None
    with open_text(path) as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\n")
            if not line.strip():
                if doc is not None:
                    yield doc
                    doc = None
                continue
            title = _TITLE_LINE.match(line)
            if title:
                if doc is not None:
                    yield doc
                doc = PubtatorDoc(int(title.group(1)), line[title.end():], "")
                continue
            if doc is not None and line.startswith(f"{doc.pmid}|a|"):  # (a mention's text may hold "|a|")
                doc.abstract = line[len(f"{doc.pmid}|a|"):]
                continue
            cols = line.split("\t")
            if doc is None:
                raise ValueError(f"{path}:{lineno}: annotation line before any |t| title line")
            if len(cols) >= 5 and cols[1].isdigit():
                start, end = int(cols[1]), int(cols[2])
                text = cols[3]
                if doc.text[start:end] != text:
                    start, end = _repair(doc.text, start, end, text)
                    if start < 0:
                        raise ValueError(f"{path}:{lineno}: mention {text!r} does not match the text at "
                                         f"{cols[1]}:{cols[2]} ({doc.text[int(cols[1]):int(cols[2])]!r}) nor nearby")
                    text = doc.text[start:end]
                doc.mentions.append(Mention(start, end, text, tmap.get(cols[4], cols[4]), cols[5] if len(cols) > 5 else ""))
            elif len(cols) >= 4:
                doc.relations.append((cols[1], cols[2], cols[3]))
                if len(cols) >= 5 and cols[4].strip():
                    doc.novelty[cols[2], cols[3]] = cols[4].strip()
    if doc is not None:
        yield doc


def write_medline_xml(docs: list[PubtatorDoc], out: str | Path) -> int:
    """Write documents as a PubmedArticleSet (gzip when ``out`` ends in .gz). Returns the count."""
    root = etree.Element("PubmedArticleSet")
    for d in docs:
        art = etree.SubElement(root, "PubmedArticle")
        cit = etree.SubElement(art, "MedlineCitation", Status="MEDLINE", Owner="NLM")
        etree.SubElement(cit, "PMID", Version="1").text = str(d.pmid)
        article = etree.SubElement(cit, "Article", PubModel="Print")
        etree.SubElement(article, "ArticleTitle").text = d.title
        if d.abstract:
            etree.SubElement(etree.SubElement(article, "Abstract"), "AbstractText").text = d.abstract
        etree.SubElement(article, "Language").text = "eng"
        data = etree.SubElement(art, "PubmedData")
        ids = etree.SubElement(data, "ArticleIdList")
        etree.SubElement(ids, "ArticleId", IdType="pubmed").text = str(d.pmid)
    payload = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".gz":
        with gzip.open(out, "wb") as f:
            f.write(payload)
    else:
        out.write_bytes(payload)
    return len(docs)
