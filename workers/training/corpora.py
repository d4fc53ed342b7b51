"""Readers for the benchmark corpora in ../shared/data, in the forms the BioBERT paper evaluates on.

- IOB (MTL-Bioinformatics-2016 / BioBERT NER splits): one ``token<TAB>tag`` per line, a blank line
  between sentences; tags are typed (``B-Disease``); ``-DOCSTART-`` lines are skipped.
- PubTator (BC5CDR, NCBI-disease, BioRED): :func:`pipeline.parse.pubtator.read_pubtator`, with
  :data:`BIORED_TYPES` for BioRED's entity classes.
- GAD (BioBERT fold): ``sentence<TAB>label`` (train, no header) or ``index<TAB>sentence<TAB>label``
  (test, with a header); genes and diseases masked as ``@GENE$`` / ``@DISEASE$``.
- EU-ADR (10 folds): JSON lines with ``text_with_entity_marker`` and a ``relation`` list.
- ChemProt (SciBERT form): JSON lines with ``<< chemical >>`` / ``[[ protein ]]`` markers and a label.

Every reader names the file and line of a malformed record instead of guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pipeline.config import shared_data_dir
from pipeline.errors import PubmineError
from pipeline.parse.pubtator import TYPE_MAP, doc_sentences, read_pubtator
from pipeline.storage import open_text
from workers.inference.relations import DOC_RE_NEGATIVE, DOCUMENT_FORMS, concept_pair_candidates

# BioRED's classes -> pubmine's entity types (read_pubtator's default map knows them too)
BIORED_TYPES = {k: TYPE_MAP[k] for k in ("GeneOrGeneProduct", "DiseaseOrPhenotypicFeature", "ChemicalEntity",
                                         "SequenceVariant", "OrganismTaxon", "CellLine")}
# IOB tag types -> pubmine's entity types
IOB_TYPES = {"GENE": "Gene", "Disease": "Disease", "Chemical": "Chemical", "Species": "Species",
             "protein": "protein", "DNA": "DNA", "RNA": "RNA", "cell_line": "cell_line", "cell_type": "cell_type"}

# BioBERT's NER benchmarks: dataset -> folder of {train,devel,test}.tsv[.gz] below shared/data
IOB_DATASETS = {
    "ncbi-disease": "ncbi_disease/iob",
    "bc5cdr-chem": "bc5cdr/iob/chem",
    "bc5cdr-disease": "bc5cdr/iob/disease",
    "bc2gm": "bc2gm/iob",
    "jnlpba": "jnlpba/iob_mtl",
    "linnaeus": "linnaeus/iob",
}


class DatasetError(PubmineError):
    pass


def data_file(rel: str | Path) -> Path:
    """A path below shared/data (absolute paths pass through); ``x.tsv`` also finds ``x.tsv.gz``."""
    path = Path(rel)
    if not path.is_absolute():
        path = shared_data_dir() / path
    if not path.exists() and Path(str(path) + ".gz").exists():
        path = Path(str(path) + ".gz")
    if not path.exists():
        raise DatasetError(f"dataset file {path} not found; expected it under {shared_data_dir()} "
                           "(set PUBMINE_DATA to the folder that holds the corpora)")
    return path


@dataclass
class IobSentence:
    tokens: list[str]
    tags: list[str]          # B-<type> / I-<type> / O, types mapped through IOB_TYPES

    def spans(self) -> list[tuple[int, int, str]]:
        """Entities as (first token, last token + 1, type); an I- that does not continue opens one
        (the conlleval/seqeval convention)."""
        out, start, kind = [], None, None
        for i, tag in enumerate(self.tags + ["O"]):
            prefix, _, t = tag.partition("-")
            if start is not None and (prefix != "I" or t != kind):
                out.append((start, i, kind))
                start = None
            if prefix == "B" or (prefix == "I" and start is None):
                start, kind = i, t
        return out


def read_iob(path: str | Path) -> list[IobSentence]:
    path = data_file(path)
    sentences: list[IobSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    with open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                if tokens:
                    sentences.append(IobSentence(tokens, tags))
                    tokens, tags = [], []
                continue
            cols = line.split("\t")
            if len(cols) < 2:
                raise DatasetError(f"{path}:{lineno}: expected 'token<TAB>tag', got {line!r}")
            token, tag = cols[0], cols[-1].strip()
            if token == "-DOCSTART-":
                continue
            if tag != "O":
                prefix, _, kind = tag.partition("-")
                if prefix not in ("B", "I") or not kind:
                    raise DatasetError(f"{path}:{lineno}: tag {tag!r} is not O, B-<type> or I-<type>")
                tag = f"{prefix}-{IOB_TYPES.get(kind, kind)}"
            tokens.append(token)
            tags.append(tag)
    if tokens:
        sentences.append(IobSentence(tokens, tags))
    return sentences


def iob_split(dataset: str, split: str) -> list[IobSentence]:
    if dataset not in IOB_DATASETS:
        raise DatasetError(f"unknown IOB dataset {dataset!r}; choose one of {', '.join(sorted(IOB_DATASETS))}")
    return read_iob(Path(IOB_DATASETS[dataset]) / f"{split}.tsv")


@dataclass
class RelationExample:
    text: str                # the sentence with its entities masked or marked, as the corpus gives it
    label: str               # GAD/EU-ADR: "1"/"0"; ChemProt: CPR class name or "false"
    id: str = ""


def read_gad(path: str | Path) -> list[RelationExample]:
    path = data_file(path)
    out = []
    with open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            cols = line.rstrip("\n").split("\t")
            if lineno == 1 and cols[-1] == "label":
                continue  # the test file's header
            if len(cols) == 3:
                idx, text, label = cols
            elif len(cols) == 2:
                (text, label), idx = cols, str(lineno)
            else:
                raise DatasetError(f"{path}:{lineno}: expected 'sentence<TAB>label' or 'index<TAB>sentence<TAB>label'")
            if label not in ("0", "1"):
                raise DatasetError(f"{path}:{lineno}: label {label!r} is not 0 or 1")
            out.append(RelationExample(text, label, idx))
    return out


def _json_lines(path: str | Path, what: str, make) -> list[RelationExample]:
    """``make(record, lineno)`` for every JSON line; a line that is not one names file and line."""
    path = data_file(path)
    out = []
    with open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                out.append(make(json.loads(line), lineno))
            except (ValueError, KeyError, IndexError) as exc:
                raise DatasetError(f"{path}:{lineno}: not a {what} record ({type(exc).__name__}: {exc})") from exc
    return out


def read_euadr(path: str | Path) -> list[RelationExample]:
    """One example per JSON line: the marked sentence and '1' (positive) or '0' (negative)."""
    return _json_lines(path, "EU-ADR", lambda rec, _: RelationExample(
        rec["text_with_entity_marker"], "1" if rec["relation"][0]["relation_type"] == "positive" else "0", rec["id"]))


def euadr_fold(fold: int, split: str) -> list[RelationExample]:
    if not 0 <= fold <= 9 or split not in ("train", "test"):
        raise DatasetError(f"EU-ADR has folds 0-9 with train/test splits (got fold {fold}, split {split!r})")
    return read_euadr(f"euadr/blurb_style_10fold/{split}_{fold}.json")


def read_chemprot(path: str | Path) -> list[RelationExample]:
    return _json_lines(path, "ChemProt", lambda rec, lineno: RelationExample(rec["text"], rec["label"], str(lineno)))


# Document-level relation corpora (BC5CDR CID, BioRED): relations hold between *concepts* (entity
# IDs) of a document, not between mentions. Each candidate concept pair becomes one example: the
# shortest run of sentences (at most ``window``) that mentions both, every mention of the first
# concept wrapped in [E1] [/E1] and of the second in [E2] [/E2]. A gold relation whose concepts never
# come that close has no example; scorers count it as missed (a false negative), so the score is
# the document-level one the shared tasks define.
DOC_RE_CORPORA = {
    # name -> (train files, test files, entity-type map, candidate type pairs or None = from training)
    "bc5cdr-cid": (("bc5cdr/pubtator/CDR_TrainingSet.PubTator.txt.gz", "bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt.gz"),
                   ("bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz",), None, DOCUMENT_FORMS["bc5cdr-cid"]),
    # BioRED's test split is withheld from the public release copy here; its Dev split is the test.
    "biored": (("biored/pubtator/Train.PubTator.gz",), ("biored/pubtator/Dev.PubTator.gz",), BIORED_TYPES,
               DOCUMENT_FORMS["biored"]),
}


@dataclass
class DocRelationSet:
    examples: list[RelationExample]      # id: "pmid|id1|id2"
    missed: list[tuple[int, str, str, str]]  # gold (pmid, id1, id2, type) with no example


def _concepts(doc, types: set[str]) -> dict[tuple[str, str], list]:
    """(type, concept id) -> its mentions; composite IDs (``D001|D002``, ``3172,3651``) count for each
    ID, unnormalized mentions (``-1``, empty) are left out."""
    out: dict[tuple[str, str], list] = {}
    for m in doc.mentions:
        if m.type not in types:
            continue
        for cid in m.ids.replace(",", "|").replace(";", "|").split("|"):
            cid = cid.strip()
            if cid and cid != "-1":
                out.setdefault((m.type, cid), []).append(m)
    return out


def doc_relation_examples(docs, type_pairs: tuple[tuple[str, str], ...], window: int = 3) -> DocRelationSet:
    """Candidate concept pairs of every document (see DOC_RE_CORPORA) with their gold label or
    ``None``; relations are undirected for lookup (BioRED lists either order)."""
    types = {t for pair in type_pairs for t in pair}
    examples, missed = [], []
    for doc in docs:
        gold = {}
        for rtype, a, b in doc.relations:
            gold[frozenset((a, b))] = rtype
        covered = set()
        for c in concept_pair_candidates(doc.text, doc_sentences(doc), _concepts(doc, types), type_pairs, window):
            key = frozenset((c.head[1], c.tail[1]))
            examples.append(RelationExample(c.text, gold.get(key, DOC_RE_NEGATIVE), f"{doc.pmid}|{c.head[1]}|{c.tail[1]}"))
            covered.add(key)
        missed += [(doc.pmid, *sorted(k), t) for k, t in gold.items() if k not in covered]
    return DocRelationSet(examples, missed)


def doc_relation_split(name: str, split: str, window: int = 3,
                       type_pairs: tuple[tuple[str, str], ...] | None = None) -> DocRelationSet:
    """The train or test candidates of a document-level relation corpus (see DOC_RE_CORPORA)."""
    if name not in DOC_RE_CORPORA or split not in ("train", "test"):
        raise DatasetError(f"document relation corpora are {', '.join(DOC_RE_CORPORA)} with train/test splits "
                           f"(got {name!r}, {split!r})")
    train_files, test_files, tmap, pairs = DOC_RE_CORPORA[name]
    docs = [d for f in (train_files if split == "train" else test_files)
            for d in read_pubtator(data_file(f), tmap)]
    if type_pairs is None:
        type_pairs = pairs or related_type_pairs(name)
    return doc_relation_examples(docs, type_pairs, window)


@lru_cache(maxsize=None)  # read once per process: both splits of a corpus need the training split's pairs
def related_type_pairs(name: str) -> tuple[tuple[str, str], ...]:
    """The entity-type pairs the training split relates (both orders), e.g. BioRED's Gene-Disease."""
    train_files, _, tmap, _ = DOC_RE_CORPORA[name]
    pairs = set()
    for f in train_files:
        for doc in read_pubtator(data_file(f), tmap):
            kind = {cid: t for t, cid in _concepts(doc, {m.type for m in doc.mentions})}
            for _, a, b in doc.relations:
                if a in kind and b in kind:
                    pairs |= {(kind[a], kind[b]), (kind[b], kind[a])}
    return tuple(sorted(pairs))
