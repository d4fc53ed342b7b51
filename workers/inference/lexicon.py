"""Linking the types a name dictionary or a rule decides: genes, species, cell lines and variants.

Each linker answers with a ``normalize.Link`` whose method says how it was decided:

- **Species** → NCBI Taxonomy (``NCBITaxon:9606``): the mention's name (case, punctuation and a plural
  ``s`` folded) among the species names of REACH, UniProt's species list and LINNAEUS's acronyms; when
  a name stands for several taxa, the one LINNAEUS counts most often in MEDLINE/PMC wins ("mice" is
  *Mus musculus*, "patients" and "women" are human); LINNAEUS's stop terms ("names", "Fisher") are no
  taxon's names. Method ``exact``; ``abbrev`` for an acronym the document defines ("human
  papillomavirus (HPV)"); ``genus`` for a genus name that only LINNAEUS's genera proxies know
  ("Drosophila" → *D. melanogaster*), for a span tagged Species only.
- **Gene** → NCBI Gene (``NCBIGene:7157``), species-aware: among the genes whose symbol, synonym or
  name the mention's key is (case, punctuation and Greek letters folded, HGNC aliases and previous
  symbols added to human genes), the one of the organisms named in the gene's own sentence (nearest
  first) wins, then the document's organisms (its species mentions and its cell lines' organisms, the
  most mentioned first), then the default organism (human), then any other organism that has the
  name; within an organism an official symbol beats a synonym, which beats a full name, and a
  protein-coding gene beats others. Method ``exact`` (``exact-default`` when the organism came from
  the default, not the document). A name only another organism has, or a document about an organism
  whose genes are not here (rat), is NIL: those links were nearly all wrong on BioRED Dev. A synonym
  several of the organism's genes share is NIL too, unless the document links exactly one of them by
  another mention (method ``document``).
- **CellLine** → Cellosaurus (``CVCL_0030``), by name (case and punctuation folded); a name several
  lines share goes to the document's organism first, then human. Method ``exact``.
- **Variant** → tmVar's normalized form (``p|SUB|V|600|E``, ``c|DEL|1314_1328|``, ``rs113488022``),
  by rules over the mention text (``rules``), or the rs number the document writes beside it
  ("Met326Ile (rs3730089)": ``document``). A variant known only by its dbSNP number in the gold
  standard ("Ala569Val" = rs79351185) cannot be derived from its text; that needs dbSNP, which this
  project does not have.

The tables live in a normalizer artifact beside its dictionary (``workers.training.lexicon`` writes
them from the raw NCBI/HGNC/UniProt/LINNAEUS/REACH/Cellosaurus files); ``Lexicon.version`` hashes them
and goes into every linked row's ``dictionary_version`` and the extraction fingerprint.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

from workers.inference.artifacts import LEXICON_CELL_LINES as CELL_LINES
from workers.inference.artifacts import LEXICON_GENE_SYMBOLS as GENE_SYMBOLS
from workers.inference.artifacts import LEXICON_GENES as GENES
from workers.inference.artifacts import LEXICON_MANIFEST
from workers.inference.artifacts import LEXICON_SPECIES as SPECIES
from workers.inference.artifacts import LEXICON_VARIANTS as VARIANTS
from workers.inference.link import NIL, Link

# files of a normalizer artifact (named in workers.inference.artifacts, which hashes them): the
# manifest (version, sources with sha256, row counts), gene name keys, each gene's official symbol,
# species names, cell line names

HUMAN = 9606                        # the default organism of a document that names none
# a gene name's rank inside one organism (lower wins; the lexicon files store it): annotated
# training strings, symbols, then synonyms and locus tags, then full names; a gene that is not
# protein-coding gets NOT_CODING more
ANNOTATED, SYMBOL, SYNONYM, FULL_NAME, NOT_CODING = -1, 0, 1, 2, 3
LEXICON_TYPES = ("Gene", "Species", "CellLine", "Variant")
ORGANISM_NOT = ("Disease", "Chemical", "Gene")   # types whose span is dropped when its text is a species name
PREFIX = {"Gene": "NCBIGene:", "Species": "NCBITaxon:", "CellLine": "", "Variant": ""}

_GREEK = {"α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "κ": "kappa", "λ": "lambda",
          "μ": "mu", "σ": "sigma", "τ": "tau", "ω": "omega", "ζ": "zeta", "η": "eta", "θ": "theta"}
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_LETTER = re.compile(r"[a-z]")


def tight_key(text: str) -> str:
    """Gene and cell line names: unicode folded, lowercase, a Greek letter or its name as its first
    Latin letter, only letters and digits kept ("IL-6" = "IL6", "TNF-α" = "TNF-alpha" = "TNFA",
    "b-catenin" = "beta-catenin", "COS-7" = "COS7")."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _GREEK_WORD.sub(lambda m: m.group(1)[0], "".join(_GREEK.get(c, c) for c in text))
    return _NOT_ALNUM.sub("", text)


