"""Entity-level evaluation: exact span + type, micro-averaged, and per type.

``predict_documents`` runs a tagger over PubTator documents exactly as the pipeline does (the same
passage layout, the same sentence splitter, sentence offsets added back), so `pubmine evaluate` and
the end-to-end benchmark measure the same thing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import shared_data_dir
from pipeline.parse.medline import layout_passages
from pipeline.parse.pubtator import PubtatorDoc, read_pubtator
from pipeline.parse.sentences import split_spans

# dataset name -> (PubTator test file relative to shared/data, entity types scored)
DATASETS = {
    "bc5cdr": ("bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", ("Chemical", "Disease")),
    "bc5cdr-chem": ("bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", ("Chemical",)),
    "bc5cdr-disease": ("bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", ("Disease",)),
    "ncbi-disease": ("ncbi_disease/pubtator/NCBItestset_corpus.txt", ("Disease",)),
}


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


def doc_sentences(doc: PubtatorDoc) -> list[tuple[int, str]]:
    """(document offset, sentence text) as the pipeline's parse stage produces them."""
    out = []
    for p in layout_passages([("title", None, doc.title), ("abstract", None, doc.abstract)]):
        for s, e in split_spans(p.text):
            out.append((p.offset + s, p.text[s:e]))
    return out


def predict_documents(tagger, docs: list[PubtatorDoc], batch_sentences: int = 512) -> dict[int, set[tuple]]:
    """pmid -> {(pmid, start, end, type)} predicted."""
    items = [(d.pmid, off, text) for d in docs for off, text in doc_sentences(d)]
    out: dict[int, set[tuple]] = {d.pmid: set() for d in docs}
    for i in range(0, len(items), batch_sentences):
        chunk = items[i : i + batch_sentences]
        for (pmid, off, _), spans in zip(chunk, tagger.tag([t for _, _, t in chunk])):
            for sp in spans:
                out[pmid].add((pmid, off + sp.start, off + sp.end, sp.type))
    return out


def gold_set(doc: PubtatorDoc, types: tuple[str, ...]) -> set[tuple]:
    return {(doc.pmid, m.start, m.end, m.type) for m in doc.mentions if m.type in types}


def score(docs: list[PubtatorDoc], predicted: dict[int, set[tuple]], types: tuple[str, ...]) -> Scores:
    s = Scores()
    for d in docs:
        s.add(gold_set(d, types), {p for p in predicted.get(d.pmid, set()) if p[-1] in types})
    return s


def load_dataset(name: str, data_dir: Path | None = None) -> tuple[list[PubtatorDoc], tuple[str, ...]]:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}")
    rel, types = DATASETS[name]
    return list(read_pubtator((data_dir or shared_data_dir()) / rel)), types
