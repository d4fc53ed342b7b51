"""Entity normalization: link a mention to a concept ID (MESH:D003924, OMIM:613097) or to nothing.

The linker tries, in order, and reports which step answered:

1. ``abbrev``  the mention is a short form defined in the same document ("... Parkinson's disease
               (PD) ...", Schwartz & Hearst 2003) and its long form links by 2 or 3;
2. ``exact``   the mention's normalized string is a dictionary name (case, punctuation, unicode
               dashes, plural ``s`` and spacing do not matter);
3. ``bag``     the same words in another order, without function words ("cancer of the breast" ->
               "breast cancer");
4. ``embed``   the nearest dictionary name by cosine similarity of sentence embeddings (BioSyn /
               SapBERT style; the MiniLM sentence encoder here), if at least ``threshold``.

Anything else is NIL (no concept ID, never a guess). Dictionaries: MeSH 2024 descriptors with their
entry terms (tree C and F03 -> Disease, tree D -> Chemical) and CTD MEDIC (diseases, with OMIM IDs).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PubmineError

MESH_TERMS = "normalization_dicts/mesh_2024_descriptors/mesh2024_descriptor_terms.tsv.gz"
MESH_TREES = "normalization_dicts/mesh_2024_descriptors/mesh2024_descriptor_trees.tsv.gz"
MEDIC = "normalization_dicts/ctd_medic_2012/medic_06Jul2012.txt.gz"
DICTIONARY_FILE = "dictionary.parquet"    # files of a normalizer artifact beside the encoder's own
NAMES_FILE = "names.npz"

# training and development annotations (never test) whose mention strings join the dictionary
CORPUS_NAMES = (("bc5cdr/pubtator/CDR_TrainingSet.PubTator.txt.gz", "BC5CDR-train"),
                ("bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt.gz", "BC5CDR-dev"),
                ("ncbi_disease/pubtator/NCBItrainset_corpus.txt.gz", "NCBI-train"),
                ("ncbi_disease/pubtator/NCBIdevelopset_corpus.txt", "NCBI-dev"))
_PUNCT = re.compile(r"[^\w\s]|_")
_SPACE = re.compile(r"\s+")
_FUNCTION_WORDS = frozenset("of the and in with a an to for by on or nos".split())


class NormalizationError(PubmineError):
    pass


def norm_key(text: str) -> str:
    """Case, unicode form, punctuation and spacing folded; a plural ``s`` on words of 4+ letters
    dropped (the same rule on both sides, so "diabetes" and "diabete" meet)."""
    text = unicodedata.normalize("NFKC", text).lower().replace("'s", "")
    words = _SPACE.sub(" ", _PUNCT.sub(" ", text)).split()
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)


def bag_key(text: str) -> str:
    """The normalized words, function words left out, in sorted order."""
    return " ".join(sorted(w for w in norm_key(text).split() if w not in _FUNCTION_WORDS))


@dataclass(frozen=True)
class Link:
    concept_id: str | None     # "MESH:D003924", "OMIM:613097", or None (NIL)
    method: str                # exact | abbrev | bag | nil
    score: float               # 1.0 for dictionary hits; 0.0 for NIL


NIL = Link(None, "nil", 0.0)


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8", newline="") if path.name.endswith(".gz") else open(path, encoding="utf-8", newline="")


def _mesh_types(trees: Path) -> dict[str, str]:
    """DescriptorUI -> Disease (tree C, F03) or Chemical (tree D)."""
    out: dict[str, str] = {}
    with _open(trees) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            loc = row["tree_location"]
            kind = "Disease" if loc.startswith(("C", "F03")) else "Chemical" if loc.startswith("D") else None
            if kind and out.get(row["DescriptorUI"]) != "Disease":  # a descriptor in both trees counts as a disease
                out[row["DescriptorUI"]] = kind
    return out


class Dictionary:
    """name key -> concept IDs per entity type, in priority order (preferred names first)."""

    def __init__(self) -> None:
        # key -> type -> concept ID -> rank (lower wins): corpus annotations, then MeSH preferred
        # names, MeSH entry terms, MEDIC preferred names, MEDIC synonyms
        self.exact: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        self.bag: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        self.names: dict[str, str] = {}          # concept ID -> preferred name
        self.sources: list[str] = []
        self.entries: list[tuple[str, str, str, float, bool]] = []   # what add() was given, in order
        self._digest = hashlib.sha256()

    def add(self, kind: str, concept_id: str, name: str, rank: float, preferred: bool = False) -> None:
        self.entries.append((kind, concept_id, name, float(rank), preferred))
        for index, key in ((self.exact, norm_key(name)), (self.bag, bag_key(name))):
            if key:
                ids = index[key][kind]
                ids[concept_id] = min(ids.get(concept_id, rank), rank)
        if preferred or concept_id not in self.names:
            self.names[concept_id] = name
        self._digest.update(f"{kind}\t{concept_id}\t{name}\t{rank:g}\n".encode())  # 1 and 1.0 alike

    @property
    def version(self) -> str:
        """Recorded on every linked row: the sources and a hash of every (type, ID, name) added."""
        return f"{'+'.join(self.sources)}#{self._digest.hexdigest()[:12]}"

    def add_mesh(self, terms: Path, trees: Path) -> None:
        kinds = _mesh_types(trees)
        with _open(terms) as f:
            reader = csv.DictReader(f, delimiter="\t")
            missing = {"DescriptorUI", "TermName", "RecordPreferredTermYN"} - set(reader.fieldnames or ())
            if missing:
                raise NormalizationError(f"{terms}: not a MeSH descriptor-terms table (missing columns {sorted(missing)})")
            for row in reader:
                kind = kinds.get(row["DescriptorUI"])
                if kind:
                    preferred = row["RecordPreferredTermYN"] == "Y"
                    self.add(kind, f"MESH:{row['DescriptorUI']}", row["TermName"], 1 if preferred else 2, preferred)
        self.sources.append("MeSH2024")

    def add_medic(self, path: Path) -> None:
        """CTD MEDIC: ``IDs||preferred name|synonym|...``; IDs are MeSH D/C numbers and bare OMIM numbers."""
        with _open(path) as f:
            for lineno, line in enumerate(f, start=1):
                ids, sep, names = line.rstrip("\n").partition("||")
                if not sep or not names:
                    raise NormalizationError(f"{path}:{lineno}: expected 'IDs||name|synonyms', got {line[:80]!r}")
                concept = [f"OMIM:{i}" if i.isdigit() else f"MESH:{i}" for i in ids.split("|") if i]
                for k, name in enumerate(names.split("|")):
                    if name:
                        self.add("Disease", concept[0], name, 3 if k == 0 else 4, preferred=k == 0)
        self.sources.append("MEDIC2012")

    def lookup(self, text: str, kind: str, methods: tuple[str, ...] = ("exact", "bag")) -> Link:
        for method in methods:
            index, key = (self.exact, norm_key(text)) if method == "exact" else (self.bag, bag_key(text))
            ids = index.get(key, {}).get(kind)
            if ids:
                return Link(min(ids, key=lambda i: (ids[i], i)), method, 1.0)
        return NIL

    def add_corpus(self, path: Path, label: str) -> None:
        """Annotated mentions of a training corpus (PubTator) as names of their concepts, ahead of the
        dictionaries' own names: how annotators linked a string is the best evidence for it (BioSyn
        adds its training names the same way). Composite and unlinked (-1) mentions are left out."""
        from pipeline.parse.pubtator import read_pubtator

        votes: dict[tuple[str, str, str], int] = defaultdict(int)
        for doc in read_pubtator(path):
            for m in doc.mentions:
                ids = [i for i in m.ids.replace(",", "|").split("|") if i and i != "-1"]
                if len(ids) == 1 and m.type in ("Chemical", "Disease"):
                    i = ids[0]
                    votes[m.type, i if i.startswith("OMIM:") else f"MESH:{i.removeprefix('MESH:')}", m.text] += 1
        for (kind, concept_id, text), n in votes.items():
            self.add(kind, concept_id, text, -n)  # the ID annotators chose most often for a string wins
        self.sources.append(label)

    def to_table(self):
        """Every entry in the order it was added (replaying them rebuilds the same version)."""
        import pyarrow as pa

        kind, cid, name, rank, pref = (list(c) for c in zip(*self.entries)) if self.entries else ([],) * 5
        return pa.table({"type": pa.array(kind, pa.string()), "concept_id": pa.array(cid, pa.string()),
                         "name": pa.array(name, pa.string()), "rank": pa.array(rank, pa.float64()),
                         "preferred": pa.array(pref, pa.bool_())},
                        metadata={"sources": "+".join(self.sources)})

    @classmethod
    def from_table(cls, table) -> "Dictionary":
        d = cls()
        for kind, cid, name, rank, pref in zip(*(table.column(c).to_pylist()
                                                 for c in ("type", "concept_id", "name", "rank", "preferred"))):
            d.add(kind, cid, name, rank, pref)
        sources = (table.schema.metadata or {}).get(b"sources", b"").decode()
        d.sources = sources.split("+") if sources else []
        return d

    @classmethod
    def default(cls, data_dir: Path | None = None) -> "Dictionary":
        from pipeline.config import shared_data_dir

        root = data_dir or shared_data_dir()
        d = cls()
        for rel in (MESH_TERMS, MESH_TREES, MEDIC):
            if not (root / rel).exists():
                raise NormalizationError(f"dictionary file {root / rel} not found; set PUBMINE_DATA to the folder "
                                         "that holds normalization_dicts/")
        d.add_mesh(root / MESH_TERMS, root / MESH_TREES)
        d.add_medic(root / MEDIC)
        for rel, label in CORPUS_NAMES:
            if (root / rel).exists():
                d.add_corpus(root / rel, label)
        return d


def abbreviations(text: str) -> dict[str, str]:
    """Short form -> long form defined in ``text`` as "long form (SF)" (Schwartz & Hearst 2003):
    the short form is 2-10 characters with a letter, starts with a letter or digit, and its
    characters appear in order in the long form, the first one at the start of a word."""
    out: dict[str, str] = {}
    for m in re.finditer(r"\(([^()]{2,10})\)", text):
        short = m.group(1).strip()
        if not (2 <= len(short) <= 10 and short[0].isalnum() and any(c.isalpha() for c in short)) or " " in short.strip():
            continue
        before = text[: m.start()].rstrip()
        words = re.findall(r"\S+", before)
        window = words[-min(len(short) + 5, len(short) * 2):]
        long_form = _match_long_form(short, " ".join(window))
        if long_form and short not in out:
            out[short] = long_form
    return out


def _match_long_form(short: str, candidate: str) -> str | None:
    s, l = len(short) - 1, len(candidate) - 1
    while s >= 0:
        c = short[s].lower()
        if not c.isalnum():
            s -= 1
            continue
        while l >= 0 and (candidate[l].lower() != c or (s == 0 and l > 0 and candidate[l - 1].isalnum())):
            l -= 1
        if l < 0:
            return None
        l -= 1
        s -= 1
    start = candidate.rfind(" ", 0, l + 1) + 1
    long_form = candidate[start:].strip()
    return long_form if len(long_form) > len(short) else None


class EmbeddingIndex:
    """Every dictionary name of each type, embedded once (mean-pooled, L2-normalized); a query is a
    matrix product. ``encoder``: a sentence-embedding folder or hub name (default: MiniLM)."""

    def __init__(self, dictionary: Dictionary, encoder: str = "minilm", batch_size: int = 512,
                 progress: bool = False, cache_dir: Path | None = None, model=None, tokenizer=None) -> None:
        """Embeds the dictionary's names, or loads them from ``cache_dir`` when the same dictionary
        version and encoder were embedded before (the build takes minutes on a CPU). ``model`` and
        ``tokenizer``: an encoder already in memory (a fine-tuned one; ``encoder`` then names it)."""
        import numpy as np
        from transformers import AutoModel

        from workers.train import load_tokenizer, resolve_base_model

        self.tokenizer = tokenizer or load_tokenizer(encoder)
        self.model = (model or AutoModel.from_pretrained(resolve_base_model(encoder), use_safetensors=True)).eval()
        self.batch_size = batch_size
        self.names: dict[str, list[str]] = {}
        self.ids: dict[str, list[str]] = {}
        self.vectors: dict[str, np.ndarray] = {}
        tag = hashlib.sha256(f"{dictionary.version}|{encoder}|{resolve_base_model(encoder)}".encode()).hexdigest()[:16]
        cached = Path(cache_dir) / f"names2-{tag}.npz" if cache_dir else None
        if cached is not None and cached.exists():
            self._read_names(cached)
            return
        per_kind: dict[str, dict[str, tuple[float, str]]] = defaultdict(dict)
        for key, kinds in dictionary.exact.items():
            for kind, ids in kinds.items():
                best = min(ids, key=lambda i: (ids[i], i))
                per_kind[kind][key] = (ids[best], best)
        for kind, entries in sorted(per_kind.items()):
            keys = sorted(entries)
            self.names[kind] = keys
            self.ids[kind] = [entries[k][1] for k in keys]
            self.vectors[kind] = self.encode(keys, progress=progress, desc=f"embedding {len(keys):,} {kind} names")
        if cached is not None:
            self.write_names(cached)

    def _read_names(self, path: Path) -> None:
        import numpy as np

        with np.load(path, allow_pickle=False) as z:
            for kind in z["kinds"].tolist():
                self.names[kind] = str(z[f"{kind}.names"]).split("\n")
                self.ids[kind] = str(z[f"{kind}.ids"]).split("\n")
                self.vectors[kind] = z[f"{kind}.vectors"]

    def write_names(self, path: Path) -> None:
        """The embedded names (per type: keys, concept IDs, vectors) as one .npz, written then renamed.
        Names and IDs are stored as one newline-joined string each: a fixed-width string array pads
        every name to the longest (350 MB and 6 s to load instead of 230 MB and 0.5 s)."""
        import numpy as np

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        arrays = {"kinds": np.array(sorted(self.names))}
        for kind in self.names:
            arrays |= {f"{kind}.names": np.array("\n".join(self.names[kind])),
                       f"{kind}.ids": np.array("\n".join(self.ids[kind])), f"{kind}.vectors": self.vectors[kind]}
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, folder: Path, batch_size: int = 512) -> "EmbeddingIndex":
        """The index of a normalizer artifact: its encoder (the folder's own weights) and names.npz."""
        from transformers import AutoModel, AutoTokenizer

        self = cls.__new__(cls)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True).eval()
        self.batch_size = batch_size
        self.names, self.ids, self.vectors = {}, {}, {}
        self._read_names(Path(folder) / NAMES_FILE)
        return self

    def encode(self, texts: list[str], progress: bool = False, desc: str = "embedding"):
        import numpy as np
        import torch
        from tqdm import tqdm

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for k in tqdm(range(0, len(order), self.batch_size), desc=desc, disable=not progress, unit="batch"):
                idx = order[k : k + self.batch_size]
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=32,
                                     return_tensors="pt")
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                v = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out[idx] = torch.nn.functional.normalize(v, dim=-1).numpy()
        return out

    def nearest(self, texts: list[str], kind: str, chunk: int = 256) -> list[tuple[str | None, float]]:
        """(concept ID, cosine) of each text's nearest name of ``kind``; (None, 0) if none of that type.
        Each distinct query is embedded once; similarities are computed ``chunk`` queries at a time."""
        import numpy as np

        if kind not in self.vectors or not texts:
            return [(None, 0.0)] * len(texts)
        keys = [norm_key(t) for t in texts]
        unique = sorted(set(keys))
        vecs = self.encode(unique)
        best: dict[str, tuple[str, float]] = {}
        for k in range(0, len(unique), chunk):
            sims = vecs[k : k + chunk] @ self.vectors[kind].T
            arg = sims.argmax(1)
            for q, j, sim in zip(unique[k : k + chunk], arg, sims[np.arange(len(arg)), arg]):
                best[q] = (self.ids[kind][j], float(sim))
        return [best[q] for q in keys]


