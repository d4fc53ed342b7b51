"""Building the gene, species and cell line tables that ``workers.inference.lexicon`` links with, from
the raw public files (NCBI Gene ``gene_info`` per organism, HGNC's complete set, UniProt's species
list, LINNAEUS's species frequencies and acronyms, REACH's species and Cellosaurus names, MeSH
organism → taxon), and BioRED train's annotated gene and variant strings. Written into a normalizer artifact's ``lexicon/`` folder, with ``lexicon.json``
naming every source file with its sha256, so that ``version`` changes when any of them does.

On a cluster the same files come from their homes (ftp.ncbi.nlm.nih.gov/gene/DATA/GENE_INFO/,
ftp.ebi.ac.uk/pub/databases/genenames/hgnc/tsv/, ftp.uniprot.org/.../speclist.txt,
ftp.expasy.org/databases/cellosaurus/); set PUBMINE_DATA to the folder that holds them.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
from collections import defaultdict
from pathlib import Path

from pipeline.errors import ConfigError
from workers.inference.lexicon import (ANNOTATED, CELL_LINES, FULL_NAME, GENE_SYMBOLS, GENES, HUMAN, LEXICON_MANIFEST,
                                       NOT_CODING, SPECIES, SYMBOL, SYNONYM, VARIANTS, species_key, tight_key,
                                       variant_key)

ROOT = "normalization_dicts"
GENE_INFO = {  # organism (the species taxon a document's species mentions link to) -> gene_info file
    9606: "ncbi_gene/Homo_sapiens.gene_info.gz",
    10090: "ncbi_gene/Mus_musculus.gene_info.gz",
    # NCBI Gene files S. cerevisiae's genes under its reference strain S288C (559292); "yeast" and
    # "S. cerevisiae" link to the species (4932), so its genes are that organism's (filed under the
    # strain, a yeast paper's genes never met its organism and were left NIL as another organism's)
    4932: "ncbi_gene/Saccharomyces_cerevisiae.gene_info.gz",
    7955: "ncbi_gene/Danio_rerio.gene_info.gz",
    7227: "ncbi_gene/Drosophila_melanogaster.gene_info.gz",
}
HGNC = "ncbi_gene/hgnc_complete_set.txt.gz"
SPECIES_NAMES = "species/reach_Species_exhaustive.tsv.gz"
UNIPROT_SPECIES = "species/uniprot_speclist_2019_07.txt.gz"
LINNAEUS_FREQUENCY = "species/linnaeus_species-frequency.tsv.gz"
LINNAEUS_ACRONYMS = "species/linnaeus_synonyms-acronyms.tsv.gz"
# LINNAEUS's stop terms: names of a taxon that are common words in text ("names", "spots", "rays",
# "Fisher", "J1", "T7", "rape"), never linked to it
LINNAEUS_STOPLIST = "species/linnaeus_stoplist.tsv.gz"
# LINNAEUS's genera proxies: a genus name -> its most mentioned species ("Drosophila" -> D. melanogaster),
# for a Species span that no species name matches
LINNAEUS_GENERA = "species/linnaeus_dict-genera-proxy.tsv.gz"
MESH_ORGANISMS = "species/julie_desc2tax.tsv.gz"
CELLOSAURUS = "cellosaurus_2016/reach_Cellosaurus.tsv.gz"
# annotated training mentions (BioRED train: its Dev split is the test, never read here): how
# annotators linked a string is the best evidence for it, as for chemicals and diseases
CORPUS = "biored/pubtator/Train.PubTator.gz"
SKIPPED_GENE_TYPES = frozenset({"biological-region", "other", "unknown"})  # regions and placeholders, not genes
_UNIPROT = re.compile(r"^(\w+)\s+[ABEVO]\s+(\d+):\s+N=(.+)$")
_UNIPROT_MORE = re.compile(r"^\s+([CS])=(.+)$")


def _lines(path: Path):
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        yield from f


def _gene_rows(path: Path, organism: int):
    """(key, gene_id, taxon, rank) and (gene_id, symbol) of one gene_info file."""
    for line in _lines(path):
        cols = line.rstrip("\n").split("\t")
        if len(cols) < 14 or not cols[0].isdigit() or cols[9] in SKIPPED_GENE_TYPES:
            continue  # headers (the yeast copy's has no '#') and non-genes
        readthrough = "readthrough" in cols[8].lower()   # "INS-IGF2 readthrough": shares its parts' names
        gid, extra = cols[1], 0 if cols[9] == "protein-coding" and not readthrough else NOT_CODING
        names = [(cols[2], SYMBOL), (cols[10], SYMBOL)]
        names += [(s, SYNONYM) for s in cols[4].split("|")] + [(cols[3], SYNONYM)]
        names += [(cols[8], FULL_NAME), (cols[11], FULL_NAME)]
        if not extra:
            names += [(s, FULL_NAME) for s in cols[13].split("|")]
        yield gid, cols[2], extra, [(n, r + extra) for n, r in names if n and n != "-"]


def gene_tables(root: Path):
    best: dict[tuple[str, str], tuple[int, int]] = {}   # (key, gene id) -> (rank, taxon)
    symbols: dict[str, str] = {}
    extra: dict[str, int] = {}   # gene id -> NOT_CODING for a gene that is not protein-coding, else 0
    for organism, rel in GENE_INFO.items():
        for gid, symbol, not_coding, names in _gene_rows(root / rel, organism):
            symbols[gid], extra[gid] = symbol, not_coding
            for name, rank in names:
                key = tight_key(name)
                if key and best.get((key, gid), (99,))[0] > rank:
                    best[(key, gid)] = (rank, organism)
    # aliases and previous symbols of human genes, ranked as gene_info's synonyms of the same gene are
    # (a pseudogene's alias "p16" no longer ties with CDKN2A's)
    with gzip.open(root / HGNC, "rt", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            gid = row.get("entrez_id") or ""
            if gid not in symbols:
                continue
            rank = SYNONYM + extra[gid]
            for field in ("alias_symbol", "prev_symbol"):
                for name in (row.get(field) or "").strip('"').split("|"):
                    key = tight_key(name)
                    if key and best.get((key, gid), (99,))[0] > rank:
                        best[(key, gid)] = (rank, HUMAN)
    return best, symbols


def corpus_names(path: Path, symbols: dict[str, str], taxa: dict[str, int]):
    """From an annotated corpus: gene (key, id, taxon) votes with the gene's organism (its gene_info
    one, else the document's most annotated species: BioRED's rat genes), a name for genes without
    a gene_info here, and variant (mention key, id) votes."""
    from collections import Counter

    from pipeline.parse.pubtator import read_pubtator

    genes, variants, names = Counter(), Counter(), {}
    for doc in read_pubtator(path):
        species = Counter(m.ids.strip() for m in doc.mentions if m.type == "Species" and m.ids.strip().isdigit())
        top = int(species.most_common(1)[0][0]) if species else HUMAN
        for m in doc.mentions:
            ids = [i.strip() for i in m.ids.replace(";", ",").split(",") if i.strip()]
            if len(ids) != 1:
                continue
            if m.type == "Gene" and ids[0].isdigit() and tight_key(m.text):
                genes[(tight_key(m.text), ids[0], taxa.get(ids[0], top))] += 1
                if ids[0] not in symbols:
                    names.setdefault(ids[0], Counter())[m.text] += 1
            elif m.type == "Variant" and ids[0] not in ("-", "-1"):
                variants[(variant_key(m.text), ids[0])] += 1
    return genes, variants, {gid: c.most_common(1)[0][0] for gid, c in names.items()}


def species_tables(root: Path):
    """(key, taxon, frequency, name, preferred, genus): every name of REACH, UniProt, LINNAEUS acronyms and
    MeSH organisms; frequency is LINNAEUS's count of the taxon in MEDLINE/PMC (the tie-breaker). Then
    LINNAEUS's genera proxies (``genus`` true) for the genus names no other source has: a weaker
    link, made only for a span tagged Species, so that a Disease "cancer" is not the crab genus."""
    freq: dict[int, float] = {}
    for line in _lines(root / LINNAEUS_FREQUENCY):
        tax, _, n = line.rstrip("\n").partition("\t")
        if tax.startswith("species:ncbi:") and n.strip().isdigit():
            freq[int(tax.rsplit(":", 1)[1])] = float(n)
    names: dict[tuple[str, int], tuple[str, bool]] = {}
    stop: dict[int, list[re.Pattern]] = defaultdict(list)
    for line in _lines(root / LINNAEUS_STOPLIST):
        tax, _, pattern = line.rstrip("\n").partition("\t")
        if tax.startswith("species:ncbi:") and pattern:
            stop[int(tax.rsplit(":", 1)[1])].append(re.compile(pattern))

    def add(name: str, taxon: int, preferred: bool = False) -> None:
        key = species_key(name)
        if any(rx.fullmatch(name.strip()) for rx in stop.get(taxon, ())):
            return
        if key and (preferred or (key, taxon) not in names):
            names[(key, taxon)] = (name, preferred)

    taxon = None  # the record a C= / S= continuation line belongs to
    for line in _lines(root / UNIPROT_SPECIES):
        m = _UNIPROT.match(line)
        if m:
            taxon = int(m.group(2))
            add(m.group(3).strip(), taxon, preferred=True)
            continue
        m = _UNIPROT_MORE.match(line)
        if m and taxon is not None:
            add(m.group(2).strip(), taxon)
    for line in _lines(root / SPECIES_NAMES):
        name, _, tax = line.rstrip("\n").partition("\t")
        if tax.strip().isdigit():
            add(name, int(tax))
    for line in _lines(root / LINNAEUS_ACRONYMS):
        cols = line.rstrip("\n").split("\t")
        if len(cols) >= 3 and cols[0].startswith("species:ncbi:") and float(cols[2] or 0) >= 0.5:
            add(cols[1], int(cols[0].rsplit(":", 1)[1]))
    for line in _lines(root / MESH_ORGANISMS):
        cols = line.rstrip("\n").split("\t")
        if len(cols) >= 2 and cols[-1].strip().isdigit():
            add(cols[0], int(cols[-1]))
    rows = [(k, t, freq.get(t, 0.0), n, p, False) for (k, t), (n, p) in names.items()]
    known = {k for k, _ in names}
    genera: dict[str, tuple[int, str]] = {}
    for line in _lines(root / LINNAEUS_GENERA):
        tax, _, genus = line.rstrip("\n").partition("\t")
        key = species_key(genus)
        if tax.startswith("species:ncbi:") and key and key not in known:
            genera.setdefault(key, (int(tax.rsplit(":", 1)[1]), genus.strip()))
    rows += [(k, t, freq.get(t, 0.0), n, False, True) for k, (t, n) in genera.items()]
    return sorted(rows)


def cell_line_table(root: Path, scientific: dict[str, int]):
    """(key, accession, taxon, name) of every Cellosaurus name (REACH's 2016 table; names may begin
    with '#', which is not a comment there)."""
    rows = {}
    for line in _lines(root / CELLOSAURUS):
        cols = line.rstrip("\n").split("\t")
        if len(cols) < 2 or not cols[1].startswith("CVCL_"):
            continue
        taxon = scientific.get((cols[2] if len(cols) > 2 else "").strip().lower(), 0)
        key = tight_key(cols[0])
        if key:
            rows.setdefault((key, cols[1]), (taxon, cols[0]))
    return sorted((k, a, t, n) for (k, a), (t, n) in rows.items())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_lexicon(into: Path, data_dir: Path, annotated: bool = True) -> dict:
    """Write the lexicon's tables and ``lexicon.json`` into ``into``; returns the manifest.
    ``annotated=False``: without BioRED train's annotated strings (what a dev measurement on BioRED
    train documents must link with: ``benchmarks.unlinked``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = data_dir / ROOT
    sources = [*GENE_INFO.values(), HGNC, SPECIES_NAMES, UNIPROT_SPECIES, LINNAEUS_FREQUENCY, LINNAEUS_ACRONYMS,
               LINNAEUS_STOPLIST, LINNAEUS_GENERA, MESH_ORGANISMS, CELLOSAURUS]
    missing = [s for s in sources if not (root / s).exists()] + ([] if (data_dir / CORPUS).exists() else [CORPUS])
    if missing:
        raise ConfigError(f"lexicon source files not found under {root}: {', '.join(missing)}; set PUBMINE_DATA "
                          "to the folder that holds normalization_dicts/ (see its PROVENANCE-genes-species-cells.md)")
    into.mkdir(parents=True, exist_ok=True)
    best, symbols = gene_tables(root)
    taxa = {gid: t for (_, gid), (_, t) in best.items()}
    gene_votes, variant_votes, extra_symbols = (corpus_names(data_dir / CORPUS, symbols, taxa) if annotated
                                                else ({}, {}, {}))
    for (key, gid, taxon), _ in gene_votes.items():
        best[(key, gid)] = (ANNOTATED, taxon)
    symbols.update(extra_symbols)
    genes = sorted((k, g, t, r) for (k, g), (r, t) in best.items())
    top_variant: dict[str, tuple[int, str]] = {}
    for (key, vid), n in variant_votes.items():   # the ID annotators chose most often for a string
        if key and (key not in top_variant or (n, vid) > top_variant[key]):
            top_variant[key] = (n, vid)
    variants = sorted((k, v) for k, (_, v) in top_variant.items())
    species = species_tables(root)
    scientific = {n.lower(): t for _, t, _, n, p, _ in species if p}
    cells = cell_line_table(root, scientific)
    write = lambda rows, names, types, name: pq.write_table(  # noqa: E731
        pa.table({c: pa.array(list(v), t) for c, v, t in zip(names, zip(*rows) if rows else [[]] * len(names), types)}),
        into / name, compression="zstd")
    write(genes, ("key", "gene_id", "taxon", "rank"), (pa.string(), pa.string(), pa.int32(), pa.int8()), GENES)
    write(sorted(symbols.items()), ("gene_id", "symbol"), (pa.string(), pa.string()), GENE_SYMBOLS)
    write(species, ("key", "taxon", "frequency", "name", "preferred", "genus"),
          (pa.string(), pa.int32(), pa.float64(), pa.string(), pa.bool_(), pa.bool_()), SPECIES)
    write(cells, ("key", "accession", "taxon", "name"), (pa.string(), pa.string(), pa.int32(), pa.string()), CELL_LINES)
    write(variants, ("key", "variant_id"), (pa.string(), pa.string()), VARIANTS)
    files = {**{s: _sha256(root / s) for s in sources}, CORPUS: _sha256(data_dir / CORPUS)}
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode() + b"lexicon-v5"
                            + (b"" if annotated else b"-unannotated")).hexdigest()[:12]
    corpus = "+BioRED-train" if annotated else ""
    manifest = {"version": f"NCBIGene+HGNC+UniProtSpecies2019_07+LINNAEUS1.3+REACH+Cellosaurus2016{corpus}#{digest}",
                "sources": files, "organisms": sorted(GENE_INFO),   # whose genes are all here
                "rows": {"gene_names": len(genes), "genes": len(symbols), "species_names": len(species),
                         "cell_line_names": len(cells), "variant_names": len(variants),
                         "annotated_gene_names": len(gene_votes)}}
    (into / LEXICON_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


__all__ = ["build_lexicon", "gene_tables", "species_tables", "cell_line_table"]
