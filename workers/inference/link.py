"""What a linker answers for one mention (the normalizer's dictionary and embeddings, the lexicon's
genes, species, cell lines and variant rules all answer with it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    concept_id: str | None     # "MESH:D003924", "NCBIGene:7157", "p|SUB|V|600|E", or None (NIL)
    method: str                # abbrev | exact | exact-default | document | adjective | bag | embed | ngram | rules | nil
    score: float               # 1.0 for dictionary hits and rules; the cosine for embed; 0.0 for NIL


NIL = Link(None, "nil", 0.0)
