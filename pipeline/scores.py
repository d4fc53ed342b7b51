"""Scores against gold PubTator documents, shared by `pubmine evaluate`, the benchmarks and the
nightly spot-check (``pipeline.spotcheck``): micro-averaged and per-type P/R/F1 of exact mention
spans, of linked concepts per document, and of BC5CDR CID pairs per document."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pipeline.parse.pubtator import PubtatorDoc, gold_ids, raw_ids


@dataclass
class Scores:
    tp: Counter = field(default_factory=Counter)
    fp: Counter = field(default_factory=Counter)
    fn: Counter = field(default_factory=Counter)

    def add(self, gold: set[tuple], pred: set[tuple]) -> None:
        """Sets of (doc, start, end, type)."""
        for g in gold & pred:
            self.tp[g[-1]] += 1
        for p in pred - gold:
            self.fp[p[-1]] += 1
        for g in gold - pred:
            self.fn[g[-1]] += 1

    @staticmethod
    def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return p, r, f

    def overall(self) -> tuple[float, float, float]:
        return self._prf(sum(self.tp.values()), sum(self.fp.values()), sum(self.fn.values()))

    def by_type(self) -> dict[str, tuple[float, float, float]]:
        types = sorted(set(self.tp) | set(self.fp) | set(self.fn))
        return {t: self._prf(self.tp[t], self.fp[t], self.fn[t]) for t in types}


def gold_set(doc: PubtatorDoc, types: tuple[str, ...]) -> set[tuple]:
    return {(doc.pmid, m.start, m.end, m.type) for m in doc.mentions if m.type in types}


def score(docs: list[PubtatorDoc], predicted: dict[int, set[tuple]], types: tuple[str, ...]) -> Scores:
    s = Scores()
    for d in docs:
        s.add(gold_set(d, types), {p for p in predicted.get(d.pmid, set()) if p[-1] in types})
    return s


def gold_concepts(doc: PubtatorDoc, types: tuple[str, ...]) -> set[tuple]:
    """(pmid, concept id, type) of a document's gold mentions; composite IDs count for each ID,
    unlinked (-1) mentions are left out (BC5CDR's concept-level evaluation)."""
    return {(doc.pmid, cid, m.type) for m in doc.mentions if m.type in types for cid in gold_ids(m.ids, m.type)}


def score_concepts(docs: list[PubtatorDoc], predicted: dict[int, set[tuple]], types: tuple[str, ...]) -> Scores:
    """Concept-level P/R/F1 per document: the set of (concept id, type) found and linked against the
    gold set; ``predicted``: pmid -> {(pmid, concept id, type)}."""
    s = Scores()
    for d in docs:
        s.add(gold_concepts(d, types), {p for p in predicted.get(d.pmid, set()) if p[-1] in types})
    return s


def score_cid(docs: list[PubtatorDoc], predicted: dict[int, set[tuple]]) -> Scores:
    """BC5CDR CID at document level: {(pmid, chemical id, disease id)} against the gold CID pairs."""
    s = Scores()
    for d in docs:
        gold = {(d.pmid, c, x, "CID") for rtype, a, b in d.relations if rtype == "CID"
                for c in gold_ids(a) for x in gold_ids(b)}
        s.add(gold, {(*p, "CID") for p in predicted.get(d.pmid, set())})
    return s


def gold_relations(doc: PubtatorDoc) -> set[tuple]:
    """A document's relations as (pmid, {(type, concept id), (type, concept id)}, relation type,
    novelty or None), concept IDs as the linker gives them (``gold_ids``); unordered, as BioRED scores."""
    kind: dict[str, str] = {}
    for m in doc.mentions:
        for raw in raw_ids(m.ids, m.type):
            kind.setdefault(raw, m.type)
    out = set()
    for rtype, a, b in doc.relations:
        if a not in kind or b not in kind:
            continue
        novelty = doc.novelty.get((a, b), doc.novelty.get((b, a)))
        for ga in gold_ids(a, kind[a]):
            for gb in gold_ids(b, kind[b]):
                if (kind[a], ga) != (kind[b], gb):
                    out.add((doc.pmid, frozenset({(kind[a], ga), (kind[b], gb)}), rtype, novelty))
    return out


@dataclass
class RelationScores:
    """BioRED's document-level measures (the BioCreative VIII track's): the entity pair; the pair and
    its relation type; the pair and its novelty; all three."""

    pair: Scores
    type: Scores       # by_type: per relation type
    novelty: Scores
    all: Scores

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for name in ("pair", "type", "novelty", "all"):
            p, r, f = getattr(self, name).overall()
            out[name] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}
        return out


def score_doc_relations(gold: set[tuple], predicted: set[tuple]) -> RelationScores:
    """``gold`` and ``predicted``: (pmid, pair, relation type, novelty) as ``gold_relations`` gives them."""
    s = RelationScores(Scores(), Scores(), Scores(), Scores())
    s.pair.add({(g[0], g[1], "pair") for g in gold}, {(p[0], p[1], "pair") for p in predicted})
    s.type.add({(g[0], g[1], g[2]) for g in gold}, {(p[0], p[1], p[2]) for p in predicted})
    s.novelty.add({(g[0], g[1], str(g[3]), "novelty") for g in gold}, {(p[0], p[1], str(p[3]), "novelty") for p in predicted})
    s.all.add({(g[0], g[1], g[2], str(g[3]), "all") for g in gold}, {(p[0], p[1], p[2], str(p[3]), "all") for p in predicted})
    return s
