"""Entity normalization: link a mention to a concept ID (MESH:D003924, OMIM:613097) or to nothing.

The linker tries, in order, and reports which step answered:

1. ``abbrev``  the mention is a short form defined in the same document ("... Parkinson's disease
               (PD) ...", Schwartz & Hearst 2003) and its long form links by 2 or 3;
2. ``exact``   the mention's normalized string is a dictionary name (case, punctuation, unicode
               dashes, plural ``s`` and spacing do not matter);
3. ``bag``     the same words in another order, without function words ("cancer of the breast" ->
               "breast cancer");
4. ``embed``   the nearest dictionary name by cosine similarity of sentence embeddings (BioSyn /
               SapBERT style; the MiniLM sentence encoder here), if at least the type's threshold:
               chosen per type on dev data when the normalizer is built, the least cosine at which
               the accepted embedding links were at least 85% correct there (no such cosine: that
               type gets no embedding links);
5. ``ngram``   the nearest dictionary name by cosine of character 3-gram TF-IDF (scispaCy's
               linker), for the types and from the cosine chosen the same way (``NgramIndex``).

Genes, species, cell lines and variants go to the normalizer's lexicon (``workers.inference.lexicon``).

Anything else is NIL (no concept ID, never a guess). A normalizer artifact holds the dictionary, the
encoder and every dictionary name embedded once; ``workers.training.normalizer`` builds it from MeSH
2024, CTD MEDIC and the training corpora's linked mentions.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from pathlib import Path

from pipeline.errors import PubmineError
from workers.inference.artifacts import load_artifact, read_manifest
from workers.inference.lexicon import LEXICON_MANIFEST, LEXICON_TYPES, Lexicon
from workers.inference.link import NIL, Link

DICTIONARY_FILE = "dictionary.parquet"    # files of a normalizer artifact beside the encoder's own
NAMES_FILE = "names.npz"
DEFAULT_THRESHOLD = 0.7    # least cosine for an embedding link, wherever a normalizer is built or scored
NAME_MAX_LENGTH = 32       # word pieces of a name or mention when embedded (names are short; so are mentions)
_PUNCT = re.compile(r"[^\w\s]|_")
_SPACE = re.compile(r"\s+")
_FUNCTION_WORDS = frozenset("of the and in with a an to for by on or nos".split())


class NormalizationError(PubmineError):
    pass


# British spellings of medical word stems, folded to MeSH's American ones on both sides
# ("hypoglycaemia", "transient ischaemic attacks", "tumour"): on BioRED train 3 more right links and
# 1 wrong; on BC5CDR test 8 more right
_BRITISH = re.compile(r"tumour|ischaem|haem|anaem|aemia|oedem|oesophag|paediatr|foet|leukaem|oestr|diarrhoea|dyspnoea|"
                      r"apnoea|coeliac|aetiol")
_AMERICAN = {"tumour": "tumor", "ischaem": "ischem", "haem": "hem", "anaem": "anem", "aemia": "emia", "oedem": "edem",
             "oesophag": "esophag", "paediatr": "pediatr", "foet": "fet", "leukaem": "leukem", "oestr": "estr",
             "diarrhoea": "diarrhea", "dyspnoea": "dyspnea", "apnoea": "apnea", "coeliac": "celiac", "aetiol": "etiol"}


def norm_key(text: str) -> str:
    """Case, unicode form, punctuation and spacing folded; British spellings of medical stems made
    American; a plural ``s`` on words of 4+ letters dropped (the same rule on both sides, so
    "diabetes" and "diabete" meet)."""
    text = unicodedata.normalize("NFKC", text).lower().replace("'s", "")
    text = _BRITISH.sub(lambda m: _AMERICAN[m.group(0)], text)
    words = _SPACE.sub(" ", _PUNCT.sub(" ", text)).split()
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)


def bag_key(text: str) -> str:
    """The normalized words, function words left out, in sorted order."""
    return " ".join(sorted(w for w in norm_key(text).split() if w not in _FUNCTION_WORDS))


def best_concept(ids: dict[str, float]) -> str:
    """The concept a name stands for among the ones that list it: the lowest rank, then the ID."""
    return min(ids, key=lambda i: (ids[i], i))


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

    def lookup(self, text: str, kind: str, methods: tuple[str, ...] = ("exact", "bag")) -> Link:
        for method in methods:
            index, key = (self.exact, norm_key(text)) if method == "exact" else (self.bag, bag_key(text))
            ids = index.get(key, {}).get(kind)
            if ids:
                return Link(best_concept(ids), method, 1.0)
        return NIL

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


# a disease adjective's noun ("inflammatory" -> "inflammation", "neuropathic" -> "neuropathy",
# "dyslipidemic" -> "dyslipidemia"): tried on the last word of a disease mention no name matched. On
# BioRED train (a dictionary without its strings) 36 of 38 such links were right; "-otic" -> "-osis"
# was 0 of 7 ("cirrhotic" is MeSH's fibrosis, annotated liver cirrhosis) and is left out
NOUN_OF_ADJECTIVE = (("ory", "ion"), ("ic", "ia"), ("ic", "y"), ("ic", "e"))


def noun_forms(mention: str) -> list[str]:
    """The mention with its last word's adjective ending replaced by a noun's, each way that applies."""
    words = mention.split()
    if not words:
        return []
    last = words[-1]
    return [" ".join([*words[:-1], last[:-len(adj)] + noun]) for adj, noun in NOUN_OF_ADJECTIVE
            if last.lower().endswith(adj) and len(last) > len(adj) + 3]


def defined_long_form(mention: str, abbrevs: dict[str, str]) -> str | None:
    """The long form ``abbrevs`` gives a short-form mention, or its plural or singular ("MBs" defined,
    "MB" mentioned; "ARM" defined, "ARMs" mentioned)."""
    short = mention.strip()
    if short in abbrevs:
        return abbrevs[short]
    return abbrevs.get(short[:-1] if short.endswith("s") else short + "s")


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


def mean_pooled(model, tokenizer, texts: list[str], device: str = "cpu"):
    """L2-normalized mean of the last hidden states over each text's word pieces (at most
    ``NAME_MAX_LENGTH``): the one sentence embedding of names and mentions, for the index and for
    fine-tuning the encoder alike. Runs with whatever grad mode the caller is in."""
    import torch

    enc = tokenizer(texts, padding=True, truncation=True, max_length=NAME_MAX_LENGTH, return_tensors="pt").to(device)
    hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float(), dim=-1)


def quantized(vectors):
    """float vectors -> (int8 vectors, float32 scale per row): each row's largest component maps to 127.
    On unit vectors of 384 dimensions a cosine moves by under 1e-3."""
    import numpy as np

    scale = np.abs(vectors).max(axis=1, keepdims=True).astype(np.float32) / 127.0 if len(vectors) else \
        np.ones((0, 1), np.float32)
    scale[scale == 0] = 1.0
    return np.round(vectors / scale).astype(np.int8), scale


def dequantized(vectors, scale):
    import numpy as np

    return vectors.astype(np.float32) * scale


class NgramIndex:
    """scispaCy's linker's candidate step: every dictionary name of a type as TF-IDF weights of its
    character 3-grams (the normalized name, word-bounded); a mention's nearest name by cosine. It
    catches the spelling variants word-level keys miss ("25-hydroxyvitamin D" / "25-hydroxyvitamin
    D 3", "amphotericine B"). Built from the dictionary when a normalizer loads (seconds); which types
    use it, and from which cosine, is chosen on dev when the normalizer is built (``ngram_thresholds``)."""

    def __init__(self, dictionary: "Dictionary", kinds) -> None:
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.kinds: dict[str, tuple] = {}
        for kind in kinds:
            keys = sorted(k for k, by in dictionary.exact.items() if kind in by and len(k) >= 3)
            if not keys:
                continue
            vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3), lowercase=False, dtype=np.float32)
            matrix = vec.fit_transform(keys)
            self.kinds[kind] = (vec, matrix.T.tocsr(), keys, [best_concept(dictionary.exact[k][kind]) for k in keys])

    def nearest(self, texts: list[str], kind: str, chunk: int = 512) -> list[tuple[str | None, float]]:
        if kind not in self.kinds or not texts:
            return [(None, 0.0)] * len(texts)
        vec, names_t, _, concepts = self.kinds[kind]
        out: list[tuple[str | None, float]] = []
        for i in range(0, len(texts), chunk):
            sims = (vec.transform([norm_key(t) for t in texts[i:i + chunk]]) @ names_t).tocsr()
            for row in range(sims.shape[0]):
                lo, hi = sims.indptr[row], sims.indptr[row + 1]
                if lo == hi:
                    out.append((None, 0.0))
                    continue
                j = lo + int(sims.data[lo:hi].argmax())
                out.append((concepts[sims.indices[j]], float(sims.data[j])))
        return out


class EmbeddingIndex:
    """Every dictionary name of each type, embedded once (``mean_pooled``); a query is a matrix
    product. Made by ``from_dictionary`` (building a normalizer) or ``load`` (a normalizer artifact)."""

    def __init__(self, tokenizer, model, batch_size: int = 64, precision: str = "auto") -> None:
        # names sorted by length, 64 at a time, bf16 where the CPU has it: 580 names/s on 2 cores
        # against 224 at 512 in fp32 (cosines within 6e-5 of fp32), so the default dictionary's
        # 137k names embed in ~4 minutes instead of ~10
        from workers.inference.device import resolve_precision

        self.tokenizer, self.model, self.batch_size = tokenizer, model.eval(), batch_size
        self.device = next(model.parameters()).device.type
        self.autocast = resolve_precision(precision, self.device)
        self.names: dict[str, list[str]] = {}
        self.ids: dict[str, list[str]] = {}
        self.vectors: dict = {}

    @classmethod
    def from_dictionary(cls, dictionary: Dictionary, tokenizer, model, batch_size: int = 64, progress: bool = False,
                        cache: Path | None = None) -> "EmbeddingIndex":
        """Embed the dictionary's names (one per exact key and type, its best-ranked concept), or read
        them from ``cache`` when that file exists (the build takes minutes on a CPU); writes ``cache``."""
        self = cls(tokenizer, model, batch_size)
        if cache is not None and cache.exists():
            self._read_names(cache)
            self.vectors = {kind: dequantized(*quantized(v)) for kind, v in self.vectors.items()}
            return self
        per_kind: dict[str, dict[str, tuple[float, str]]] = defaultdict(dict)
        for key, kinds in dictionary.exact.items():
            for kind, ids in kinds.items():
                best = best_concept(ids)
                per_kind[kind][key] = (ids[best], best)
        for kind, entries in sorted(per_kind.items()):
            keys = sorted(entries)
            self.names[kind] = keys
            self.ids[kind] = [entries[k][1] for k in keys]
            # held as what names.npz stores (int8 per row, see ``quantized``), so what dev chose thresholds
            # on is what every later load gives
            self.vectors[kind] = dequantized(*quantized(
                self.encode(keys, progress=progress, desc=f"embedding {len(keys):,} {kind} names")))
        if cache is not None:
            self.write_names(cache)
        return self

    @classmethod
    def load(cls, folder: Path, batch_size: int = 64) -> "EmbeddingIndex":
        """The index of a normalizer artifact: its encoder (the folder's own weights) and names.npz."""
        tokenizer, model, _ = load_artifact(folder, "normalizer")
        self = cls(tokenizer, model, batch_size)
        self._read_names(Path(folder) / NAMES_FILE)
        return self

    def restricted_to(self, dictionary: Dictionary) -> "EmbeddingIndex":
        """This index seen through a smaller dictionary (the same names, fewer of them): only the keys
        that dictionary has, each with that dictionary's best-ranked concept; vectors shared, none
        re-embedded. How thresholds are chosen on dev with the dev strings held out."""
        import numpy as np

        out = type(self).__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.names, out.ids, out.vectors = {}, {}, {}
        for kind, keys in self.names.items():
            rows = [(j, key) for j, key in enumerate(keys) if dictionary.exact.get(key, {}).get(kind)]
            out.names[kind] = [key for _, key in rows]
            out.ids[kind] = [best_concept(dictionary.exact[key][kind]) for _, key in rows]
            out.vectors[kind] = self.vectors[kind][np.array([j for j, _ in rows], dtype=np.int64)]
        return out

    def _read_names(self, path: Path) -> None:
        import numpy as np

        with np.load(path, allow_pickle=False) as z:
            for kind in z["kinds"].tolist():
                self.names[kind] = str(z[f"{kind}.names"]).split("\n")
                self.ids[kind] = str(z[f"{kind}.ids"]).split("\n")
                vectors = z[f"{kind}.vectors"]  # int8 with a scale per row; fp32 in artifacts built before
                self.vectors[kind] = dequantized(vectors, z[f"{kind}.scale"]) if f"{kind}.scale" in z.files else vectors

    def write_names(self, path: Path) -> None:
        """The embedded names (per type: keys, concept IDs, vectors as int8 with a scale per row: a
        quarter of fp32's bytes) as one .npz, written then renamed.
        Names and IDs are stored as one newline-joined string each: a fixed-width string array pads
        every name to the longest (350 MB and 6 s to load instead of 230 MB and 0.5 s)."""
        import numpy as np

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        arrays = {"kinds": np.array(sorted(self.names))}
        for kind in self.names:
            vectors, scale = quantized(self.vectors[kind])
            arrays |= {f"{kind}.names": np.array("\n".join(self.names[kind])),
                       f"{kind}.ids": np.array("\n".join(self.ids[kind])), f"{kind}.vectors": vectors,
                       f"{kind}.scale": scale}
        np.savez_compressed(tmp, **arrays)  # the names and ids compress ~4x
        tmp.replace(path)

    def encode(self, texts: list[str], progress: bool | str = False, desc: str = "embedding"):
        import numpy as np
        import torch

        from pipeline.progress import Progress
        from workers.inference.device import autocast

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        with (torch.inference_mode(), autocast(self.device, self.autocast),
              Progress(desc, total=len(order), unit="name", mode=progress) as bar):
            for k in range(0, len(order), self.batch_size):
                idx = order[k : k + self.batch_size]
                out[idx] = mean_pooled(self.model, self.tokenizer, [texts[i] for i in idx], self.device).numpy()
                bar.update(len(idx))
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

    def __init__(self, dictionary: Dictionary, index: EmbeddingIndex | None = None,
                 threshold: float = DEFAULT_THRESHOLD, thresholds: dict[str, float | None] | None = None) -> None:
        """``threshold``: the least cosine for an embedding link; ``thresholds``: per entity type,
        overriding it (None: no embedding links of that type at all). Built normalizers carry
        per-type thresholds chosen on dev data (workers.training.normalizer.choose_thresholds)."""
        self.dictionary, self.index, self.threshold = dictionary, index, threshold
        self.thresholds = dict(thresholds or {})
        self.manifest: dict = {}
        self.lexicon = None   # workers.inference.lexicon.Lexicon: genes, species, cell lines, variants
        self.ngram_thresholds: dict[str, float] = {}   # type -> least n-gram cosine (chosen on dev)
        self.ngrams: NgramIndex | None = None

    def threshold_for(self, kind: str) -> float | None:
        return self.thresholds.get(kind, self.threshold)

    def with_lexicon(self, lexicon) -> "Normalizer":
        self.lexicon = lexicon
        return self

    def with_ngrams(self, thresholds: dict[str, float | None]) -> "Normalizer":
        """Character n-gram links for the types with a threshold (-1: every nearest name, for scoring)."""
        self.ngram_thresholds = {k: v for k, v in thresholds.items() if v is not None}
        self.ngrams = NgramIndex(self.dictionary, self.ngram_thresholds) if self.ngram_thresholds else None
        return self

    @property
    def version(self) -> str:
        """Everything this normalizer links with (the manifest's and the fingerprint's)."""
        return self.dictionary.version + (f"+{self.lexicon.version}" if self.lexicon else "")

    def version_for(self, kind: str) -> str:
        """What linked a mention of ``kind`` (each entity row's ``dictionary_version``)."""
        return self.lexicon.version if self.lexicon and kind in LEXICON_TYPES else self.dictionary.version

    @classmethod
    def load(cls, folder: str | Path) -> "Normalizer":
        """A normalizer artifact folder: dictionary, encoder, embedded names."""
        import pyarrow.parquet as pq

        folder = Path(folder)
        index = EmbeddingIndex.load(folder)  # the one loader: checks the task and the files first
        manifest = read_manifest(folder)
        dictionary = Dictionary.from_table(pq.read_table(folder / DICTIONARY_FILE))
        if dictionary.version != manifest["version"]:
            raise NormalizationError(f"normalizer {folder}: its dictionary hashes to {dictionary.version} but "
                                     f"pubmine.json says {manifest['version']}; rebuild it")
        out = cls(dictionary, index, float(manifest["threshold"]), manifest.get("thresholds"))
        out.manifest = manifest
        if (folder / LEXICON_MANIFEST).exists():   # normalizers built before the lexicon have none
            out.lexicon = Lexicon.load(folder)
        if manifest.get("ngram_thresholds"):
            out.with_ngrams(manifest["ngram_thresholds"])
        return out

    def link_document(self, text: str, mentions: list[tuple]) -> list[Link]:
        """``mentions``: (mention text, entity type) or (mention text, entity type, sentence) of one
        document whose full text is ``text``, in text order (``Lexicon.link_document``: a species in a
        gene's own sentence decides its organism first)."""
        return self.link_documents([(text, mentions)])[0]

    def link_documents(self, docs: list[tuple[str, list[tuple]]]) -> list[list[Link]]:
        """Many documents at once: abbreviations and dictionary per document, then one embedding pass
        per entity type over every mention still unlinked (a short form defined in its document is
        embedded as its long form)."""
        out: list[list[Link]] = []
        pending: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        for d, (text, mentions) in enumerate(docs):
            abbrevs = abbreviations(text) if mentions else {}
            decided = self.lexicon.link_document(mentions, abbrevs, text) if self.lexicon else [None] * len(mentions)
            links = [done if done is not None else self.link(m, kind, abbrevs)
                     for (m, kind, *_), done in zip(mentions, decided)]
            out.append(links)
            if self.index is not None or self.ngrams is not None:
                for i, ((m, kind, *_), link) in enumerate(zip(mentions, links)):
                    if link.concept_id is None and decided[i] is None:
                        pending[kind].append((d, i, defined_long_form(m, abbrevs) or m))
        for kind, items in (pending.items() if self.index is not None else ()):
            least = self.threshold_for(kind)
            if least is None:  # this type's embedding links were not precise enough on dev: none
                continue
            for (d, i, _), (cid, sim) in zip(items, self.index.nearest([q for *_, q in items], kind)):
                if cid is not None and sim >= least:
                    out[d][i] = Link(cid, "embed", sim)
        if self.ngrams is not None:
            for kind, least in self.ngram_thresholds.items():
                items = [(d, i, abbrevs_q) for d, i, abbrevs_q in pending.get(kind, ()) if out[d][i].concept_id is None]
                for (d, i, _), (cid, sim) in zip(items, self.ngrams.nearest([q for *_, q in items], kind)):
                    if cid is not None and sim >= least:
                        out[d][i] = Link(cid, "ngram", sim)
        return out

    def link(self, mention: str, kind: str, abbrevs: dict[str, str] | None = None) -> Link:
        """A short form defined in the document links through its long form first (a global
        dictionary knows many "FAP"s, the document means one); then the exact name; then the bag;
        then, for a disease, the exact name of its adjective's noun (``noun_forms``)."""
        d = self.dictionary
        long_form = defined_long_form(mention, abbrevs or {})
        if long_form:
            via = d.lookup(long_form, kind)
            if via.concept_id:
                return Link(via.concept_id, "abbrev", via.score)
        found = d.lookup(mention, kind)
        if found.concept_id is None and kind == "Disease":
            for noun in noun_forms(mention):
                via = d.lookup(noun, kind, methods=("exact",))
                if via.concept_id:
                    return Link(via.concept_id, "adjective", via.score)
        return found