def species_key(text: str) -> str:
    """Species names: lowercase, punctuation to spaces ("S. aureus" = "s aureus")."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_NOT_ALNUM.sub(" ", text).split())


def variant_key(text: str) -> str:
    """Variant mentions as annotators' strings are matched: lowercase, spacing collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def _singular(key: str) -> str | None:
    if key.endswith("ies") and len(key) > 4:
        return key[:-3] + "y"
    if key.endswith(("oes", "uses")) and len(key) > 4:   # mosquitoes, viruses
        return key[:-2]
    if key.endswith("s") and not key.endswith("ss") and len(key) > 3:
        return key[:-1]
    return None


def _preference(organisms: tuple[int, ...]) -> dict[int, int]:
    """taxon -> its place: the document's organisms in order, then the default (human)."""
    order: dict[int, int] = {}
    for t in (*organisms, HUMAN):
        order.setdefault(t, len(order))
    return order


_GREEK_WORD = re.compile(r"(?<![a-z])(alpha|beta|gamma|delta|kappa)(?![a-z])")


# ---------------------------------------------------------------- variants (tmVar's normalized forms)

_AA3 = {"ala": "A", "arg": "R", "asn": "N", "asp": "D", "cys": "C", "gln": "Q", "glu": "E", "gly": "G", "his": "H",
        "ile": "I", "leu": "L", "lys": "K", "met": "M", "phe": "F", "pro": "P", "ser": "S", "thr": "T", "trp": "W",
        "tyr": "Y", "val": "V", "ter": "X", "stop": "X", "sec": "U"}
_AA_NAMES = {"alanine": "A", "arginine": "R", "asparagine": "N", "aspartate": "D", "aspartic acid": "D",
             "cysteine": "C", "glutamine": "Q", "glutamate": "E", "glutamic acid": "E", "glycine": "G",
             "histidine": "H", "isoleucine": "I", "leucine": "L", "lysine": "K", "methionine": "M",
             "phenylalanine": "F", "proline": "P", "serine": "S", "threonine": "T", "tryptophan": "W",
             "tyrosine": "Y", "valine": "V", "stop": "X"}
