"""Ray Data stages of extraction. Each model-holding stage is a callable class: Ray Data makes it an
actor pool, and the model loads once per actor in ``__init__`` (never on the driver, never at import).

    sentences ─▶ Tokenize (CPU actors) ─▶ NerPredictor (model actors: CPU or GPU)
              ─▶ DocumentStage (normalizer + relation classifiers) ─▶ state/extracted/<xfp>/parts/<key>/

Every block the driver hands in holds whole documents (``pipeline.publish.split_documents``), and
every stage runs with ``batch_size=None`` (a batch is a block), so the document stage sees all
sentences of a document at once: abbreviations are read from the whole text and document-level
relation candidates span sentences. The document stage writes the block's entities, relations and
covered (doc_id, text_sha256) pairs itself, as one part named by that content, so a retried block
rewrites its own part and never duplicates rows; the driver carries parts into the snapshot
(``pipeline.reuse``).
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import schemas
from pipeline.layout import EXTRACT_DIR, extracted_part, run_state, table_file
from pipeline.parse.document import text_at_offsets
from pipeline.storage import Store
from workers.inference.artifacts import load_tokenizer, stage_artifact
from workers.inference.decoding import can_be_entity, one_type_per_span, trimmed

SPAN, TAGGED, COUNTS = schemas.SPAN, schemas.TAGGED, schemas.BLOCK_COUNTS  # declared in pipeline.schemas


@dataclass(frozen=True)
class StageResources:
    """What one actor of a stage asks Ray for; configs override, the stage declares."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0

    @property
    def threads(self) -> int:
        """torch threads for an actor holding this CPU share (at least one)."""
        return max(1, math.ceil(self.num_cpus - 1e-9))


def part_key(covered: pa.Table) -> str:
    """An extracted part's name: a hash of the (doc_id, text_sha256) pairs it covers, in order."""
    h = hashlib.sha256()
    for doc_id, sha in zip(covered.column("doc_id").to_pylist(), covered.column("text_sha256").to_pylist()):
        h.update(f"{doc_id}\x1f{sha}\x1e".encode())
    return h.hexdigest()[:24]


def _staged(url: str, storage_options: dict | None):
    return stage_artifact(url, storage_options)


class Tokenize:
    """sentences -> the same rows plus word pieces and word maps (the CPU half of NER), so the model
    actors only run the encoder. Columns added: ``input_ids``, ``word_first`` (each word's first piece)
    and ``word_start``/``word_end`` (each word's characters in the sentence).

    Given ``store_url`` and ``run_id``, a batch may instead name blocks (column ``block``) written by
    the publish tasks under ``state/runs/<run>/extract/``: they are read here, as the stage gets to
    them, so the sentences to extract never wait in the object store (each names whole documents)."""

    def __init__(self, model_url: str, storage_options: dict | None = None, store_url: str | None = None,
                 run_id: str | None = None):
        self.tokenizer = load_tokenizer(_staged(model_url, storage_options), "ner")
        self.store = Store(store_url, storage_options) if store_url else None
        self.run_id = run_id

    def _read(self, names: list[str]) -> pa.Table:
        return pa.concat_tables([self.store.read_table(*run_state(self.run_id, EXTRACT_DIR, n)) for n in names])

    def __call__(self, batch: pa.Table) -> pa.Table:
        from workers.inference.ner import encode

        if "block" in batch.column_names:
            batch = self._read(batch.column("block").to_pylist())

        enc = encode(self.tokenizer, batch.column("text").to_pylist())
        lists = pa.list_(pa.int32())
        return (batch.append_column("input_ids", pa.array(enc.ids, lists))
                .append_column("word_first", pa.array(enc.word_first, lists))
                .append_column("word_start", pa.array([[a for a, _ in sp] for sp in enc.word_spans], lists))
                .append_column("word_end", pa.array([[b for _, b in sp] for sp in enc.word_spans], lists)))


def _split_lists(column: pa.ChunkedArray) -> list[np.ndarray]:
    arr = column.combine_chunks()
    offsets = arr.offsets.to_numpy()
    values = arr.values.to_numpy(zero_copy_only=False)
    return np.split(values, offsets[1:-1] - offsets[0]) if len(arr) else []


