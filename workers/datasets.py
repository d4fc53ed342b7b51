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

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pipeline.config import shared_data_dir
from pipeline.errors import PubmineError

# BioRED's classes -> pubmine's entity types
BIORED_TYPES = {"GeneOrGeneProduct": "Gene", "DiseaseOrPhenotypicFeature": "Disease", "ChemicalEntity": "Chemical",
                "SequenceVariant": "Variant", "OrganismTaxon": "Species", "CellLine": "CellLine"}
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


def _open(path: Path) -> IO[str]:
    return gzip.open(path, "rt", encoding="utf-8") if path.name.endswith(".gz") else open(path, encoding="utf-8")


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
    with _open(path) as f:
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
    with _open(path) as f:
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
    with _open(path) as f:
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