_AA3.update(_AA_NAMES)
_NUMBER_WORDS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())}
_AA1 = "ACDEFGHIKLMNPQRSTVWY"
_AA = r"(?:[A-Z]|Ala|Arg|Asn|Asp|Cys|Gln|Glu|Gly|His|Ile|Leu|Lys|Met|Phe|Pro|Ser|Thr|Trp|Tyr|Val|Ter|Sec)"
_AA_TO = _AA + r"|X|\*|stop|Stop|STOP"
_NT = r"[ACGTU]"
_POS = r"(?:IVS\d+\s*[+-]\s*\d+|[-+*]?\d+(?:\s*[+-]\s*\d+)?)"
_AA_NAME = "(?:" + "|".join(sorted(_AA_NAMES, key=len, reverse=True)) + ")"
_RULES = [
    ("rs", re.compile(r"^rs\s?(\d+)$", re.I)),
    ("fs", re.compile(rf"^(?:p\.\s*)?({_AA})(\d+)({_AA})?\s*fs\s*(?:\*|X|Ter)?(\d+)?$")),
    ("p_sub_named", re.compile(rf"^({_AA_NAME})[\s-]*(\d+)[\s-]*(?:to|for|-+>?|>)?[\s-]*({_AA_NAME})$", re.I)),
    ("p_sub_at", re.compile(rf"^({_AA_NAME}|{_AA})\s+(?:to|for|by)\s+({_AA_NAME}|{_AA})\s+(?:at|in)\s+"
                            r"(?:codon|position|residue|amino acid)\s+(\d+)$", re.I)),
    ("size_del", re.compile(r"^(?:delta|Δ|DD)\s*(\d+)(?:\s+deletion)?$|^(\d+|[a-z]+)[\s-]*(?:bp|base[\s-]pairs?|nucleotides?)"
                            r"\s+(deletion|insertion)$", re.I)),
    ("p_sub", re.compile(rf"^(p\.\s*)?\(?({_AA})\s*(\d+)\s*(?:to\s+|-+|>)?\s*({_AA_TO})\)?$")),
    ("c_sub", re.compile(rf"^(?:([cgmnr])\.\s*)?({_POS})\s*\(?({_NT})\s*(?:-*>|/|to)\s*({_NT})\)?$")),
    ("nt_change", re.compile(rf"^({_NT})\s*(?:-*>|/|to)\s*({_NT})$")),
    ("p_allele", re.compile(rf"^p\.\s*({_AA})(\d+)$")),
    ("p_sub_pos_first", re.compile(rf"^(\d+)\s*({_AA})\s*/\s*({_AA})$")),
    ("p_del", re.compile(rf"^(?:p\.\s*)?({_AA})(\d+)(?:\s*_\s*{_AA}(\d+))?\s*del$")),
    ("del_pos_first", re.compile(r"^del\s*(\d+)\s*([ACGT]+)$")),
    ("dup_size", re.compile(r"^dup\s*(\d+)\s*bp$", re.I)),
    ("c_sub_pre", re.compile(rf"^(?:([cgmnr])\.\s*)?({_NT})\s*({_POS})\s*({_NT})$")),
    ("del", re.compile(rf"^(?:([cgmnrp])\.\s*)?({_POS})(?:\s*_\s*({_POS}))?\s*del\s*([ACGTU]+|\d+|[A-Z]+)?$", re.I)),
    ("ins", re.compile(rf"^(?:([cgmnrp])\.\s*)?({_POS})(?:\s*_\s*({_POS}))?\s*ins\s*([ACGTU]+|\d+)$", re.I)),
    ("dup", re.compile(rf"^(?:([cgmnrp])\.\s*)?({_POS})(?:\s*_\s*({_POS}))?\s*dup\s*([ACGTU]+|\d+)?$", re.I)),
]


def _aa(x: str) -> str:
    if len(x) == 1:
        return "X" if x == "*" else x.upper()
    return _AA3.get(x.lower(), x.upper())


def _pos(p: str) -> str:
    return re.sub(r"\s+", "", p)


_RS_NUMBER = r"rs\s?\d+"   # "rs3730089", "rs 3730089"


def rs_aliases(text: str, mentions: list[str]) -> dict[str, str]:
    """variant key -> the rs number the document writes next to it ("Met326Ile (rs3730089)",
    "rs2476601-C1858T"): a variant mention and an rs number with at most four characters between them
    and none a letter or a digit. Annotators give every mention of such a variant that rs number; on
    BioRED train the rule changed 18 links, 16 to the gold ID (the rs number must otherwise come from
    dbSNP, which is not here)."""
    out: dict[str, str] = {}
    for mention in dict.fromkeys(x for x in mentions if not re.fullmatch(_RS_NUMBER, x.strip(), re.I)):
        x = re.escape(mention.strip())
        hit = (re.search(rf"(?<!\w){x}\W{{0,4}}({_RS_NUMBER})(?!\d)", text) or
               re.search(rf"(?<!\w)({_RS_NUMBER})\W{{0,4}}{x}(?!\w)", text))
        if hit:
            out[variant_key(mention)] = re.sub(r"\s", "", hit.group(1)).lower()
    return out


def only_rs_number(text: str) -> str | None:
    """The rs number of a document that names exactly one (in any spelling), else None. Such an
    abstract studies that SNP and names it several ways ("Met326Ile", "326Ile", "Ile326Ile" beside
    one "rs3730089"): on BioRED train its other variant mentions were that rs number 33 times in 34."""
    found = {re.sub(r"\s", "", m).lower() for m in re.findall(rf"(?<!\w){_RS_NUMBER}(?!\d)", text, re.I)}
    return found.pop() if len(found) == 1 else None


