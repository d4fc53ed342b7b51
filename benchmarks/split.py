"""Sentence-boundary quality and speed: pubmine's splitter vs pysbd, syntok and blingfire.

Reference boundaries come from the corpora themselves: BioBERT's IOB files for NCBI-disease and BC5CDR
are the same abstracts as the PubTator files, already split into sentences (one token per line, a
blank line between sentences). Each IOB sentence is aligned to its PubTator document by its
non-whitespace characters (the IOB files are tokenized and not in PubTator order), which gives every
reference sentence end as a count of non-whitespace characters into the document.

Every splitter gets the same input the pipeline gives ours: the abstract passage text. A boundary is
where a sentence ends inside the abstract (the abstract's own end, and the title, are not counted:
they are free). Scored: boundary precision, recall and F1; speed: reference sentences per second of
the corpus (the same numerator for every splitter), best of several passes on one core.

    python -m benchmarks.split [--corpora ncbi,bc5cdr] [--repeat 3] [--show-errors 20]
"""

from __future__ import annotations

import argparse
import gzip
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.config import shared_data_dir
from pipeline.parse.pubtator import read_pubtator
from pipeline.parse.sentences import split_spans

CORPORA = {
    "ncbi": [("ncbi_disease/iob/train.tsv.gz", "ncbi_disease/pubtator/NCBItrainset_corpus.txt.gz"),
             ("ncbi_disease/iob/devel.tsv", "ncbi_disease/pubtator/NCBIdevelopset_corpus.txt"),
             ("ncbi_disease/iob/test.tsv", "ncbi_disease/pubtator/NCBItestset_corpus.txt")],
    "bc5cdr": [("bc5cdr/iob/chem_disease/train.tsv.gz", "bc5cdr/pubtator/CDR_TrainingSet.PubTator.txt.gz"),
               ("bc5cdr/iob/chem_disease/devel.tsv.gz", "bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt.gz"),
               ("bc5cdr/iob/chem_disease/test.tsv.gz", "bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz")],
}


@dataclass
class RefDoc:
    pmid: int
    corpus: str
    title: str
    abstract: str
    boundaries: set[int]   # reference sentence ends inside the abstract, in non-whitespace chars of the abstract
    raw: set[int]          # the same before removing boundaries inside numbers ("P < 0. ‖ 001")


def _nonws(s: str) -> str:
    return "".join(s.split())


def iob_sentences(path: Path) -> list[str]:
    """Each IOB sentence as its non-whitespace characters."""
    opener = gzip.open if path.name.endswith(".gz") else open
    out, cur = [], []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            token = line.split("\t", 1)[0].strip()
            if token:
                cur.append(token)
            elif cur:
                out.append("".join(cur))
                cur = []
    if cur:
        out.append("".join(cur))
    return out


def reference_documents(corpus: str, iob: Path, pubtator: Path) -> tuple[list[RefDoc], int]:
    """Align IOB sentences to PubTator documents; returns the aligned documents and how many failed."""
    docs = list(read_pubtator(pubtator))
    by_prefix: dict[str, list] = {}
    full = {}
    for d in docs:
        full[d.pmid] = _nonws(d.title + d.abstract)
        by_prefix.setdefault(full[d.pmid][:25], []).append(d)
    sents = iob_sentences(iob)
    out, failed, i = [], 0, 0
    while i < len(sents):
        s = sents[i]
        cands = by_prefix.get(s[:25], []) if len(s) >= 25 else [d for d in docs if full[d.pmid].startswith(s)]
        doc = next((d for d in cands if full[d.pmid].startswith(s)), None)
        if doc is None:
            i += 1
            continue
        target, pos, ends, j = full[doc.pmid], 0, [], i
        while j < len(sents) and pos < len(target) and target.startswith(sents[j], pos):
            pos += len(sents[j])
            ends.append(pos)
            j += 1
        if pos != len(target):
            failed += 1
            i = max(j, i + 1)
            continue
        t = len(_nonws(doc.title))
        raw = {e - t for e in ends if t < e < len(target)}
        out.append(RefDoc(doc.pmid, corpus, doc.title, doc.abstract, raw - inside_numbers(doc.abstract, raw), raw))
        i = j
    return out, failed


def inside_numbers(text: str, boundaries: set[int]) -> set[int]:
    """Reference boundaries that cut a number: '<digit>.' then whitespace then a digit.

    NCBI-disease's text has a space after many decimal points ("P < 0. 001", "Xq26. 3") and its IOB
    file splits sentences there; a boundary inside a number is an artifact of that corpus, not a
    sentence end, and no splitter should be asked to reproduce it.
    """
    pos, seen, out = {}, 0, set()
    for i, ch in enumerate(text):
        if not ch.isspace():
            seen += 1
            pos[seen] = i
    for b in boundaries:
        i = pos.get(b)
        if i is None or text[i] != "." or i == 0 or not text[i - 1].isdigit():
            continue
        rest = text[i + 1:].lstrip()
        if rest[:1].isdigit() and text[i + 1:i + 2].isspace():
            out.add(b)
    return out


def load_reference(corpora: list[str]) -> list[RefDoc]:
    data = shared_data_dir()
    docs = []
    for corpus in corpora:
        for iob, pubtator in CORPORA[corpus]:
            aligned, failed = reference_documents(corpus, data / iob, data / pubtator)
            if failed:
                print(f"  {iob}: {failed} documents could not be aligned (left out)")
            docs.extend(aligned)
    return docs