class Normalizer:
    """Links mentions of one document at a time (its abbreviations are read from its text)."""

    def __init__(self, dictionary: Dictionary, index: EmbeddingIndex | None = None, threshold: float = 0.8) -> None:
        self.dictionary, self.index, self.threshold = dictionary, index, threshold
        self.manifest: dict = {}

    @property
    def version(self) -> str:
        return self.dictionary.version

    @classmethod
    def load(cls, folder: str | Path) -> "Normalizer":
        """A normalizer artifact folder (see build_normalizer): dictionary, encoder, embedded names."""
        import pyarrow.parquet as pq

        from workers.artifacts import read_manifest

        folder = Path(folder)
        manifest = read_manifest(folder)
        if manifest.get("task") != "normalizer":
            raise NormalizationError(f"{folder} holds a {manifest.get('task')!r} artifact, not a normalizer "
                                     "(build one with `pubmine build-normalizer -o DIR`)")
        dictionary = Dictionary.from_table(pq.read_table(folder / DICTIONARY_FILE))
        if dictionary.version != manifest["version"]:
            raise NormalizationError(f"normalizer {folder}: its dictionary hashes to {dictionary.version} but "
                                     f"pubmine.json says {manifest['version']}; rebuild it")
        out = cls(dictionary, EmbeddingIndex.load(folder), float(manifest["threshold"]))
        out.manifest = manifest
        return out

    def link_document(self, text: str, mentions: list[tuple[str, str]]) -> list[Link]:
        """``mentions``: (mention text, entity type) of one document whose full text is ``text``."""
        return self.link_documents([(text, mentions)])[0]

    def link_documents(self, docs: list[tuple[str, list[tuple[str, str]]]]) -> list[list[Link]]:
        """Many documents at once: abbreviations and dictionary per document, then one embedding pass
        per entity type over every mention still unlinked (a short form defined in its document is
        embedded as its long form)."""
        out: list[list[Link]] = []
        pending: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        for d, (text, mentions) in enumerate(docs):
            abbrevs = abbreviations(text) if mentions else {}
            links = [self.link(m, kind, abbrevs) for m, kind in mentions]
            out.append(links)
            if self.index is not None:
                for i, ((m, kind), link) in enumerate(zip(mentions, links)):
                    if link.concept_id is None:
                        pending[kind].append((d, i, abbrevs.get(m.strip(), m)))
        for kind, items in pending.items():
            for (d, i, _), (cid, sim) in zip(items, self.index.nearest([q for *_, q in items], kind)):
                if cid is not None and sim >= self.threshold:
                    out[d][i] = Link(cid, "embed", sim)
        return out

    def link(self, mention: str, kind: str, abbrevs: dict[str, str] | None = None) -> Link:
        """A short form defined in the document links through its long form first (a global
        dictionary knows many "FAP"s, the document means one); then the exact name; then the bag."""
        d = self.dictionary
        long_form = (abbrevs or {}).get(mention.strip())
        if long_form:
            via = d.lookup(long_form, kind)
            if via.concept_id:
                return Link(via.concept_id, "abbrev", via.score)
        return d.lookup(mention, kind)