def variant_id(mention: str) -> str | None:
    """tmVar's normalized form of a variant mention, or None where no rule applies."""
    text = " ".join(mention.split()).strip(" ,;.()")
    for name, rx in _RULES:
        m = rx.match(text)
        if not m:
            continue
        if name == "rs":
            return f"rs{m.group(1)}"
        if name == "fs":
            a, pos, b, n = m.groups()
            return f"p|FS|{_aa(a)}|{pos}|{_aa(b) if b else ''}|{n or ''}"
        if name == "p_sub_named":
            a, pos, b = m.groups()
            return f"p|SUB|{_aa(a)}|{pos}|{_aa(b)}"
        if name == "p_sub_at":
            a, b, pos = m.groups()
            return f"p|SUB|{_aa(a)}|{pos}|{_aa(b)}"
        if name == "size_del":
            delta, size, what = m.groups()
            size = delta or _NUMBER_WORDS.get((size or "").lower(), size)
            if not size or not size.isdigit():
                continue
            return f"c|{'INS' if what and what.lower() == 'insertion' else 'DEL'}||{size}"
        if name == "p_sub":
            protein, a, pos, b = m.groups()
            if len(a) == 1 and a not in _AA1 or (len(b) == 1 and b not in _AA1 + "X*"):
                continue
            if not protein and len(a) == len(b) == 1 and a in "ACGT" and b in "ACGT":
                # "G135C" reads as either; BioRED train's annotators made 11 of 14 such a DNA change
                return f"c|SUB|{a}|{pos}|{b}"
            return f"p|SUB|{_aa(a)}|{pos}|{_aa(b)}"
        if name == "nt_change":
            return f"c|SUB|{m.group(1)}||{m.group(2)}"
        if name == "p_allele":
            return f"p|Allele|{_aa(m.group(1))}|{m.group(2)}"
        if name == "p_sub_pos_first":
            pos, a, b = m.groups()
            return f"p|SUB|{_aa(a)}|{pos}|{_aa(b)}"
        if name == "p_del":
            a, pos, stop = m.groups()
            return f"p|DEL|{pos}_{stop}|" if stop else f"p|DEL|{pos}|{_aa(a)}"
        if name == "del_pos_first":
            return f"c|DEL|{m.group(1)}|{m.group(2)}"
        if name == "dup_size":
            return f"c|DUP||{m.group(1)}|"
        if name == "c_sub":
            seq, pos, a, b = m.groups()
            return f"{seq or 'c'}|SUB|{a.upper()}|{_pos(pos)}|{b.upper()}"
        if name == "c_sub_pre":
            seq, a, pos, b = m.groups()
            return f"{seq or 'c'}|SUB|{a.upper()}|{_pos(pos)}|{b.upper()}"
        seq, start, stop, what = m.groups()
        where = _pos(start) + (f"_{_pos(stop)}" if stop else "")
        kind = name.upper()
        return f"{seq or 'c'}|{kind}|{where}|{(what or '').upper() if what and not what.isdigit() else what or ''}"
    return None


# ---------------------------------------------------------------- the dictionaries


