"""Ask the literature: a snapshot's retrieval index (built by ``build_snapshot_index``: the nightly
run's index stage and ``pubmine index``) and ``pubmine ask`` over it.

The index lives in the snapshot (``snapshots/<run>/retrieval/``, plain files; see
``workers.inference.retrieval``). A question is answered by retrieving passages (BM25, dense, or
their fusion), reading them with the QA reader (spans for a factoid or list question, a decision
with the evidence for each side for a yes/no one), and naming for each answer its document, title,
sentence, offsets and the linked concepts inside the answer span.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa

from pipeline.config import pubmine_home
from pipeline.errors import PubmineError
from pipeline.layout import RETRIEVAL_DIR, snapshot_key
from pipeline.storage import Store

YES_NO_STARTS = ("is", "are", "does", "do", "did", "can", "could", "should", "has", "have", "was", "were", "will",
                 "may", "might", "would")


# what a "Which/What <noun> ..." question asks for, by its noun (singular): the entity type its
# answers should be; an answer span holding a mention of that type ranks before one that holds none
ANSWER_NOUNS = {
    "Chemical": ("chemical", "drug", "compound", "medication", "medicine", "agent", "inhibitor", "antibiotic", "molecule"),
    "Gene": ("gene", "protein", "enzyme", "receptor", "kinase", "transporter"),
    "Disease": ("disease", "disorder", "syndrome", "condition", "cancer", "tumor", "tumour", "symptom", "infection"),
    "Species": ("species", "organism", "bacterium", "bacteria", "virus", "pathogen", "microorganism"),
    "CellLine": ("cell line",),
    "Variant": ("mutation", "variant", "polymorphism", "snp", "allele"),
}
ASKING_WORDS = ("which", "what", "name", "list")


def answer_type(question: str) -> str | None:
    """The entity type a question asks for ("Which chemicals induce ...?" -> Chemical), from the noun
    within the three words after its opening which/what/name/list; None when it names none."""
    words = re.findall(r"[a-z0-9]+", question.lower())
    if not words or words[0] not in ASKING_WORDS:
        return None
    head = words[1:4]
    singular = [w if w in ("species", "bacteria") or not w.endswith("s") or w.endswith("ss") else w[:-1] for w in head]
    for k, w in enumerate(singular):
        for kind, nouns in ANSWER_NOUNS.items():
            if w in nouns or (k + 1 < len(singular) and f"{w} {singular[k + 1]}" in nouns):
                return kind
    return None


def is_typed(start: int, end: int, doc_id: str, kind: str, ents: list[dict]) -> bool:
    """Whether mentions of ``kind`` cover at least half of the answer span's characters: the answer is
    such an entity ("propofol"), not a passage that happens to name one."""
    covered = set()
    for e in ents:
        if e["doc_id"] == doc_id and e["type"] == kind and e["start"] < end and start < e["end"]:
            covered.update(range(max(start, e["start"]), min(end, e["end"])))
    return 2 * len(covered) >= max(end - start, 1)


def typed_first(answers: list[dict], wanted: str | None) -> list[dict]:
    """Answers whose span holds a mention of the asked-for type (``type_match``) first, each side in
    the reader's order (a stable sort: as they are when no answer has it); as they are when the
    question asks for no type."""
    if not wanted:
        return list(answers)
    return sorted(answers, key=lambda a: not a["type_match"])


def is_yes_no(question: str) -> bool:
    """BioASQ's yes/no questions open with an auxiliary verb ("Is ...", "Does ...", "Can ...")."""
    words = question.strip().split(maxsplit=1)
    return bool(words) and words[0].lower() in YES_NO_STARTS


def snapshot_passages(store: Store, run_id: str) -> pa.Table:
    """Every passage of a snapshot's documents (``workers.inference.retrieval.PASSAGES``)."""
    from collections import defaultdict

    from workers.inference.retrieval import PASSAGES, passages_of

    docs = store.read_table(*snapshot_key(run_id, "documents"), columns=["doc_id", "pmid", "text_sha256"])
    sents = store.read_table(*snapshot_key(run_id, "sentences"), columns=["doc_id", "sent_idx", "start", "text"])
    parts = store.read_table(*snapshot_key(run_id, "passages"), columns=["doc_id", "offset", "text"])
    by_doc: dict[str, list] = defaultdict(list)
    for d, i, s, t in zip(*(sents.column(c).to_pylist() for c in ("doc_id", "sent_idx", "start", "text"))):
        by_doc[d].append((i, s, t))
    text: dict[str, list] = defaultdict(list)  # the document text from its passages at their offsets
    for d, off, t in zip(*(parts.column(c).to_pylist() for c in ("doc_id", "offset", "text"))):
        text[d].append((off, t))
    rows = []
    for doc_id, pmid, sha in zip(*(docs.column(c).to_pylist() for c in ("doc_id", "pmid", "text_sha256"))):
        rows += passages_of(doc_id, pmid, sha, by_doc.get(doc_id, []), document_text(text.get(doc_id, [])))
    return pa.Table.from_pylist(rows, schema=PASSAGES) if rows else PASSAGES.empty_table()


