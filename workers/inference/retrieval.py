"""Passage retrieval over a snapshot: lexical BM25 (``bm25s``), dense (a sentence encoder's mean-pooled
embeddings), and their reciprocal-rank fusion, each usable alone.

An index is a folder of plain files (readable from any store, no server):

    index.json         version, encoder id, counts, the passage rule
    passages.parquet   one row per passage: doc_id, pmid, text_sha256 (its document's), first/last
                       sentence, document offsets, text
    bm25/              bm25s's CSC matrices and vocabulary (memory-mapped at query time)
    dense.npy          int8 embeddings, one row per passage (memory-mapped); dense_scale.npy: each
                       row's scale (``quantized``: a cosine moves by under 1e-3)

A passage is up to ``PASSAGE_SENTENCES`` consecutive sentences of one document, windows moving by
``PASSAGE_STRIDE`` (the title is sentence 0), so every sentence is in a passage and answers that span
two sentences are not cut. Building reuses the embeddings of a previous index for every passage of
a document whose text and encoder are unchanged; only the others are embedded. BM25's postings are
rebuilt (its IDF is corpus-wide; tokenizing costs seconds per 100k abstracts, embedding minutes).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import ModelError, PubmineError

INDEX_VERSION = "pubmine-index/1"
PASSAGE_SENTENCES, PASSAGE_STRIDE = 3, 2
RRF_K = 60                 # reciprocal rank fusion: score = sum 1 / (RRF_K + rank)
FUSION_DEPTH = 100         # each retriever's candidates that fusion ranks
PASSAGE_MAX_LENGTH = 256   # word pieces of a passage when embedded
PASSAGES_FILE, BM25_DIR, DENSE_FILE, DENSE_SCALE_FILE, INDEX_META = (
    "passages.parquet", "bm25", "dense.npy", "dense_scale.npy", "index.json")
INDEX_FILES = (INDEX_META, PASSAGES_FILE, DENSE_FILE, DENSE_SCALE_FILE)
MODES = ("fused", "bm25", "dense")
PASSAGES = pa.schema([("doc_id", pa.string()), ("pmid", pa.int64()), ("text_sha256", pa.string()),
                      ("first_sent", pa.int32()), ("last_sent", pa.int32()), ("start", pa.int32()),
                      ("end", pa.int32()), ("text", pa.string())])


def passages_of(doc_id: str, pmid: int | None, text_sha256: str, sentences: list[tuple[int, int, str]],
                document_text: str | None = None) -> list[dict]:
    """A document's passages from its sentences ((sent_idx, start, text), in order). The text is the
    document's own span when ``document_text`` is given, else the sentences joined by a space."""
    sents = sorted(sentences)

    def window(part: list) -> dict:
        start, end = part[0][1], part[-1][1] + len(part[-1][2])
        text = document_text[start:end] if document_text is not None else " ".join(t for _, _, t in part)
        return {"doc_id": doc_id, "pmid": pmid, "text_sha256": text_sha256, "first_sent": part[0][0],
                "last_sent": part[-1][0], "start": start, "end": end, "text": text}

    if not sents:
        return []
    out = [window(sents[i:i + PASSAGE_SENTENCES])
           for i in range(0, max(len(sents) - PASSAGE_SENTENCES, 0) + 1, PASSAGE_STRIDE)]
    if out[-1]["last_sent"] != sents[-1][0]:  # the stride left the last sentence out
        out.append(window(sents[-PASSAGE_SENTENCES:]))
    return out