class Lexicon:
    """Genes, species and cell lines by name; variants by rule (see the module's docstring)."""

    def __init__(self, genes: dict[str, list[tuple[str, int, int]]], species: dict[str, list[tuple[int, float]]],
                 cell_lines: dict[str, list[tuple[str, int]]], version: str,
                 variants: dict[str, str] | None = None, organisms: tuple[int, ...] | None = None,
                 genera: dict[str, int] | None = None) -> None:
        self.genes, self.species, self.cell_lines, self.version = genes, species, cell_lines, version
        self.variants = variants or {}
        self.genera = genera or {}   # genus name -> its proxy species, for Species spans only
        # the organisms whose genes are all here (gene_info): a paper about another one gets no
        # human fallback for a name its organism lacks
        self.gene_organisms = frozenset(organisms if organisms is not None else
                                        (t for hits in genes.values() for _, t, _ in hits))

    @classmethod
    def load(cls, folder: str | Path) -> "Lexicon":
        """The lexicon files of a normalizer artifact folder."""
        import pyarrow.parquet as pq

        folder = Path(folder)
        manifest = json.loads((folder / LEXICON_MANIFEST).read_text())
        genes: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        g = pq.read_table(folder / GENES).to_pydict()
        for key, gid, tax, rank in zip(g["key"], g["gene_id"], g["taxon"], g["rank"]):
            genes[key].append((gid, tax, rank))
        species: dict[str, list[tuple[int, float]]] = defaultdict(list)
        genera: dict[str, int] = {}
        has_genus = "genus" in pq.read_schema(folder / SPECIES).names   # lexicons before v5 have none
        s = pq.read_table(folder / SPECIES, columns=["key", "taxon", "frequency"] + ["genus"] * has_genus).to_pydict()
        for key, tax, freq, genus in zip(s["key"], s["taxon"], s["frequency"], s.get("genus") or [False] * len(s["key"])):
            if genus:
                genera[key] = tax
            else:
                species[key].append((tax, freq))
        cell_lines: dict[str, list[tuple[str, int]]] = defaultdict(list)
        c = pq.read_table(folder / CELL_LINES, columns=["key", "accession", "taxon"]).to_pydict()
        for key, acc, tax in zip(c["key"], c["accession"], c["taxon"]):
            cell_lines[key].append((acc, tax))
        variants = {}
        if (folder / VARIANTS).exists():
            v = pq.read_table(folder / VARIANTS)
            variants = dict(zip(v.column("key").to_pylist(), v.column("variant_id").to_pylist()))
        organisms = tuple(manifest["organisms"]) if "organisms" in manifest else None
        return cls(dict(genes), dict(species), dict(cell_lines), manifest["version"], variants, organisms, genera)

    # -- one mention

    def link_species(self, mention: str, genus: bool = False) -> Link:
        """``genus``: a genus name no species name matches links to LINNAEUS's proxy species for it
        (method ``genus``); only for a span tagged Species (a Disease "cancer" is not the crab genus)."""
        key = species_key(mention)
        hits = self.species.get(key) or self.species.get(_singular(key) or "")
        if not hits:
            taxon = self.genera.get(key) if genus else None
            return Link(f"{PREFIX['Species']}{taxon}", "genus", 1.0) if taxon else NIL
        taxon = max(hits, key=lambda h: (h[1], -h[0]))[0]
        return Link(f"{PREFIX['Species']}{taxon}", "exact", 1.0)

    def link_gene(self, mention: str, organisms: tuple[int, ...] = (), named: frozenset[str] = frozenset()) -> Link:
        """``named``: the gene IDs the document links by other mentions (a shared synonym may take
        one of them)."""
        key = tight_key(mention)
        if len(key) < 2 or not _LETTER.search(key):
            return NIL   # "1", "P", "-1": no gene is known by a lone character or a number
        hits = self.genes.get(key) or (self.genes.get(key[:-1]) if len(key) > 4 and key.endswith("s") else None)
        if not hits:
            return NIL
        order = _preference(organisms)
        gid, tax, rank = min(hits, key=lambda h: (order.get(h[1], len(order)), h[2], int(h[0])))
        shared = [g for g, t, r in hits if t == tax and r == rank]
        if rank >= SYNONYM and len(shared) > 1:
            # a synonym or full name that several of the organism's genes share ("GPCR": 11 human
            # genes): on BioRED train the lowest-ID pick was right for 8 of 45 such mentions, against
            # 142 of 192 for a shared official symbol (which keeps its pick). Unless the document
            # names exactly one of them otherwise ("TAK1" beside "MAP3K7"): 58 of 62 right on
            # BioRED train (a lexicon without its strings)
            known = [g for g in shared if g in named]
            if len(known) != 1:
                return NIL
            return Link(f"{PREFIX['Gene']}{known[0]}", "document", 1.0)
        if tax in organisms:
            return Link(f"{PREFIX['Gene']}{gid}", "exact", 1.0)
        if tax != HUMAN or (organisms and organisms[0] not in self.gene_organisms):
            # only another organism has the name (16 of 239 such links right on BioRED train), or
            # the document is about an organism whose genes are not here (rat; 9 of 277): no guess
            return NIL
        return Link(f"{PREFIX['Gene']}{gid}", "exact-default", 1.0)

    def link_cell_line(self, mention: str, organisms: tuple[int, ...] = ()) -> Link:
        hit = self._cell_line(mention, organisms)
        return Link(hit[0], "exact", 1.0) if hit else NIL

    def _cell_line(self, mention: str, organisms: tuple[int, ...]) -> tuple[str, int] | None:
        """(accession, taxon) of the line a mention names, or None."""
        key = tight_key(mention)
        bare = re.sub(r"cells?$", "", key)   # "HeLa cells"
        hits = self.cell_lines.get(key) or self.cell_lines.get(bare)
        if not hits or len(key) < 2:
            return None
        order = _preference(organisms)
        return min(hits, key=lambda h: (order.get(h[1], len(order)), h[0]))

    def not_an_organism(self, mention: str, kind: str) -> bool:
        """False for a Disease, Chemical or Gene span whose whole text is a species name ("Anopheles",
        "mosquitoes", "P. falciparum" tagged Disease): in the training and dev gold of BioRED, BC5CDR
        and NCBI-disease, 0.34% of disease and chemical mentions and 0.2% of gene mentions are
        species names ("ICH", "Li", "cannabis"), while the default model tagged 180 organisms so in
        the MEDLINE sample (benchmarks/results/junk.md)."""
        return kind not in ORGANISM_NOT or not self.link_species(mention).concept_id

    def link_variant(self, mention: str) -> Link:
        """The ID annotators gave this string in training (often an rs number no rule can derive),
        else tmVar's normalized form by rule."""
        known = self.variants.get(variant_key(mention))
        if known:
            return Link(known, "exact", 1.0)
        vid = variant_id(mention)
        return Link(vid, "rules", 1.0) if vid else NIL

    # -- a document

    def link_document(self, mentions: list[tuple], abbrevs: dict[str, str] | None = None,
                      doc_text: str | None = None) -> list[Link | None]:
        """Links for the mentions of the lexicon's types (None for any other type). A mention is
        ``(text, type)`` or ``(text, type, sentence)`` (any key that is equal for mentions of one
        sentence), in text order. Species first, then cell lines (by the species): the organisms they
        name, most named first, decide the document's genes, except that an organism named in the
        gene's own sentence (nearest first) comes before them ("human TIPE2 ... in mice"). A gene the
        dictionary does not know by this name is tried by the other form of an abbreviation the
        document defines ("sodium/iodide symporter (NIS)"), or that the name defines inside itself
        ("Toll-like receptor (TLR) 4"); a list of numbered members ("Smad1/5/8") by its first (method
        ``member``). A variant the document's text (``doc_text``) writes
        beside an rs number is that rs number (``rs_aliases``; method ``document``), and so is every
        variant of a document that names exactly one rs number (``only_rs_number``)."""
        abbrevs = abbrevs or {}
        long_to_short = {v.lower(): k for k, v in abbrevs.items()}

        def other_form(text: str) -> str | None:   # an abbreviation's long form, or a long form's abbreviation
            return abbrevs.get(text.strip()) or long_to_short.get(text.strip().lower())

        out: list[Link | None] = [None] * len(mentions)
        taxa: dict[int, int] = {}   # mention -> the organism a species or cell line mention names
        for i, (text, kind, *_) in enumerate(mentions):
            if kind == "Species":
                out[i] = link = self.link_species(text, genus=True)
                other = other_form(text)
                if link.concept_id is None and other:   # "human papillomavirus (HPV)"
                    via = self.link_species(other, genus=True)
                    out[i] = link = Link(via.concept_id, "abbrev", 1.0) if via.concept_id else link
                if link.concept_id:
                    taxa[i] = int(link.concept_id.split(":")[1])
        by_species = tuple(t for t, _ in Counter(taxa.values()).most_common())
        for i, (text, kind, *_) in enumerate(mentions):
            if kind == "CellLine":
                hit = self._cell_line(text, by_species)
                out[i] = Link(hit[0], "exact", 1.0) if hit else NIL
                if hit:   # a cell line is its organism's evidence too (HeLa: the genes are human)
                    taxa[i] = hit[1]
        organisms = tuple(t for t, _ in Counter(taxa.values()).most_common())
        sentence = [m[2] if len(m) > 2 else None for m in mentions]
        genes = [i for i, (_, kind, *_) in enumerate(mentions) if kind == "Gene"]
        where: dict[int, tuple[int, ...]] = {}
        for i in genes:
            near = sorted((j for j in taxa if sentence[i] is not None and sentence[j] == sentence[i]),
                          key=lambda j: abs(j - i))
            where[i] = tuple(dict.fromkeys([taxa[j] for j in near] + list(organisms)))

        def gene(i: int, named: frozenset[str]) -> Link:
            text = mentions[i][0]
            link = self.link_gene(text, where[i], named)
            other = other_form(text)
            tries = [(f, "abbrev") for f in ([other] if other else []) + inline_forms(text)]
            for form, method in tries + [(f, "member") for f in first_member(text)]:
                if link.concept_id is not None:
                    break
                via = self.link_gene(form, where[i], named)
                link = Link(via.concept_id, method, 1.0) if via.concept_id else link
            return link

        for i in genes:
            out[i] = gene(i, frozenset())
        # then a shared synonym may take a gene the document links by another mention
        named = frozenset(out[i].concept_id.split(":")[1] for i in genes if out[i].concept_id)
        for i in genes:
            if out[i].concept_id is None and named:
                out[i] = gene(i, named)
        variants = [i for i, (_, kind, *_) in enumerate(mentions) if kind == "Variant"]
        beside = rs_aliases(doc_text, [mentions[i][0] for i in variants]) if doc_text and variants else {}
        only = only_rs_number(doc_text) if doc_text and variants else None
        for i in variants:
            rs = beside.get(variant_key(mentions[i][0])) or only
            out[i] = Link(rs, "document", 1.0) if rs else self.link_variant(mentions[i][0])
        return out