def document_text(passages: list[tuple[int, str]]) -> str:
    """A document's text from its passages (offset, text): each at its offset, gaps as spaces (the
    offset contract: the abstract starts at len(title) + 1)."""
    out = ""
    for off, t in sorted(passages):
        out = out.ljust(off) + t if off >= len(out) else out[:off] + t
    return out


def _download(store: Store, run_id: str, target: Path) -> bool:
    """The snapshot's index files into ``target``; False when the snapshot has none."""
    from workers.inference.retrieval import INDEX_META

    if not store.exists(*snapshot_key(run_id, RETRIEVAL_DIR, INDEX_META)):
        return False
    root = store.path(*snapshot_key(run_id, RETRIEVAL_DIR))
    for path in store.fs.find(root):
        rel = posixpath.relpath(path, root)
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        store.fs.get_file(path, str(dest))
    return True


def build_snapshot_index(store_url: str, storage_options: dict, run_id: str, previous_id: str | None,
                         encoder_name: str = "minilm", precision: str = "auto", num_threads: int | None = None) -> dict:
    """Build ``run_id``'s retrieval index into its snapshot folder, reusing the embeddings of the
    previous snapshot's index for unchanged documents; returns the counts the manifest records.
    ``num_threads``: the encoder's CPU threads (the task's CPUs; None leaves torch's own), recorded
    as ``threads``."""
    import torch

    from workers.inference.device import use_threads
    from workers.inference.retrieval import INDEX_META, INDEX_VERSION, PASSAGES_FILE, DenseEncoder, build_index

    use_threads(num_threads)
    store = Store(store_url, storage_options)
    passages = snapshot_passages(store, run_id)
    encoder = DenseEncoder(encoder_name, precision=precision)
    if previous_id and store.exists(*snapshot_key(previous_id, RETRIEVAL_DIR, INDEX_META)):
        meta = store.read_json(*snapshot_key(previous_id, RETRIEVAL_DIR, INDEX_META))
        keys = ["doc_id", "text_sha256", "start", "end"]
        old = store.read_table(*snapshot_key(previous_id, RETRIEVAL_DIR, PASSAGES_FILE), columns=keys)
        same = lambda t: sorted(zip(*(t.column(c).to_pylist() for c in keys)))
        if meta.get("encoder") == encoder.id and meta.get("version") == INDEX_VERSION and same(old) == same(passages):
            # nothing changed since the previous snapshot: its index is this one's, copied as it is
            root = store.path(*snapshot_key(previous_id, RETRIEVAL_DIR))
            size = 0
            for path in store.fs.find(root):
                rel = posixpath.relpath(path, root)
                store.copy(snapshot_key(previous_id, RETRIEVAL_DIR, rel), snapshot_key(run_id, RETRIEVAL_DIR, rel))
                size += store.fs.size(path)
            return {"documents": meta["documents"], "passages": meta["passages"], "embedded": 0,
                    "reused": meta["documents"], "bytes": size, "encoder": encoder.id, "copied": True,
                    "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory(prefix="pubmine-index-") as tmp:
        previous = Path(tmp) / "previous"
        have_previous = bool(previous_id) and _download(store, previous_id, previous)
        out = Path(tmp) / "index"
        stats = build_index(out, passages, encoder, previous if have_previous else None)
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            store.write_bytes(path.read_bytes(), *snapshot_key(run_id, RETRIEVAL_DIR, str(path.relative_to(out))))
    return {"documents": stats.documents, "passages": stats.passages, "embedded": stats.embedded_documents,
            "reused": stats.reused_documents, "bytes": stats.bytes, "encoder": encoder.id, "copied": False,
            "threads": torch.get_num_threads()}


def open_index(store: Store, run_id: str):
    """The snapshot's index as a local folder (the store's own when it is local, else a copy cached
    once per snapshot) and loaded."""
    from workers.inference.retrieval import INDEX_META, RetrievalIndex

    local = store.path(*snapshot_key(run_id, RETRIEVAL_DIR))
    if os.path.isdir(local) and os.path.exists(os.path.join(local, INDEX_META)):
        return RetrievalIndex(local)
    cache = pubmine_home() / "indexes" / run_id
    if not (cache / INDEX_META).exists():
        part = cache.with_suffix(".partial")
        shutil.rmtree(part, ignore_errors=True)
        if not _download(store, run_id, part):
            raise PubmineError(f"snapshot {run_id} in {store.uri()} has no retrieval index: build it with "
                               f"`pubmine index --store {store.uri()} --at {run_id}`")
        shutil.rmtree(cache, ignore_errors=True)
        os.replace(part, cache)
    return RetrievalIndex(cache)


def _context(store: Store, run_id: str, doc_ids: list[str]):
    """Titles, sentences and linked entities of the given documents (filtered reads)."""
    import pyarrow.compute as pc

    ids = pa.array(sorted(set(doc_ids)), pa.string())
    docs = store.read_table(*snapshot_key(run_id, "documents"), columns=["doc_id", "title"])
    docs = docs.filter(pc.is_in(docs.column("doc_id"), ids))
    sents = store.read_table(*snapshot_key(run_id, "sentences"), columns=["doc_id", "sent_idx", "start", "end", "text"])
    sents = sents.filter(pc.is_in(sents.column("doc_id"), ids))
    ents = store.read_table(*snapshot_key(run_id, "entities"), columns=["doc_id", "start", "end", "text", "type", "concept_id"])
    ents = ents.filter(pc.is_in(ents.column("doc_id"), ids))
    return ({d: t for d, t in zip(docs.column("doc_id").to_pylist(), docs.column("title").to_pylist())},
            sents.to_pylist(), ents.to_pylist())


def _evidence(passage: dict, start: int, end: int, sents: list[dict], ents: list[dict]) -> dict:
    """The sentence of the document holding document offsets [start, end), and the linked concepts
    whose mentions overlap that span."""
    sentence = next((s for s in sents if s["doc_id"] == passage["doc_id"] and s["start"] <= start < s["end"]), None)
    concepts = sorted({(e["type"], e["concept_id"], e["text"]) for e in ents
                       if e["doc_id"] == passage["doc_id"] and e["concept_id"] and e["start"] < end and start < e["end"]})
    return {"sentence": sentence["text"] if sentence else None,
            "sentence_start": sentence["start"] if sentence else None,
            "sentence_end": sentence["end"] if sentence else None,
            "concepts": [{"type": t, "concept_id": c, "text": x} for t, c, x in concepts]}


def ask(store_url: str, question: str, *, storage_options: dict | None = None, at: str | None = None,
        k: int = 10, mode: str = "fused", reader_url: str = "default", answers: int = 5,
        precision: str = "auto") -> dict:
    """Retrieve ``k`` passages for ``question`` and read them: a dict with the snapshot, the mode, and
    ``answers`` (each with pmid, doc_id, text, score, start/end in the document, title, evidence)."""
    from pipeline import publish
    from pipeline.config import artifact_url
    from workers.inference.artifacts import artifact_exists, stage_artifact
    from workers.inference.qa import QaReader
    from workers.inference.retrieval import DenseEncoder

    store = Store(store_url, storage_options or {})
    run_id, _ = publish.pick_snapshots(store, at, None)
    index = open_index(store, run_id)
    encoder = DenseEncoder(index.meta.get("encoder_name", "minilm"), precision=precision) if mode != "bm25" else None
    hits = index.search(question, encoder, k=k, mode=mode)
    passages = index.rows(hits)
    url = artifact_url(reader_url, "qa")
    if not artifact_exists(url):
        raise PubmineError(f"no question-answering reader at {url}: train it with `make qa-model` or pass --reader")
    reader = QaReader.load(stage_artifact(url), precision=precision)
    titles, sents, ents = _context(store, run_id, [p["doc_id"] for p in passages])
    out = {"snapshot": run_id, "question": question, "mode": mode, "passages": len(passages),
           "reader": reader.model_id, "kind": "yesno" if is_yes_no(question) else "factoid", "answers": []}
    if not passages:
        return out
    contexts = [p["text"] for p in passages]
    if out["kind"] == "yesno":
        _, probs, per = reader.decide_each(question, contexts, ("yes", "no"))  # one encoder pass over the passages
        for side in ("yes", "no"):
            support = sorted(range(len(passages)), key=lambda i: -per[i][side])
            best = [i for i in support if per[i][side] >= 0.5][:3] or support[:1]
            p = passages[best[0]]
            out["answers"].append({
                "text": side, "score": round(probs[side], 4), "pmid": p["pmid"], "doc_id": p["doc_id"],
                "title": titles.get(p["doc_id"]), "start": p["start"], "end": p["end"],
                "evidence": _evidence(p, p["start"], p["end"], sents, ents),
                "supporting": [{"pmid": passages[i]["pmid"], "doc_id": passages[i]["doc_id"],
                                "score": round(per[i][side], 4), "start": passages[i]["start"],
                                "end": passages[i]["end"]} for i in best]})
        out["answers"].sort(key=lambda a: -a["score"])
        return out
    wanted = out["answer_type"] = answer_type(question)
    found = []
    for a in reader.answer(question, contexts):
        p = passages[a.context]
        start, end = p["start"] + a.start, p["start"] + a.end
        found.append({"text": a.text, "score": round(a.probability, 4), "pmid": p["pmid"],
                      "doc_id": p["doc_id"], "title": titles.get(p["doc_id"]), "start": start, "end": end,
                      "type_match": is_typed(start, end, p["doc_id"], wanted, ents) if wanted else None, "p": p})
    for a in typed_first(found, wanted)[:answers]:
        a["evidence"] = _evidence(a.pop("p"), a["start"], a["end"], sents, ents)
        out["answers"].append(a)
    return out