class NerPredictor:
    """tokenized sentences (see Tokenize) -> TAGGED: each sentence with its entity spans in document
    offsets. Raw sentences (no ``input_ids``) are tokenized here instead."""

    def __init__(self, model_url: str, storage_options: dict | None = None, max_length: int = 256,
                 stride: int = 64, max_tokens_per_batch: int = 8192, precision: str = "auto",
                 num_threads: int | None = None):
        from workers.inference.device import use_threads
        from workers.inference.ner import NerTagger

        use_threads(num_threads)
        self.tagger = NerTagger.load(_staged(model_url, storage_options), max_length=max_length, stride=stride,
                                     max_tokens_per_batch=max_tokens_per_batch, precision=precision)

    def __call__(self, batch: pa.Table) -> pa.Table:
        from workers.inference.decoding import piece_shapes
        from workers.inference.ner import Encoded

        if "input_ids" in batch.column_names:
            enc = Encoded(_split_lists(batch.column("input_ids")), _split_lists(batch.column("word_first")),
                          [list(zip(s.tolist(), e.tolist())) for s, e in
                           zip(_split_lists(batch.column("word_start")), _split_lists(batch.column("word_end")))])
            if self.tagger.case:
                enc.shapes = [piece_shapes(t, f.tolist(), sp, len(x)) for t, f, sp, x in
                              zip(batch.column("text").to_pylist(), enc.word_first, enc.word_spans, enc.ids)]
        else:
            enc = self.tagger.encode(batch.column("text").to_pylist())
        bases = batch.column("start").to_pylist()
        spans = self.tagger.tag_encoded(enc) if batch.num_rows else []
        entities = [[{"start": base + sp.start, "end": base + sp.end, "type": sp.type, "score": sp.score}
                     for sp in sent] for base, sent in zip(bases, spans)]
        cols = {name: batch.column(name) for name in ("doc_id", "sent_idx", "start", "text")}
        sha = batch.column("text_sha256") if "text_sha256" in batch.column_names else pa.nulls(batch.num_rows, pa.string())
        return pa.table({**cols, "text_sha256": sha, "entities": pa.array(entities, pa.list_(SPAN))}, schema=TAGGED)


@dataclass
class _Doc:
    doc_id: str
    text_sha256: str | None
    sents: list          # (sent_idx, document offset, text), in text order
    ents: list           # entity dicts (document offsets, sent_idx, text)
    text: str = ""       # the document's text as far as its sentences cover it


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    row: int          # index into the block's entity rows


def kept_unlinked(kind: str, score: float, keep_from: dict) -> bool:
    """Whether an entity that no dictionary linked stays: a type not in ``keep_from`` keeps every
    such span, None keeps none, a number keeps those whose calibrated score reaches it
    (``extract.keep_unlinked_from``)."""
    if kind not in keep_from:
        return True
    least = keep_from[kind]
    return least is not None and score >= least