# ---------------------------------------------------------------------------------------------
# splitters: text -> list of (start, end) character spans


def ours(text: str) -> list[tuple[int, int]]:
    return split_spans(text)


def make_pysbd() -> Callable[[str], list[tuple[int, int]]]:
    import pysbd

    seg = pysbd.Segmenter(language="en", clean=False, char_span=False)

    def split(text):
        return _locate(text, seg.segment(text))
    split.raw = seg.segment
    return split


def make_syntok():
    from syntok import segmenter

    def raw(text):
        return [[(s[0].offset, s[-1].offset + len(s[-1].value)) for s in para if s] for para in segmenter.analyze(text)]

    def split(text):
        return [span for para in raw(text) for span in para]
    split.raw = raw
    return split


def make_blingfire():
    import blingfire

    def raw(text):
        return blingfire.text_to_sentences_and_offsets(text)

    def split(text):
        return [tuple(o) for o in raw(text)[1]]
    split.raw = raw
    return split


def _locate(text: str, sentences: list[str]) -> list[tuple[int, int]]:
    spans, cursor = [], 0
    for s in sentences:
        s = s.strip()
        if not s:
            continue
        at = text.find(s, cursor)
        if at < 0:
            at = cursor
        spans.append((at, at + len(s)))
        cursor = at + len(s)
    return spans


def predicted_boundaries(text: str, spans: list[tuple[int, int]]) -> set[int]:
    """Sentence ends as non-whitespace character counts, the text's own end excluded."""
    prefix = [0]
    for ch in text:
        prefix.append(prefix[-1] + (not ch.isspace()))
    total = prefix[-1]
    return {prefix[e] for _, e in spans if 0 < prefix[e] < total}


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score(split: Callable, docs: list[RefDoc], errors: list | None = None) -> dict[str, Score]:
    """Scores per corpus and "all" against the cleaned reference, and "raw" against the uncleaned one."""
    scores: dict[str, Score] = {}
    for d in docs:
        pred = predicted_boundaries(d.abstract, split(d.abstract))
        for key, ref in ((d.corpus, d.boundaries), ("all", d.boundaries), ("raw", d.raw)):
            s = scores.setdefault(key, Score())
            s.tp += len(pred & ref)
            s.fp += len(pred - ref)
            s.fn += len(ref - pred)
        if errors is not None:
            for kind, miss in (("false split", pred - d.boundaries), ("missed", d.boundaries - pred)):
                for b in miss:
                    errors.append((kind, d.pmid, _context(d.abstract, b)))
    return scores


def _context(text: str, boundary: int) -> str:
    seen = 0
    for i, ch in enumerate(text):
        if seen == boundary:
            return text[max(0, i - 40):i] + " ‖ " + text[i:i + 30].strip()
        seen += not ch.isspace()
    return text[-40:]


def throughput(raw: Callable, texts: list[str], n_sentences: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for t in texts:
            raw(t)
        best = min(best, time.perf_counter() - t0)
    return n_sentences / best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", default="ncbi,bc5cdr")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--show-errors", type=int, default=0, help="print this many of our splitter's errors")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    corpora = args.corpora.split(",")
    docs = load_reference(corpora)
    n_sent = sum(len(d.raw) + 1 for d in docs)  # the reference sentences, as the IOB files have them
    print(f"reference: {len(docs)} abstracts, {n_sent} sentences ({', '.join(corpora)}); "
          f"{sum(len(d.boundaries) for d in docs)} scored boundaries; "
          f"{sum(len(d.raw - d.boundaries) for d in docs)} boundaries inside numbers left out (raw F1 keeps them)")
    texts = [d.abstract for d in docs]
    splitters = {"pubmine": (ours, ours), "pysbd": None, "syntok": None, "blingfire": None}
    for name, make in (("pysbd", make_pysbd), ("syntok", make_syntok), ("blingfire", make_blingfire)):
        fn = make()
        splitters[name] = (fn, fn.raw)
    rows = []
    for name, (fn, raw) in splitters.items():
        errors = [] if name == "pubmine" else None
        sc = score(fn, docs, errors)
        speed = throughput(raw, texts, n_sent, args.repeat if name != "pysbd" else 1)
        rows.append((name, sc, speed))
        if errors and args.show_errors:
            for e in errors[: args.show_errors]:
                print(f"  {e[0]:11s} {e[1]}: {e[2]}")
    pysbd_speed = next(speed for name, _, speed in rows if name == "pysbd")
    header = f"{'splitter':10s} " + " ".join(f"{c + ' F1':>10s}" for c in corpora) + \
        f" {'P':>7s} {'R':>7s} {'F1':>7s} {'raw F1':>7s} {'sent/s':>10s} {'× pysbd':>8s}"
    print(header)
    for name, sc, speed in rows:
        print(f"{name:10s} " + " ".join(f"{sc[c].f1 * 100:10.2f}" for c in corpora) +
              f" {sc['all'].precision * 100:7.2f} {sc['all'].recall * 100:7.2f} {sc['all'].f1 * 100:7.2f}"
              f" {sc['raw'].f1 * 100:7.2f}"
              f" {speed:10.0f} {speed / pysbd_speed:8.1f}")
    ours_f1 = rows[0][1]["all"].f1
    best_other = max(sc["all"].f1 for name, sc, _ in rows[1:])
    print(f"RESULT split f1={ours_f1:.4f} best_other={best_other:.4f} "
          f"speed_vs_pysbd={rows[0][2] / pysbd_speed:.1f}")


if __name__ == "__main__":
    main()