def gold_ids(ids: str) -> set[str]:
    """A corpus's ID column (``D003924``, ``OMIM:613097``, ``D001|D002``, ``MESH:C001``) as the
    concept IDs the linker returns."""
    out = set()
    for i in ids.replace(",", "|").split("|"):
        i = i.strip()
        if i and i != "-1":
            out.add(i if i.startswith("OMIM:") else f"MESH:{i.removeprefix('MESH:')}")
    return out


# gold-mention linking sets: name -> (PubTator test file, entity type)
NORM_DATASETS = {
    "ncbi-disease": ("ncbi_disease/pubtator/NCBItestset_corpus.txt", "Disease"),
    "bc5cdr-disease": ("bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", "Disease"),
    "bc5cdr-chem": ("bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", "Chemical"),
}


@dataclass
class LinkingScore:
    accuracy: float
    n: int
    by_method: dict[str, tuple[int, int]]   # method -> (correct, linked by it)


def evaluate_linking(normalizer: Normalizer, dataset: str, data_dir: Path | None = None) -> LinkingScore:
    """accuracy@1 on the gold mentions of a test set (unlinked ``-1`` mentions left out): the top
    concept must be one of the mention's gold IDs; NIL is wrong."""
    from pipeline.config import shared_data_dir
    from pipeline.parse.pubtator import read_pubtator

    if dataset not in NORM_DATASETS:
        raise NormalizationError(f"unknown normalization dataset {dataset!r}; choose one of {', '.join(NORM_DATASETS)}")
    rel, kind = NORM_DATASETS[dataset]
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    docs = list(read_pubtator((data_dir or shared_data_dir()) / rel))
    mentions = [[m for m in doc.mentions if m.type == kind and gold_ids(m.ids)] for doc in docs]
    links = normalizer.link_documents([(doc.text, [(m.text, kind) for m in ms]) for doc, ms in zip(docs, mentions)])
    for ms, ls in zip(mentions, links):
        for m, link in zip(ms, ls):
            c = counts[link.method]
            c[0] += link.concept_id in gold_ids(m.ids)
            c[1] += 1
    n = sum(c[1] for c in counts.values())
    return LinkingScore(sum(c[0] for c in counts.values()) / max(n, 1), n, {k: tuple(v) for k, v in counts.items()})