class DocumentStage:
    """TAGGED blocks (whole documents) -> entity rows with concept IDs, and document-level relations,
    written as one extracted part ``state/extracted/<xfp>/parts/<key>/`` whose key is derived from the
    block's documents and texts (a retried block rewrites its own part): ``entities.parquet``,
    ``relations.parquet``, then ``docs.parquet`` (doc_id, text_sha256), the part's completion marker.
    The driver carries parts into the snapshot. Returns COUNTS."""

    def __init__(self, store_url: str, run_id: str, ner_model_id: str, xfp: str, storage_options: dict | None = None,
                 normalizer_url: str | None = None, relation_urls: tuple[str, ...] = (),
                 precision: str = "auto", num_threads: int | None = None, keep_unlinked_from: dict | None = None):
        from workers.inference.artifacts import read_manifest
        from workers.inference.device import use_threads
        from workers.inference.docre import DocRelationExtractor
        from workers.inference.normalize import Normalizer
        from workers.inference.relations import RelationClassifier

        use_threads(num_threads)
        self.store = Store(store_url, storage_options)
        self.run_id, self.ner_model_id, self.xfp = run_id, ner_model_id, xfp
        self.normalizer = Normalizer.load(_staged(normalizer_url, storage_options)) if normalizer_url else None
        self.keep_unlinked_from = dict(keep_unlinked_from or {})
        self.relations, self.doc_relations = [], []   # per-pair classifiers; one-pass document models
        for url in relation_urls:
            folder = _staged(url, storage_options)
            if read_manifest(folder).get("task") == "re-doc":
                self.doc_relations.append(DocRelationExtractor.load(folder, precision=precision))
            else:
                self.relations.append(RelationClassifier.load(folder, precision=precision))
                self.relations[-1].pipeline_check()

    def annotate(self, batch: pa.Table) -> tuple[list[_Doc], pa.Table, pa.Table]:
        """A TAGGED batch's documents, their entity rows (linked) and relation rows; nothing written
        (the nightly spot-check scores these on gold abstracts)."""
        docs = self._documents(batch)
        ents = self._entities(docs)
        return docs, ents, self._relations(docs, ents)

    def __call__(self, batch: pa.Table) -> pa.Table:
        docs, ents, rels = self.annotate(batch)
        if not docs:
            return COUNTS.empty_table()
        first, last = docs[0].doc_id, docs[-1].doc_id
        covered = pa.table({"doc_id": [d.doc_id for d in docs], "text_sha256": [d.text_sha256 for d in docs]},
                           schema=schemas.EXTRACTED_DOCS)
        key = part_key(covered)
        for name, table in (("entities", ents), ("relations", rels), ("docs", covered)):  # docs last: the marker
            self.store.write_table(table, *extracted_part(self.xfp, key, table_file(name)))
        linked = pc.sum(pc.is_valid(ents.column("concept_id"))).as_py() or 0
        return pa.table({"documents": [len(docs)], "entities": [ents.num_rows], "linked": [linked],
                         "relations": [rels.num_rows], "first_doc": [first], "last_doc": [last], "part": [key]},
                        schema=COUNTS)

    @classmethod
    def _documents(cls, batch: pa.Table) -> list[_Doc]:
        """The block's documents, in block order."""
        out: list[_Doc] = []
        for doc_id, s_idx, start, text, sha, spans in zip(*(batch.column(c).to_pylist() for c in TAGGED.names)):
            if not out or out[-1].doc_id != doc_id:
                out.append(_Doc(doc_id, sha, [], []))
            out[-1].sents.append((s_idx, start, text))
            edges = [trimmed(text, sp["start"] - start, sp["end"] - start, sp["type"]) for sp in spans]
            spans = [{**sp, "start": s + start, "end": e + start} for sp, (s, e) in zip(spans, edges)]
            for sp in one_type_per_span(spans):
                mention = text[sp["start"] - start:sp["end"] - start]
                if can_be_entity(mention):
                    out[-1].ents.append({**sp, "sent_idx": s_idx, "text": mention})
        for doc in out:
            doc.sents.sort(key=lambda s: s[1])
            doc.ents.sort(key=lambda e: (e["start"], e["end"]))   # text order (the linker reads it so)
            doc.text = cls.document_text(doc.sents)
        return out

    @staticmethod
    def document_text(sents: list[tuple[int, int, str]]) -> str:
        """The text that sentences in text order cover (gaps between sentences are blanks: offsets
        stay those of the published text)."""
        return text_at_offsets((start, text) for _, start, text in sents)

    def _entities(self, docs) -> pa.Table:
        lexicon = self.normalizer.lexicon if self.normalizer else None
        if lexicon is not None:  # an organism's name is not a disease, chemical or gene (lexicon.not_an_organism)
            for doc in docs:
                doc.ents = [e for e in doc.ents if lexicon.not_an_organism(e["text"], e["type"])]
        cols: dict[str, list] = {name: [] for name in schemas.ENTITIES.names}
        all_links = (self.normalizer.link_documents([(d.text, [(e["text"], e["type"], e["sent_idx"]) for e in d.ents])
                                                        for d in docs])
                     if self.normalizer else [[None] * len(d.ents) for d in docs])
        for doc, links in zip(docs, all_links):
            if self.normalizer:  # an unlinked entity stays only from its type's score (kept_unlinked)
                pairs = [(e, link) for e, link in zip(doc.ents, links)
                         if link.concept_id or kept_unlinked(e["type"], e["score"], self.keep_unlinked_from)]
                doc.ents, links = [e for e, _ in pairs], [link for _, link in pairs]
            for e, link in zip(doc.ents, links):
                cols["doc_id"].append(doc.doc_id)
                for k in ("start", "end", "text", "type", "score", "sent_idx"):
                    cols[k].append(e[k])
                cols["concept_id"].append(link.concept_id if link else None)
                cols["concept_score"].append(link.score if link and link.concept_id else None)
                cols["link_method"].append(link.method if link else None)
                cols["dictionary_version"].append(self.normalizer.version_for(e["type"]) if self.normalizer else None)
                cols["model_id"].append(self.ner_model_id)
                cols["run_id"].append(self.run_id)
        return pa.table(cols, schema=schemas.ENTITIES)

    def _relations(self, docs, ents: pa.Table) -> pa.Table:
        rows: list[dict] = []
        if not (self.relations or self.doc_relations) or not ents.num_rows:
            return schemas.RELATIONS.empty_table()
        e_doc, e_start, e_end, e_type, e_cid, e_sent = (ents.column(c).to_pylist() for c in
                                                        ("doc_id", "start", "end", "type", "concept_id", "sent_idx"))
        by_doc: dict[str, list[int]] = defaultdict(list)
        for i, d in enumerate(e_doc):
            by_doc[d].append(i)
        ref = lambda m: {"start": e_start[m.row], "end": e_end[m.row], "type": e_type[m.row], "concept_id": e_cid[m.row]}
        for clf in self.relations:
            cands = (self._sentence_candidates(clf, docs, by_doc, e_sent, e_type, e_start, e_end)
                     if clf.level == "sentence" else
                     self._document_candidates(clf, docs, by_doc, e_type, e_cid, e_start, e_end))
            for (doc_id, sent_idx, head, tail, _), (label, prob) in zip(
                    cands, clf.predict_scored([text for *_, text in cands])):
                if label == clf.negative:
                    continue
                rows.append({"doc_id": doc_id, "sent_idx": sent_idx, "head": ref(head), "tail": ref(tail),
                             "type": clf.relation_type(label), "score": prob, "model_id": clf.model_id,
                             "run_id": self.run_id})
        for extractor in self.doc_relations:
            rows += self._one_pass(extractor, docs, by_doc, ref, e_type, e_cid, e_start, e_end, e_sent)
        return pa.Table.from_pylist(rows, schema=schemas.RELATIONS) if rows else schemas.RELATIONS.empty_table()

    def _one_pass(self, extractor, docs, by_doc, ref, e_type, e_cid, e_start, e_end, e_sent) -> list[dict]:
        """Every linked concept pair of the model's types, each document encoded once (batched): a row
        per pair with a relation, its evidence sentence, and each concept's mention in that sentence
        (else its first)."""
        from workers.inference.docre import NO_RELATION, Entity

        inputs, rows_of = [], []
        for doc in docs:
            concepts: dict[tuple[str, str], list[int]] = defaultdict(list)
            for i in by_doc.get(doc.doc_id, ()):
                if e_cid[i] and e_type[i] in extractor.model.types:
                    concepts[e_type[i], e_cid[i]].append(i)
            keys = list(concepts)
            inputs.append((doc.text, [(start, start + len(text)) for _, start, text in doc.sents],
                           [Entity(t, c, tuple((e_start[i], e_end[i]) for i in concepts[t, c])) for t, c in keys]))
            rows_of.append([concepts[k] for k in keys])
        out = []
        for doc, mentions, scores in zip(docs, rows_of, extractor.predict(inputs)):
            for p in scores:
                if p.label == NO_RELATION:
                    continue
                sent_idx = doc.sents[p.evidence][0]
                pick = lambda rows: _Mention(0, 0, next((i for i in rows if e_sent[i] == sent_idx), rows[0]))
                out.append({"doc_id": doc.doc_id, "sent_idx": sent_idx, "head": ref(pick(mentions[p.head])),
                            "tail": ref(pick(mentions[p.tail])), "type": p.label, "score": p.probability,
                            "novelty": p.novelty, "novelty_score": p.novelty_probability,
                            "model_id": extractor.model_id, "run_id": self.run_id})
        return out

    def _document_candidates(self, clf, docs, by_doc, e_type, e_cid, e_start, e_end) -> list[tuple]:
        """(doc_id, None, head mention, tail mention, text) for each linked concept pair in the window."""
        from workers.inference.relations import concept_pair_candidates

        types = {t for pair in clf.type_pairs for t in pair}
        out = []
        for doc in docs:
            concepts: dict[tuple[str, str], list] = defaultdict(list)
            for i in by_doc.get(doc.doc_id, ()):
                if e_cid[i] and e_type[i] in types:
                    concepts[e_type[i], e_cid[i]].append(_Mention(e_start[i], e_end[i], i))
            if len(concepts) < 2:
                continue
            sent_list = [(start, text) for _, start, text in doc.sents]
            for c in concept_pair_candidates(doc.text, sent_list, dict(concepts), clf.type_pairs, clf.window):
                out.append((doc.doc_id, None, c.head_mention, c.tail_mention, c.text))
        return out

    def _sentence_candidates(self, clf, docs, by_doc, e_sent, e_type, e_start, e_end) -> list[tuple]:
        """(doc_id, sent_idx, head mention, tail mention, masked sentence) for each pair of mentions of
        the model's types within one sentence, written the way its corpus writes them."""
        from workers.inference.relations import SENTENCE_FORMS, sentence_candidate

        (ta, tb), form, _ = SENTENCE_FORMS[clf.manifest["dataset"]]
        out = []
        for doc in docs:
            by_sent: dict[int, list[int]] = defaultdict(list)
            for i in by_doc.get(doc.doc_id, ()):
                by_sent[e_sent[i]].append(i)
            for s_idx, start, text in doc.sents:
                rows = by_sent.get(s_idx, ())
                for i in (r for r in rows if e_type[r] == ta):
                    for j in (r for r in rows if e_type[r] == tb):
                        a, b = _Mention(e_start[i], e_end[i], i), _Mention(e_start[j], e_end[j], j)
                        if a.end <= b.start or b.end <= a.start:
                            out.append((doc.doc_id, s_idx, a, b, sentence_candidate(text, start, a, b, form)))
        return out
