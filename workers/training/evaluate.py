"""Scoring every model kind: entities (exact span + type, micro-averaged and per type, on whole
abstracts or on BioBERT's IOB splits), concepts and CID pairs per document, relation classifiers as
the papers score them, and accuracy@1 of linking gold mentions.

``predict_documents`` runs a tagger over PubTator documents exactly as the pipeline does (the same
passage layout, the same sentence splitter, sentence offsets added back), so `pubmine evaluate` and
the end-to-end benchmark measure the same thing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import shared_data_dir
from pipeline.parse.pubtator import PubtatorDoc, read_pubtator
from workers.inference.normalize import NormalizationError, Normalizer
from pipeline.parse.pubtator import doc_sentences, gold_ids
from pipeline.parse.sentences import sentence_numbers
from pipeline.scores import Scores

# Document-level NER sets: whole PubTator abstracts through the pipeline's own layout and splitter.
# dataset name -> (PubTator test file relative to shared/data, entity types scored)
DATASETS = {
    "bc5cdr": ("bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", ("Chemical", "Disease")),
    "bc5cdr-docs-chem": ("bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", ("Chemical",)),
    "bc5cdr-docs-disease": ("bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", ("Disease",)),
    "ncbi-disease-docs": ("ncbi_disease/pubtator/NCBItestset_corpus.txt", ("Disease",)),
    # BioRED's public copy withholds its test split: Dev is the test (models select on held-out Train)
    "biored-ner": ("biored/pubtator/Dev.PubTator.gz", ("Chemical", "Disease", "Gene", "Species", "CellLine", "Variant")),
}
# The BioBERT paper's NER benchmarks: the IOB test splits, strict entity-level (seqeval) scoring.
# dataset name -> entity types scored (the IOB folder is in workers.datasets.IOB_DATASETS)
IOB_EVAL = {
    "ncbi-disease": ("Disease",),
    "bc5cdr-chem": ("Chemical",),
    "bc5cdr-disease": ("Disease",),
    "bc2gm": ("Gene",),
    "linnaeus": ("Species",),
}


def predict_documents(tagger, docs: list[PubtatorDoc], batch_sentences: int = 512,
                      scores: dict | None = None) -> dict[int, set[tuple]]:
    """pmid -> {(pmid, start, end, type)} predicted (``scores``, if given, gets each one's score)."""
    items = [(d.pmid, off, text) for d in docs for off, text in doc_sentences(d)]
    out: dict[int, set[tuple]] = {d.pmid: set() for d in docs}
    for i in range(0, len(items), batch_sentences):
        chunk = items[i : i + batch_sentences]
        for (pmid, off, _), spans in zip(chunk, tagger.tag([t for _, _, t in chunk])):
            for sp in spans:
                key = (pmid, off + sp.start, off + sp.end, sp.type)
                out[pmid].add(key)
                if scores is not None:
                    scores[key] = sp.score
    return out


def iob_text(tokens: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Tokens joined by single spaces, and each token's character span in that text."""
    offsets, pos = [], 0
    for t in tokens:
        offsets.append((pos, pos + len(t)))
        pos += len(t) + 1
    return " ".join(tokens), offsets


def char_to_token_span(offsets: list[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """The tokens a character span touches, as (first, last + 1); None when it touches none."""
    first = next((i for i, (_, e) in enumerate(offsets) if e > start), None)
    if first is None:
        return None
    last = first
    while last + 1 < len(offsets) and offsets[last + 1][0] < end:
        last += 1
    return first, last + 1


def predict_iob(tagger, sentences, batch_sentences: int = 512, scores: dict | None = None) -> list[set[tuple]]:
    """Per IOB sentence, the predicted entities as {(first token, last token + 1, type)}
    (``scores``, if given, gets {(sentence, first, last + 1, type): score})."""
    out: list[set[tuple]] = []
    for i in range(0, len(sentences), batch_sentences):
        chunk = [iob_text(s.tokens) for s in sentences[i : i + batch_sentences]]
        for (_, offsets), spans in zip(chunk, tagger.tag([t for t, _ in chunk])):
            found = set()
            for sp in spans:
                tok = char_to_token_span(offsets, sp.start, sp.end)
                if tok:
                    found.add((*tok, sp.type))
                    if scores is not None:
                        scores[(len(out), *tok, sp.type)] = sp.score
            out.append(found)
    return out


def score_iob(sentences, predicted: list[set[tuple]], types: tuple[str, ...]) -> Scores:
    """Strict entity-level P/R/F1: exact token range and type (seqeval's default)."""
    s = Scores()
    for i, (sent, pred) in enumerate(zip(sentences, predicted)):
        s.add({(i, a, b, t) for a, b, t in sent.spans() if t in types},
              {(i, a, b, t) for a, b, t in pred if t in types})
    return s


def load_dataset(name: str, data_dir: Path | None = None) -> tuple[list[PubtatorDoc], tuple[str, ...]]:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}")
    rel, types = DATASETS[name]
    return list(read_pubtator((data_dir or shared_data_dir()) / rel)), types


@dataclass
class ReScores:
    precision: float
    recall: float
    f1: float
    n: int


def score_relations(gold: list[str], pred: list[str], negative: str | None, missed: int = 0) -> ReScores:
    """Binary sets: P/R/F1 of the positive class; multi-class: micro P/R/F1 over every class but the
    negative one (with no negative class, micro-F1 equals accuracy). ``missed``: gold relations that
    had no example at all, counted as false negatives."""
    positive = [l for l in sorted(set(gold) | set(pred)) if l != negative]
    tp = sum(1 for g, p in zip(gold, pred) if g == p and p in positive)
    fp = sum(1 for g, p in zip(gold, pred) if p in positive and g != p)
    fn = sum(1 for g, p in zip(gold, pred) if g in positive and g != p) + missed
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return ReScores(prec, rec, 2 * prec * rec / (prec + rec) if prec + rec else 0.0, len(gold) + missed)


# gold-mention linking sets: name -> (PubTator test file, entity type)
NORM_DATASETS = {
    "ncbi-disease": ("ncbi_disease/pubtator/NCBItestset_corpus.txt", "Disease"),
    "bc5cdr-disease": ("bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", "Disease"),
    "bc5cdr-chem": ("bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", "Chemical"),
}


BIORED_DEV = "biored/pubtator/Dev.PubTator.gz"   # BioRED's test split is withheld; Dev is the test here
SIX_TYPES = ("Chemical", "Disease", "Gene", "Species", "CellLine", "Variant")


@dataclass
class LinkingScore:
    accuracy: float
    n: int
    by_method: dict[str, tuple[int, int]]   # method -> (correct, linked by it)


def evaluate_linking(normalizer: Normalizer, dataset: str, data_dir: Path | None = None) -> LinkingScore:
    """accuracy@1 on the gold mentions of a test set (unlinked ``-1`` mentions left out): the top
    concept must be one of the mention's gold IDs; NIL is wrong."""
    if dataset not in NORM_DATASETS:
        raise NormalizationError(f"unknown normalization dataset {dataset!r}; choose one of {', '.join(NORM_DATASETS)}")
    rel, kind = NORM_DATASETS[dataset]
    return evaluate_linking_by_type(normalizer, rel, (kind,), data_dir)[kind]


def evaluate_linking_by_type(normalizer: Normalizer, rel: str = BIORED_DEV, types: tuple[str, ...] = SIX_TYPES,
                             data_dir: Path | None = None) -> dict[str, LinkingScore]:
    """accuracy@1 per type on every gold mention of a six-type corpus (BioRED Dev) that has an ID,
    each document's mentions linked together as the pipeline links them (its species decide its
    genes). The top concept must be one of the mention's gold IDs; NIL is wrong."""
    counts: dict[str, dict[str, list[int]]] = {t: defaultdict(lambda: [0, 0]) for t in types}
    docs = list(read_pubtator((data_dir or shared_data_dir()) / rel))
    mentions = [[m for m in doc.mentions if m.type in counts and gold_ids(m.ids, m.type)] for doc in docs]
    links = normalizer.link_documents([(doc.text, [(m.text, m.type, s) for m, s in
                                                   zip(ms, sentence_numbers(doc.text, [m.start for m in ms]))])
                                       for doc, ms in zip(docs, mentions)])
    for ms, ls in zip(mentions, links):
        for m, link in zip(ms, ls):
            c = counts[m.type][link.method]
            c[0] += link.concept_id in gold_ids(m.ids, m.type)
            c[1] += 1
    out = {}
    for t, by in counts.items():
        n = sum(c[1] for c in by.values())
        out[t] = LinkingScore(sum(c[0] for c in by.values()) / max(n, 1), n, {k: tuple(v) for k, v in by.items()})
    return out