def build_normalizer(output: str, encoder: str = "minilm", threshold: float = 0.7, data_dir: Path | None = None,
                     storage_options: dict | None = None, progress: bool = True, log=print,
                     dictionary: Dictionary | None = None, finetune_pairs: int = 0) -> dict:
    """Build the dictionaries once into a normalizer artifact at ``output`` (any fsspec URL): the
    encoder's weights and tokenizer, ``dictionary.parquet`` (every entry, so loading replays the same
    version), ``names.npz`` (the embedded names) and ``pubmine.json`` (version, threshold, sources)."""
    import pyarrow.parquet as pq

    from pipeline.config import pubmine_home
    from workers.artifacts import write_artifact

    dictionary = dictionary or Dictionary.default(data_dir)
    log(f"dictionary {dictionary.version}: {len(dictionary.entries):,} names of {len(dictionary.names):,} concepts")
    model = tokenizer = None
    label = encoder
    if finetune_pairs:
        tokenizer, model, stats = finetune_encoder(dictionary, encoder, pairs=finetune_pairs, progress=progress, log=log)
        label = f"{encoder}+synonyms({finetune_pairs} pairs, seed {stats['seed']})"
    index = EmbeddingIndex(dictionary, label, progress=progress, model=model, tokenizer=tokenizer,
                           cache_dir=pubmine_home() / "normalization")

    def extra(folder: Path) -> None:
        pq.write_table(dictionary.to_table(), folder / DICTIONARY_FILE)
        index.write_names(folder / NAMES_FILE)

    meta = {"task": "normalizer", "version": dictionary.version, "threshold": threshold,
            "encoder": label, "sources": dictionary.sources,
            "entity_types": sorted(index.names), "names": {k: len(v) for k, v in index.names.items()}}
    return write_artifact(index.model, index.tokenizer, output, "normalizer", meta, storage_options, extra=extra)