class DenseEncoder:
    """A sentence encoder (the MiniLM sentence-transformers weights by default; any BERT-family folder
    or hub name): L2-normalized mean-pooled last hidden states, stored int8 per row."""

    def __init__(self, name: str = "minilm", device: str | None = None, precision: str = "auto", batch_size: int = 64):
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from workers.inference.artifacts import MINILM_NAME, MINILM, resolve_base_model
        from workers.inference.device import pick_device, resolve_precision

        hf_logging.disable_progress_bar()
        path = resolve_base_model(name)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path, use_safetensors=True, dtype=torch.float32).eval()
        except (OSError, ValueError) as exc:
            raise ModelError(f"retrieval encoder {name!r} could not be loaded ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200]}); give a local folder or a reachable hub name") from exc
        self.device = pick_device(device)
        self.model.to(self.device)
        self.autocast = resolve_precision(precision, self.device)
        self.batch_size = batch_size
        self.name, self.label = name, MINILM_NAME if name == MINILM else name
        h = hashlib.sha256(self.label.encode())
        for p in sorted(self.model.state_dict().items())[:4]:  # weights decide the vectors: a retrained encoder differs
            h.update(p[1].float().cpu().numpy().tobytes()[:4096])
        self.id = f"{self.label}#{h.hexdigest()[:12]}"

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(int8 vectors, float32 scale per row) of ``texts``, longest first in batches of similar length."""
        import torch

        from workers.inference.device import autocast
        from workers.inference.normalize import quantized

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        dim = self.model.config.hidden_size
        out = np.zeros((len(texts), dim), np.float32)
        with torch.inference_mode(), autocast(self.device, self.autocast):
            for b in range(0, len(order), self.batch_size):
                idx = order[b:b + self.batch_size]
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                     max_length=PASSAGE_MAX_LENGTH, return_tensors="pt").to(self.device)
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                vec = torch.nn.functional.normalize(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float(), dim=-1)
                out[idx] = vec.cpu().numpy()
        return quantized(out)


def _tokens(texts: list[str]):
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


@dataclass
class BuildStats:
    passages: int
    documents: int
    embedded_documents: int     # documents whose passages were embedded this time
    reused_documents: int       # documents whose embeddings came from the previous index
    bytes: int


def build_index(folder: str | os.PathLike, passages: pa.Table, encoder: DenseEncoder,
                previous: str | os.PathLike | None = None) -> BuildStats:
    """Write an index of ``passages`` (``PASSAGES`` rows, in any order) into ``folder``; embeddings of
    documents unchanged since ``previous`` (same doc_id, text_sha256, passages and encoder) are reused."""
    import bm25s

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    passages = passages.select(PASSAGES.names).cast(PASSAGES).sort_by([("doc_id", "ascending"), ("start", "ascending")])
    rows = passages.to_pylist()
    n = len(rows)
    dim = encoder.model.config.hidden_size
    vectors, scales = np.zeros((n, dim), np.int8), np.ones((n, 1), np.float32)
    done = np.zeros(n, bool)
    reused_docs: set[str] = set()
    if previous is not None and (Path(previous) / INDEX_META).exists():
        meta = json.loads((Path(previous) / INDEX_META).read_text())
        if meta.get("encoder") == encoder.id and meta.get("version") == INDEX_VERSION:
            old = pq.read_table(Path(previous) / PASSAGES_FILE, columns=["doc_id", "text_sha256", "start", "end"])
            old_vec = np.load(Path(previous) / DENSE_FILE, mmap_mode="r")
            old_scale = np.load(Path(previous) / DENSE_SCALE_FILE, mmap_mode="r")
            where = {k: i for i, k in enumerate(zip(*(old.column(c).to_pylist() for c in ("doc_id", "text_sha256", "start", "end"))))}
            by_doc: dict[str, list[int]] = {}
            for i, r in enumerate(rows):
                by_doc.setdefault(r["doc_id"], []).append(i)
            for doc, idx in by_doc.items():
                hits = [where.get((doc, rows[i]["text_sha256"], rows[i]["start"], rows[i]["end"])) for i in idx]
                if all(h is not None for h in hits):  # the whole document or none of it
                    vectors[idx], scales[idx] = old_vec[hits], old_scale[hits]
                    done[idx] = True
                    reused_docs.add(doc)
    todo = np.flatnonzero(~done)
    if len(todo):
        v, s = encoder.encode([rows[i]["text"] for i in todo])
        vectors[todo], scales[todo] = v, s
    np.save(folder / DENSE_FILE, vectors)
    np.save(folder / DENSE_SCALE_FILE, scales)
    pq.write_table(passages, folder / PASSAGES_FILE)
    retriever = bm25s.BM25()
    retriever.index(_tokens([r["text"] for r in rows]) if rows else [[""]], show_progress=False)
    retriever.save(str(folder / BM25_DIR), show_progress=False)
    docs = {r["doc_id"] for r in rows}
    stats = BuildStats(n, len(docs), len(docs - reused_docs), len(reused_docs), 0)
    meta = {"version": INDEX_VERSION, "encoder": encoder.id, "encoder_name": encoder.name, "passages": n, "documents": len(docs),
            "passage_sentences": PASSAGE_SENTENCES, "passage_stride": PASSAGE_STRIDE, "dimensions": dim,
            "embedded_documents": stats.embedded_documents, "reused_documents": stats.reused_documents}
    (folder / INDEX_META).write_text(json.dumps(meta, indent=1))
    stats.bytes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return stats


@dataclass(frozen=True)
class Hit:
    row: int          # the passage's row in passages.parquet
    score: float      # BM25 score, cosine, or fused RRF score


class RetrievalIndex:
    """A built index folder, memory-mapped: memory stays the mapping's, whatever the corpus size."""

    def __init__(self, folder: str | os.PathLike):
        import bm25s

        self.folder = Path(folder)
        if not (self.folder / INDEX_META).exists():
            raise PubmineError(f"{self.folder} holds no retrieval index ({INDEX_META} missing): build it with "
                               "`pubmine index --store STORE`")
        self.meta = json.loads((self.folder / INDEX_META).read_text())
        if self.meta.get("version") != INDEX_VERSION:
            raise PubmineError(f"{self.folder}: index version {self.meta.get('version')!r}, this pubmine reads "
                               f"{INDEX_VERSION!r}; rebuild it with `pubmine index`")
        self.passages = pq.read_table(self.folder / PASSAGES_FILE, memory_map=True)
        self.vectors = np.load(self.folder / DENSE_FILE, mmap_mode="r")
        self.scales = np.load(self.folder / DENSE_SCALE_FILE, mmap_mode="r")
        self.bm25 = bm25s.BM25.load(str(self.folder / BM25_DIR), mmap=True, show_progress=False)

    def __len__(self) -> int:
        return self.passages.num_rows

    def search_bm25(self, query: str, k: int = 10) -> list[Hit]:
        if not len(self):
            return []
        ids, scores = self.bm25.retrieve(_tokens([query]), k=min(k, len(self)), show_progress=False, n_threads=1)
        return [Hit(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if s > 0]

    def search_dense(self, query_vector: np.ndarray, k: int = 10, chunk: int = 65536) -> list[Hit]:
        """Exact cosine over every passage, a chunk of rows at a time (bounded memory)."""
        best: list[tuple[float, int]] = []
        q = query_vector.astype(np.float32).ravel()
        for lo in range(0, len(self), chunk):
            v = np.asarray(self.vectors[lo:lo + chunk], np.float32) * np.asarray(self.scales[lo:lo + chunk])
            sims = v @ q
            top = np.argpartition(-sims, min(k, len(sims)) - 1)[:k] if len(sims) > k else np.arange(len(sims))
            best += [(float(sims[i]), lo + int(i)) for i in top]
            best = sorted(best, reverse=True)[:k]
        return [Hit(i, s) for s, i in best]

    def search(self, query: str, encoder: DenseEncoder | None, k: int = 10, mode: str = "fused") -> list[Hit]:
        if mode not in MODES:
            raise PubmineError(f"retrieval mode {mode!r} is not one of {', '.join(MODES)}")
        if mode == "bm25":
            return self.search_bm25(query, k)
        if encoder is None:
            raise PubmineError(f"retrieval mode {mode!r} needs the dense encoder")
        if encoder.id != self.meta.get("encoder"):
            raise PubmineError(f"the index was embedded with {self.meta.get('encoder')}, not {encoder.id}: "
                               "query it with the same encoder (or rebuild it)")
        v, s = encoder.encode([query])
        dense = self.search_dense(v[0].astype(np.float32) * s[0], k if mode == "dense" else FUSION_DEPTH)
        if mode == "dense":
            return dense
        return fuse([self.search_bm25(query, FUSION_DEPTH), dense])[:k]

    def rows(self, hits: list[Hit]) -> list[dict]:
        """The hits' passage rows, in hit order."""
        if not hits:
            return []
        table = self.passages.take(pa.array([h.row for h in hits], pa.int64()))
        return table.to_pylist()


def fuse(rankings: list[list[Hit]]) -> list[Hit]:
    """Reciprocal rank fusion (Cormack et al. 2009): sum over rankings of 1 / (RRF_K + rank)."""
    score: dict[int, float] = {}
    for ranking in rankings:
        for rank, h in enumerate(ranking, start=1):
            score[h.row] = score.get(h.row, 0.0) + 1.0 / (RRF_K + rank)
    return [Hit(r, s) for r, s in sorted(score.items(), key=lambda x: (-x[1], x[0]))]
