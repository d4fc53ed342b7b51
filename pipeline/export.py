"""``pubmine export``: a snapshot's documents with their entities and relations in the formats the
field exchanges: PubTator (text lines, annotation lines, relation lines), BioC XML and BioC JSON.

Offsets are the snapshot's document offsets throughout: PubTator's title starts at 0 and its
abstract line at len(title) + 1, which is where pubmine's second passage starts; BioC passages carry
their own offsets and annotations their document offsets. Concept ids are written as the snapshot
holds them (MESH:D003000); a mention without one is `-` in PubTator and has no identifier infon in
BioC. Relations: PubTator's `PMID<TAB>type<TAB>head concept<TAB>tail concept` lines (one per concept
pair and type in the document); in BioC, a document-level relation whose nodes point at the head and
tail annotations (role `head`, `tail`), with its score. ``relations`` is PubTator3's
``relation2pubtator3`` layout: one line per document, relation type and concept pair,
`PMID<TAB>type<TAB>Type|ID<TAB>Type|ID` (types as the snapshot names them: BioRED's
Positive_Correlation, ..., or CID), no header, so that tools reading PubTator3's file read ours.

Documents are read and written in chunks (``CHUNK`` documents each), so an export of millions never
holds them all; a progress bar shows on a terminal.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa

from pipeline.errors import PubmineError
from pipeline.knowledge import QueryError, connect
from pipeline.parse.document import text_at_offsets
from pipeline.progress import Progress
from pipeline.storage import Store

FORMATS = ("pubtator", "biocxml", "biocjson", "relations")
CHUNK = 5000


class ExportError(PubmineError):
    """An export could not be written: an unknown format, a bad --where, nothing selected."""


def _flat(text: str) -> str:
    """One line: newlines and tabs become spaces (same length, so offsets hold)."""
    return text.replace("\r", " ").replace("\n", " ").replace("\t", " ")


def _key(doc: dict) -> str:
    """The id a reader sees: the PMID where there is one (PubTator's convention), else the doc_id."""
    return str(doc["pmid"]) if doc["pmid"] is not None else doc["doc_id"]


def _document_text(passages: list[dict]) -> str:
    return text_at_offsets((p["offset"], p["text"] or "") for p in passages)


def _group(table: pa.Table) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        out.setdefault(row["doc_id"], []).append(row)
    return out


def select_sql(pmids: tuple[int, ...] = (), where: str | None = None) -> str:
    conditions = []
    if pmids:
        conditions.append(f"pmid IN ({', '.join(str(int(p)) for p in pmids)})")
    if where:
        conditions.append(f"({where})")
    return "SELECT doc_id, pmid FROM documents" + (" WHERE " + " AND ".join(conditions) if conditions else "")


def chunks(store: Store, run_id: str, pmids: tuple[int, ...] = (), where: str | None = None):
    """(documents, passages by doc, entities by doc, relations by doc) for the selected documents,
    CHUNK documents at a time, in doc_id order; and the number selected first."""
    import duckdb

    con = connect(store, run_id, ("documents", "passages", "entities", "relations"))
    try:
        con.execute(f"CREATE TEMP TABLE chosen AS SELECT row_number() OVER (ORDER BY doc_id) - 1 AS k, doc_id, pmid "
                    f"FROM ({select_sql(pmids, where)})")
    except duckdb.Error as exc:
        raise ExportError(f"--where {where!r} is not a condition on the documents table: "
                          f"{str(exc).strip().splitlines()[0]} (columns: docs/schema.md)") from None
    total = con.execute("SELECT count(*) FROM chosen").fetchall()[0][0]
    yield total
    for a in range(0, total, CHUNK):
        pick = f"SEMI JOIN (SELECT doc_id FROM chosen WHERE k >= {a} AND k < {a + CHUNK}) c USING (doc_id)"
        docs = con.sql(f"SELECT c.doc_id, c.pmid FROM chosen c WHERE k >= {a} AND k < {a + CHUNK} ORDER BY k").to_arrow_table()
        passages = con.sql(f'SELECT doc_id, passage_idx, kind, "offset", text FROM passages {pick} '
                           'ORDER BY doc_id, "offset", passage_idx').to_arrow_table()
        entities = con.sql(f"SELECT doc_id, start, \"end\", text, type, concept_id, score FROM entities {pick} "
                           "ORDER BY doc_id, start, \"end\", type").to_arrow_table()
        relations = con.sql(f"SELECT doc_id, type, head, tail, score FROM relations {pick} "
                            "ORDER BY doc_id, type, head.start, tail.start").to_arrow_table()
        yield docs.to_pylist(), _group(passages), _group(entities), _group(relations)


def pubtator_document(doc: dict, passages: list[dict], entities: list[dict], relations: list[dict]) -> str:
    text = _flat(_document_text(passages))
    title = _flat(passages[0]["text"] or "") if passages else ""
    if len(text) > len(title) and text[len(title)] != " ":  # no gap after the first passage: all in the title
        title = text
    key = _key(doc)
    lines = [f"{key}|t|{title}", f"{key}|a|{text[len(title) + 1:]}"]
    for e in entities:
        lines.append("\t".join([key, str(e["start"]), str(e["end"]), _flat(e["text"]), e["type"], e["concept_id"] or "-"]))
    pairs = sorted({(r["type"], r["head"]["concept_id"], r["tail"]["concept_id"]) for r in relations
                    if r["head"]["concept_id"] and r["tail"]["concept_id"]})
    lines += ["\t".join([key, t, h, tl]) for t, h, tl in pairs]
    return "\n".join(lines) + "\n\n"


def relation_lines(doc: dict, relations: list[dict]) -> str:
    """``relation2pubtator3`` lines of one document: distinct (type, head, tail) of linked concepts."""
    key = _key(doc)
    rows = sorted({(r["type"], f"{r['head']['type']}|{r['head']['concept_id']}", f"{r['tail']['type']}|{r['tail']['concept_id']}")
                   for r in relations if r["head"]["concept_id"] and r["tail"]["concept_id"]})
    return "".join(f"{key}\t{t}\t{h}\t{tl}\n" for t, h, tl in rows)


def bioc_document(doc: dict, passages: list[dict], entities: list[dict], relations: list[dict]) -> dict:
    """One document as BioC JSON's dict (the XML writer walks the same dict)."""
    ids: dict[tuple, str] = {}
    out_passages = []
    for p in passages:
        out_passages.append({"offset": p["offset"], "infons": {"type": p["kind"]}, "text": p["text"] or "",
                             "sentences": [], "annotations": [], "relations": []})
    for n, e in enumerate(entities):
        ann_id = f"T{n}"
        ids[e["start"], e["end"], e["type"]] = ann_id
        infons = {"type": e["type"], "score": f"{e['score']:.4f}"}
        if e["concept_id"]:
            infons["identifier"] = e["concept_id"]
        ann = {"id": ann_id, "infons": infons, "text": e["text"],
               "locations": [{"offset": e["start"], "length": e["end"] - e["start"]}]}
        home = next((p for p in reversed(out_passages) if p["offset"] <= e["start"]), out_passages[0] if out_passages else None)
        if home is not None:
            home["annotations"].append(ann)
    out_relations = []
    for n, r in enumerate(relations):
        head = ids.get((r["head"]["start"], r["head"]["end"], r["head"]["type"]))
        tail = ids.get((r["tail"]["start"], r["tail"]["end"], r["tail"]["type"]))
        if head is None or tail is None:
            continue
        out_relations.append({"id": f"R{n}", "infons": {"type": r["type"], "score": f"{r['score']:.4f}"},
                              "nodes": [{"refid": head, "role": "head"}, {"refid": tail, "role": "tail"}]})
    return {"id": _key(doc), "infons": {"doc_id": doc["doc_id"]}, "passages": out_passages, "annotations": [],
            "relations": out_relations}


def _xml_document(d: dict):
    from lxml import etree

    el = etree.Element("document")
    etree.SubElement(el, "id").text = d["id"]
    _infons(el, d["infons"])
    for p in d["passages"]:
        pe = etree.SubElement(el, "passage")
        _infons(pe, p["infons"])
        etree.SubElement(pe, "offset").text = str(p["offset"])
        etree.SubElement(pe, "text").text = p["text"]
        for a in p["annotations"]:
            ae = etree.SubElement(pe, "annotation", id=a["id"])
            _infons(ae, a["infons"])
            for loc in a["locations"]:
                etree.SubElement(ae, "location", offset=str(loc["offset"]), length=str(loc["length"]))
            etree.SubElement(ae, "text").text = a["text"]
    for r in d["relations"]:
        re_ = etree.SubElement(el, "relation", id=r["id"])
        _infons(re_, r["infons"])
        for node in r["nodes"]:
            etree.SubElement(re_, "node", refid=node["refid"], role=node["role"])
    return el


def _infons(parent, infons: dict) -> None:
    from lxml import etree

    for k, v in infons.items():
        etree.SubElement(parent, "infon", key=k).text = v


def export(store: Store, run_id: str, fmt: str, out: Path, pmids: tuple[int, ...] = (), where: str | None = None,
           progress: bool | str | None = None) -> dict:
    """Write the selected documents of snapshot ``run_id`` to ``out`` in ``fmt``; returns counts."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    parts = chunks(store, run_id, pmids, where)
    total = next(parts)
    if not total:
        raise ExportError(f"no document of snapshot {run_id} matches the selection"
                          + (f" (--pmid {' '.join(map(str, pmids))})" if pmids else "") + (f" (--where {where})" if where else ""))
    counts = {"documents": 0, "entities": 0, "relations": 0}
    date = dt.date.today().strftime("%Y%m%d")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with Progress(f"export {fmt}", total=total, unit="doc", run_id=run_id, mode=progress) as bar, \
            open(tmp, "w", encoding="utf-8") as f:
        if fmt == "biocxml":
            f.write('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE collection SYSTEM "BioC.dtd">\n'
                    f"<collection><source>pubmine</source><date>{date}</date><key>pubmine.key</key>"
                    f'<infon key="snapshot">{run_id}</infon>\n')
        elif fmt == "biocjson":
            f.write(json.dumps({"source": "pubmine", "date": date, "key": "pubmine.key",
                                "infons": {"snapshot": run_id}})[:-1] + ', "documents": [\n')
        first = True
        for docs, passages, entities, relations in parts:
            for doc in docs:
                d = doc["doc_id"]
                p, e, r = passages.get(d, []), entities.get(d, []), relations.get(d, [])
                if fmt == "pubtator":
                    f.write(pubtator_document(doc, p, e, r))
                elif fmt == "relations":
                    f.write(relation_lines(doc, r))
                else:
                    b = bioc_document(doc, p, e, r)
                    if fmt == "biocjson":
                        f.write(("" if first else ",\n") + json.dumps(b, ensure_ascii=False))
                    else:
                        from lxml import etree

                        f.write(etree.tostring(_xml_document(b), encoding="unicode") + "\n")
                first = False
                counts["documents"] += 1
                counts["entities"] += len(e)
                counts["relations"] += len(r)
            bar.update(len(docs), entities=sum(len(entities.get(d["doc_id"], [])) for d in docs))
        if fmt == "biocxml":
            f.write("</collection>\n")
        elif fmt == "biocjson":
            f.write("\n]}\n")
    tmp.replace(out)  # a reader never sees half an export
    return counts


__all__ = ["export", "FORMATS", "ExportError", "QueryError"]