def synonym_pairs(dictionary: Dictionary, n_pairs: int, seed: int = 13) -> list[tuple[str, str, str]]:
    """(name, another name of the same concept, concept) pairs from the dictionary, SapBERT style: the
    corpora's annotated mention strings paired with their concept's dictionary names first (they look
    like the mentions to be linked), then dictionary synonyms, at most 8 pairs per concept."""
    import random

    rng = random.Random(seed)
    names: dict[tuple[str, str], dict[str, tuple[float, str]]] = defaultdict(dict)
    for kind, cid, name, rank, _ in dictionary.entries:
        key = norm_key(name)
        if key and (key not in names[kind, cid] or rank < names[kind, cid][key][0]):
            names[kind, cid][key] = (rank, name)
    annotated, synonyms = [], []
    for concept, by_key in names.items():
        if len(by_key) < 2:
            continue
        entries = list(by_key.values())
        mentions = [n for r, n in entries if r < 0]
        others = [n for r, n in entries if r >= 0]
        for m in mentions[:8]:
            target = rng.choice([n for n in (others or mentions) if n != m] or [m])
            if target != m:
                annotated.append((m, target, concept[1]))
        rng.shuffle(others)
        for a, b in zip(others[:8], others[1:9]):
            synonyms.append((a, b, concept[1]))
    rng.shuffle(annotated)
    rng.shuffle(synonyms)
    pairs = (annotated + synonyms)[:n_pairs]
    rng.shuffle(pairs)
    return pairs