_INLINE_SHORT_FORM = re.compile(r"^(?P<long>.*?\S)\s*\((?P<short>[^()]{1,12})\)\s*(?P<rest>[-\s]?\S{1,6})$")


def inline_forms(mention: str) -> list[str]:
    """A name that defines its short form inside itself and numbers both ("Toll-like receptor (TLR)
    4", "interleukin (IL)-6"): the long form numbered, then the short form numbered ("TLR4")."""
    m = _INLINE_SHORT_FORM.match(mention.strip())
    if not m:
        return []
    rest = m["rest"].lstrip("- ")
    return [f"{m['long']} {rest}", m["short"] + m["rest"]]


_NUMBERED_MEMBERS = re.compile(r"^(?P<first>.*?[A-Za-z][-\s]?(?:\d+|[IVX]+))(?:/[A-Z]?(?:\d+|[IVX]+))+$")


def first_member(mention: str) -> list[str]:
    """A list of numbered members written once ("Smad1/5/8", "ERK1/2", "ROCK-I/II"): the first
    member, which annotators' ID lists hold."""
    m = _NUMBERED_MEMBERS.match(mention.strip())
    return [m["first"]] if m else []


def names_table(folder: str | Path):
    """concept_id -> name of every gene (its official symbol) and species (its scientific name) of a
    normalizer artifact folder's lexicon: what the knowledge tables name linked concepts by. Not cell
    lines: REACH's Cellosaurus table lists spelling variants and often not the line's own name ("He
    La", "He-La", "HELA" for CVCL_0030, no "HeLa"), so a cell line is named as the snapshot writes it
    most often (``pipeline.knowledge.NAMES_SQL``)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder = str(folder).rstrip("/")
    g = pq.read_table(f"{folder}/{GENE_SYMBOLS}")
    s = pq.read_table(f"{folder}/{SPECIES}", columns=["taxon", "name", "preferred"]).filter(pc.field("preferred"))
    s = s.group_by("taxon", use_threads=False).aggregate([("name", "min")])
    ids = [pc.binary_join_element_wise(PREFIX["Gene"], g.column("gene_id"), ""),
           pc.binary_join_element_wise(PREFIX["Species"], pc.cast(s.column("taxon"), pa.string()), "")]
    return pa.table({"concept_id": pa.concat_arrays([pa.array(x.to_pylist(), pa.string()) for x in ids]),
                     "name": pa.concat_arrays([pa.array(x.to_pylist(), pa.string())
                                               for x in (g.column("symbol"), s.column("name_min"))])})


__all__ = ["Lexicon", "names_table", "LEXICON_MANIFEST", "ORGANISM_NOT", "VARIANTS", "variant_key", "rs_aliases", "LEXICON_TYPES", "HUMAN", "tight_key", "species_key", "variant_id"]