def finetune_encoder(dictionary: Dictionary, encoder: str = "minilm", pairs: int = 40000, batch_size: int = 128,
                     learning_rate: float = 2e-5, temperature: float = 0.05, seed: int = 13,
                     progress: bool = True, log=print):
    """Fine-tune the sentence encoder so that synonyms of one concept embed close together (SapBERT's
    idea with its simplest loss: InfoNCE over in-batch negatives, both directions; other pairs of
    the same concept in a batch are masked, not counted as negatives). One pass over ``pairs`` pairs;
    bf16 autocast where the hardware has fast bf16. Returns (tokenizer, model, stats)."""
    import sys
    import time

    import torch
    from tqdm import tqdm
    from transformers import AutoModel

    from workers.train import load_tokenizer, resolve_base_model, set_seed, training_autocast

    set_seed(seed)
    tokenizer = load_tokenizer(encoder)
    model = AutoModel.from_pretrained(resolve_base_model(encoder), use_safetensors=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).train()
    data = synonym_pairs(dictionary, pairs, seed)
    optim = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    autocast = training_autocast("auto", device)

    def embed(texts: list[str]):
        enc = tokenizer(texts, padding=True, truncation=True, max_length=25, return_tensors="pt").to(device)
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return torch.nn.functional.normalize(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float(), dim=-1)

    started, losses = time.time(), []
    bar = tqdm(range(0, len(data), batch_size), desc=f"fine-tuning {encoder} on {len(data):,} synonym pairs",
               unit="batch", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    for k in bar:
        chunk = data[k : k + batch_size]
        if len(chunk) < 2:
            break
        concepts = [c for _, _, c in chunk]
        same = torch.tensor([[a == b for b in concepts] for a in concepts], device=device)
        same.fill_diagonal_(False)
        with torch.autocast(device_type=device, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            a, b = embed([x for x, _, _ in chunk]), embed([y for _, y, _ in chunk])
        logits = (a @ b.T / temperature).masked_fill(same, float("-inf"))
        target = torch.arange(len(chunk), device=device)
        loss = (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
    model.to("cpu").eval()
    first = sum(losses[:10]) / max(len(losses[:10]), 1)
    last = sum(losses[-10:]) / max(len(losses[-10:]), 1)
    log(f"encoder fine-tuned on {len(data):,} synonym pairs in {time.time() - started:.0f} s: loss {first:.3f} -> {last:.3f}")
    return tokenizer, model, {"pairs": len(data), "seed": seed, "loss_first": first, "loss_last": last,
                              "seconds": round(time.time() - started, 1)}
