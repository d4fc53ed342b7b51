"""Genes, species, cell lines and variants linked (workers.inference.lexicon), over a lexicon built by
the real builder (workers.training.lexicon) from small source files written here in the public
files' own layouts (gene_info, HGNC, UniProt speclist, LINNAEUS, REACH, Cellosaurus)."""

import gzip
from pathlib import Path

import pytest

from workers.inference.lexicon import Lexicon, names_table, rs_aliases, tight_key, variant_id
from workers.inference.normalize import Dictionary, Normalizer
from workers.training import lexicon as build

GENE_HEADER = ("#tax_id\tGeneID\tSymbol\tLocusTag\tSynonyms\tdbXrefs\tchromosome\tmap_location\tdescription\t"
               "type_of_gene\tSymbol_from_nomenclature_authority\tFull_name_from_nomenclature_authority\t"
               "Nomenclature_status\tOther_designations\tModification_date\tFeature_type\n")


def gene(tax, gid, symbol, synonyms="-", description="-", kind="protein-coding", designations="-"):
    return "\t".join([str(tax), str(gid), symbol, "-", synonyms, "-", "1", "-", description, kind, symbol,
                      description, "O", designations, "20240101", "-"]) + "\n"


SOURCES = {
    build.GENE_INFO[9606]: GENE_HEADER + gene(9606, 7157, "TP53", "P53|LFS1", "tumor protein p53")
    + gene(9606, 1499, "CTNNB1", "beta-catenin|CTNNB", "catenin beta 1")
    + gene(9606, 6528, "SLC5A5", "NIS", "solute carrier family 5 member 5")
    + gene(9606, 9999001, "REGION1", "-", "a region", kind="biological-region")
    + gene(9606, 7124, "TNF", "TNFA|TNF-alpha", "tumor necrosis factor")
    + gene(9606, 148, "ADRA1A", "ADRA1C|GPCR", "adrenoceptor alpha 1A")
    + gene(9606, 8322, "FZD4", "FEVR|GPCR", "frizzled class receptor 4")
    + gene(9606, 1029, "CDKN2A", "P16|ARF", "cyclin dependent kinase inhibitor 2A")
    + gene(9606, 115482713, "H3P10", "-", "H3 histone pseudogene 10", kind="pseudo")
    + gene(9606, 3630, "INS", "IDDM2", "insulin") + gene(9606, 723961, "INS-IGF2", "INSIGF", "INS-IGF2 readthrough",
                                                          designations="insulin|insulin, isoform 2"),
    build.GENE_INFO[10090]: GENE_HEADER + gene(10090, 22059, "Trp53", "p53|Tp53", "transformation related protein 53"),
    # the yeast copy's quirk: a comment line, then a header without '#'
    build.GENE_INFO[4932]: "# Downloaded from https://ftp.ncbi.nih.gov/gene/\n" + GENE_HEADER[1:]
    + gene(559292, 850354, "RER1", "-", "protein retrieval receptor"),
    build.GENE_INFO[7955]: GENE_HEADER,
    build.GENE_INFO[7227]: GENE_HEADER + gene(7227, 31151, "arm", "b-cat|armadillo", "armadillo"),
    build.HGNC: "hgnc_id\tsymbol\tname\talias_symbol\tprev_symbol\tentrez_id\n"
    "HGNC:11998\tTP53\ttumor protein p53\t\"TRP53\"\t\"\"\t7157\n"
    # HGNC's alias of a pseudogene is not as good a name as a protein-coding gene's synonym
    "HGNC:1\tH3P10\tH3 histone pseudogene 10\t\"p16\"\t\"\"\t115482713\n",
    build.SPECIES_NAMES: "patients\t9606\nwomen\t9606\nmice\t10090\nMice\t10095\nrats\t10116\nS. aureus\t1280\n"
    "yeast\t4932\nFisher\t76720\nPekania pennanti\t76720\n",
    build.UNIPROT_SPECIES: "HUMAN E    9606: N=Homo sapiens\n                 C=Human\n"
    "MOUSE E   10090: N=Mus musculus\n                 C=Mouse\nRAT   E   10116: N=Rattus norvegicus\n"
    "                 C=Rat\nMUSXX E   10095: N=Mus\n",
    build.LINNAEUS_FREQUENCY: "species:ncbi:9606\t2783958\nspecies:ncbi:10116\t1845817\nspecies:ncbi:10090\t1073419\n"
    "species:ncbi:10095\t51\n",
    build.LINNAEUS_ACRONYMS: "species:ncbi:11676\tHIV-1\t1.0\n",
    # LINNAEUS's stop terms: "Fisher" (rats) is not the fisher (Pekania pennanti)
    build.LINNAEUS_STOPLIST: "#id\tregular expression\nspecies:ncbi:76720\tFishers?\n",
    # genera proxies: a genus name -> its most mentioned species ("Mus" is a name of its own already)
    build.LINNAEUS_GENERA: "#id\tparent name\nspecies:ncbi:7227\tDrosophila\nspecies:ncbi:6755\tCancer\n"
    "species:ncbi:10090\tMus\n",
    build.MESH_ORGANISMS: "Staphylococcus aureus\t1280\n",
    build.CELLOSAURUS: "#2774\tCVCL_0420\tHomo sapiens\nHELA\tCVCL_0030\tHomo sapiens\nCOS-7\tCVCL_0224\tChlorocebus aethiops\n"
    "SK-1\tCVCL_1111\tMus musculus\nSK-1\tCVCL_2222\tHomo sapiens\n",
}


# an annotated training corpus in PubTator's layout (BioRED train's place): a rat paper's Bax, and a
# variant its annotators knew by rs number
CORPUS = ("1|t|Bax in rats.\n1|a|The 677C>T change.\n"
          "1\t0\t3\tBax\tGeneOrGeneProduct\t24887\n1\t7\t11\trats\tOrganismTaxon\t10116\n"
          "1\t18\t24\t677C>T\tSequenceVariant\trs1801133\n\n")


def write_sources(data: Path, extra_species: str = "") -> None:
    for rel, text in SOURCES.items():
        path = data / build.ROOT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text + (extra_species if rel == build.SPECIES_NAMES else ""))
    corpus = data / build.CORPUS
    corpus.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(corpus, "wt", encoding="utf-8") as f:
        f.write(CORPUS)


@pytest.fixture(scope="module")
def lexicon_folder(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("data")
    write_sources(data)
    out = tmp_path_factory.mktemp("lexicon")
    manifest = build.build_lexicon(out, data)
    assert manifest["rows"]["genes"] == 14  # the biological region is not a gene; the annotated rat Bax is
    return out


@pytest.fixture(scope="module")
def lex(lexicon_folder) -> Lexicon:
    return Lexicon.load(lexicon_folder)


def test_species_names_fold_case_and_plurals_and_prefer_the_taxon_linnaeus_counts_most(lex):
    assert lex.link_species("patients").concept_id == "NCBITaxon:9606"
    assert lex.link_species("Women").concept_id == "NCBITaxon:9606"
    assert lex.link_species("mice").concept_id == "NCBITaxon:10090"    # not the genus REACH gives "Mice"
    assert lex.link_species("mouse").concept_id == "NCBITaxon:10090"   # UniProt's common name
    assert lex.link_species("S. aureus").concept_id == "NCBITaxon:1280"
    assert lex.link_species("Homo sapiens").concept_id == "NCBITaxon:9606"
    assert lex.link_species("unicorns").concept_id is None
    # a LINNAEUS stop term of the taxon is not its name ("Fisher rats"); its other names still link
    assert lex.link_species("Fisher").concept_id is None
    assert lex.link_species("Pekania pennanti").concept_id == "NCBITaxon:76720"


def test_a_genus_name_links_its_proxy_species_only_where_the_span_is_a_species(lex):
    fly = lex.link_document([("Drosophila", "Species"), ("armadillo", "Gene")])
    assert [(x.concept_id, x.method) for x in fly] == [("NCBITaxon:7227", "genus"), ("NCBIGene:31151", "exact")]
    assert lex.link_species("Drosophila").concept_id is None      # not a species name by itself
    assert lex.not_an_organism("cancer", "Disease")               # the crab genus does not drop a disease
    assert lex.link_species("Mus", genus=True).method == "exact"  # a name of its own wins over the proxy
    assert lex.link_species("Mus", genus=True).concept_id == "NCBITaxon:10095"


def test_an_alias_of_a_gene_that_is_not_protein_coding_ranks_below_a_coding_genes_synonym(lex):
    # "p16": a synonym of CDKN2A and HGNC's alias of a pseudogene; it is not shared, so it links
    assert lex.link_gene("p16").concept_id == "NCBIGene:1029"


def test_a_variant_written_beside_an_rs_number_is_that_rs_number_in_every_mention(lex):
    text = "The Met326Ile (rs3730089) variant. Carriers of Met326Ile and of rs99-C12T and of A45G."
    links = lex.link_document([("Met326Ile", "Variant"), ("rs3730089", "Variant"), ("Met326Ile", "Variant"),
                               ("rs99", "Variant"), ("C12T", "Variant"), ("A45G", "Variant")], doc_text=text)
    assert [(x.concept_id, x.method) for x in links] == [
        ("rs3730089", "document"), ("rs3730089", "rules"), ("rs3730089", "document"), ("rs99", "rules"),
        ("rs99", "document"), ("c|SUB|A|45|G", "rules")]
    # no text, no pairing; and a letter between them is not "beside"
    assert lex.link_document([("Met326Ile", "Variant")])[0].concept_id == "p|SUB|M|326|I"
    assert rs_aliases("Met326Ile in rs3730089", ["Met326Ile"]) == {}


def test_every_variant_of_a_document_that_names_one_rs_number_is_that_rs_number(lex):
    """An abstract about one SNP names it several ways: "326Ile" and "Ile326Ile" are rs3730089 as
    much as the "Met326Ile" written beside it (33 of 34 on BioRED train); two rs numbers, no guess."""
    from workers.inference.lexicon import only_rs_number

    text = "The RS3730089 polymorphism (Met326Ile): 326Ile carriers and Ile326Ile homozygotes."
    links = lex.link_document([("Met326Ile", "Variant"), ("326Ile", "Variant"), ("Ile326Ile", "Variant")], doc_text=text)
    assert [(x.concept_id, x.method) for x in links] == [("rs3730089", "document")] * 3
    assert only_rs_number("rs1 and rs 1 and RS1") == "rs1" and only_rs_number("rs1 and rs2") is None
    two = lex.link_document([("Met326Ile", "Variant")], doc_text="Met326Ile was typed with rs3730089 and rs1799983")
    assert two[0].concept_id == "p|SUB|M|326|I"


def test_a_species_acronym_the_document_defines_links_through_its_long_form(lex):
    links = lex.link_document([("Staphylococcus aureus", "Species"), ("SAU", "Species")],
                              {"SAU": "Staphylococcus aureus"})
    assert [(x.concept_id, x.method) for x in links] == [("NCBITaxon:1280", "exact"), ("NCBITaxon:1280", "abbrev")]
    assert lex.link_document([("SAU", "Species")])[0].concept_id is None


def test_genes_follow_the_documents_organism_then_human_and_never_guess_another(lex):
    human = lex.link_document([("p53", "Gene")])
    assert (human[0].concept_id, human[0].method) == ("NCBIGene:7157", "exact-default")
    mouse = lex.link_document([("mice", "Species"), ("p53", "Gene"), ("TP53", "Gene")])
    assert [x.concept_id for x in mouse] == ["NCBITaxon:10090", "NCBIGene:22059", "NCBIGene:22059"]
    assert mouse[1].method == "exact"
    # a rat paper: rat genes are not in this lexicon, and the human gene would be a guess
    assert lex.link_document([("rats", "Species"), ("p53", "Gene")])[1].concept_id is None
    # only the fly has "armadillo": a human paper gets no link, a fly paper would
    assert lex.link_gene("armadillo", (9606,)).concept_id is None
    assert lex.link_gene("armadillo", (7227,)).concept_id == "NCBIGene:31151"
    assert lex.link_gene("TRP53").concept_id == "NCBIGene:7157"   # HGNC's alias of a human gene
    # a yeast paper's genes are yeast's, though NCBI Gene files them under the S288C strain's taxon
    yeast = lex.link_document([("yeast", "Species"), ("RER1", "Gene")])
    assert [(x.concept_id, x.method) for x in yeast] == [("NCBITaxon:4932", "exact"), ("NCBIGene:850354", "exact")]


def test_a_synonym_several_genes_of_the_organism_share_links_none_of_them(lex):
    # "GPCR" names a family: any one member would be a guess (8 of 45 right on BioRED train)
    assert lex.link_gene("GPCR", (9606,)).concept_id is None
    assert lex.link_gene("GPCRs").concept_id is None
    assert lex.link_gene("ADRA1C").concept_id == "NCBIGene:148"    # one gene's synonym still links
    assert lex.link_gene("FZD4").concept_id == "NCBIGene:8322"


def test_a_readthrough_transcript_does_not_share_its_parts_names(lex):
    # NCBI Gene lists "insulin" for INS and for the INS-IGF2 readthrough: the paper means INS
    assert lex.link_gene("insulin").concept_id == "NCBIGene:3630"
    assert lex.link_gene("INS-IGF2").concept_id == "NCBIGene:723961"   # its own symbol still links


def test_a_shared_synonym_takes_the_one_gene_the_document_names_otherwise(lex):
    # "GPCR" beside "ADRA1A": the paper is about that receptor (58 of 62 right on BioRED train)
    links = lex.link_document([("GPCR", "Gene"), ("ADRA1A", "Gene")])
    assert [(x.concept_id, x.method) for x in links] == [("NCBIGene:148", "document"),
                                                          ("NCBIGene:148", "exact-default")]
    # both members named: still a guess, no link; a "document" link never vouches for another
    both = lex.link_document([("GPCR", "Gene"), ("ADRA1A", "Gene"), ("FZD4", "Gene")])
    assert both[0].concept_id is None
    assert lex.link_document([("GPCR", "Gene"), ("GPCRs", "Gene")])[0].concept_id is None


def test_an_organism_in_the_genes_own_sentence_and_a_cell_lines_organism_decide_its_gene(lex):
    # mice named most, but "TP53 ... patients" in one sentence is the human gene
    mentions = [("mice", "Species", 0), ("mice", "Species", 1), ("patients", "Species", 2), ("p53", "Gene", 2),
                ("p53", "Gene", 3)]
    links = lex.link_document(mentions)
    assert [x.concept_id for x in links[3:]] == ["NCBIGene:7157", "NCBIGene:22059"]
    # without sentences the document's most named organism decides, as before
    assert lex.link_document([m[:2] for m in mentions])[3].concept_id == "NCBIGene:22059"
    # a human cell line outweighs one mouse mention: HeLa's p53 is human
    cells = lex.link_document([("mice", "Species"), ("HeLa", "CellLine"), ("HeLa cells", "CellLine"), ("p53", "Gene")])
    assert [x.concept_id for x in cells] == ["NCBITaxon:10090", "CVCL_0030", "CVCL_0030", "NCBIGene:7157"]


def test_gene_keys_fold_punctuation_and_greek_letters_and_refuse_bare_characters(lex):
    assert tight_key("TNF-α") == tight_key("TNF-alpha") == tight_key("tnfa")
    assert lex.link_gene("TNF-α").concept_id == "NCBIGene:7124"
    assert lex.link_gene("β-catenin").concept_id == "NCBIGene:1499"
    assert lex.link_gene("b-catenin").concept_id == "NCBIGene:1499"
    for junk in ("1", "P", "-1", "53"):
        assert lex.link_gene(junk).concept_id is None, junk
    assert lex.link_gene("REGION1").concept_id is None


def test_a_gene_known_only_by_its_abbreviation_links_through_the_documents_definition(lex):
    mentions = [("sodium/iodide symporter", "Gene"), ("NIS", "Gene")]
    links = lex.link_document(mentions, {"NIS": "sodium/iodide symporter"})
    assert [x.concept_id for x in links] == ["NCBIGene:6528", "NCBIGene:6528"]
    assert [x.method for x in links] == ["abbrev", "exact-default"]


def test_a_gene_name_that_defines_its_short_form_inside_itself_links_through_either_form(lex):
    """ "tumor necrosis factor (TNF)-alpha": the long form numbered ("tumor necrosis factor alpha",
    a synonym only with its number) or the short form numbered ("TNF-alpha"); 18 of 21 such NIL
    mentions right on BioRED train (a lexicon without its strings)."""
    from workers.inference.lexicon import inline_forms

    assert inline_forms("Toll-like receptor (TLR) 4") == ["Toll-like receptor 4", "TLR4"]
    assert inline_forms("interleukin (IL)-6") == ["interleukin 6", "IL-6"]
    assert inline_forms("tumor necrosis factor") == [] and inline_forms("p53 (TP53)") == []
    links = lex.link_document([("tumor necrosis factor (TNF)-alpha", "Gene"), ("catenin (CTNNB)-beta", "Gene")])
    assert [x.concept_id for x in links] == ["NCBIGene:7124", None]   # "CTNNBbeta" names nothing
    assert links[0].method == "abbrev"


def test_a_list_of_numbered_members_links_its_first_member(lex):
    """ "Smad1/5/8", "ERK1/2": annotators give every member's ID, the first among them (17 of 18 such
    NIL mentions right on BioRED train)."""
    from workers.inference.lexicon import first_member

    assert [first_member(m) for m in ("Smad1/5/8", "MEK 1/2", "ROCK-I/II", "a/b-tubulin", "C2/BF")] == [
        ["Smad1"], ["MEK 1"], ["ROCK-I"], [], []]
    links = lex.link_document([("TP53/63/73", "Gene"), ("TP53", "Gene")])
    assert [(x.concept_id, x.method) for x in links] == [("NCBIGene:7157", "member"), ("NCBIGene:7157", "exact-default")]


def test_cell_lines_by_name_and_by_the_documents_organism(lex):
    assert lex.link_cell_line("HeLa").concept_id == "CVCL_0030"
    assert lex.link_cell_line("HeLa cells").concept_id == "CVCL_0030"
    assert lex.link_cell_line("COS7").concept_id == "CVCL_0224"
    assert lex.link_cell_line("#2774").concept_id == "CVCL_0420"   # a name beginning with '#' is a name
    assert lex.link_cell_line("SK-1").concept_id == "CVCL_2222"    # shared name: human by default
    assert lex.link_cell_line("SK-1", (10090,)).concept_id == "CVCL_1111"


@pytest.mark.parametrize("mention,expected", [
    ("V600E", "p|SUB|V|600|E"), ("p.V600E", "p|SUB|V|600|E"), ("Val600Glu", "p|SUB|V|600|E"),
    ("Arg 1306 Trp", "p|SUB|R|1306|W"), ("Q536X", "p|SUB|Q|536|X"), ("E873stop", "p|SUB|E|873|X"),
    ("arginine to tryptophan at codon 198", "p|SUB|R|198|W"), ("glycine-594-valine", "p|SUB|G|594|V"),
    ("c.1799T>A", "c|SUB|T|1799|A"), ("643C>T", "c|SUB|C|643|T"), ("-1082 G/A", "c|SUB|G|-1082|A"),
    ("IVS16+1G>A", "c|SUB|G|IVS16+1|A"), ("g.6410G>T", "g|SUB|G|6410|T"),
    ("657del5", "c|DEL|657|5"), ("912delTA", "c|DEL|912|TA"), ("c.1314_1328del", "c|DEL|1314_1328|"),
    ("222insT", "c|INS|222|T"), ("c.429_452dup", "c|DUP|429_452|"), ("Delta32", "c|DEL||32"),
    ("nine nucleotide insertion", "c|INS||9"), ("p.G705RfsX16", "p|FS|G|705|R|16"), ("R58fs", "p|FS|R|58||"),
    ("rs113488022", "rs113488022"), ("Rs702553", "rs702553"),
    # letters that read as nucleotides and as amino acids are a DNA change unless "p." says otherwise
    ("G135C", "c|SUB|G|135|C"), ("p.G135C", "p|SUB|G|135|C"), ("c.592C-->T", "c|SUB|C|592|T"),
    ("G/A", "c|SUB|G||A"), ("C to T", "c|SUB|C||T"), ("p.Arg104", "p|Allele|R|104"), ("192Q/R", "p|SUB|Q|192|R"),
    ("p.V239del", "p|DEL|239|V"), ("p.G204_K247del", "p|DEL|204_247|"), ("del642T", "c|DEL|642|T"),
    ("dup24bp", "c|DUP||24|"),
])
def test_variant_rules_give_tmvars_normalized_form(mention, expected):
    assert variant_id(mention) == expected


@pytest.mark.parametrize("mention", ["the patient", "mutation", "1", "B600", "exon 4"])
def test_what_no_rule_covers_is_not_a_variant_id(mention):
    assert variant_id(mention) is None


def test_the_normalizer_hands_the_lexicon_its_types_and_says_which_dictionary_linked(lex):
    d = Dictionary()
    d.add("Chemical", "MESH:D002211", "capsaicin", 1, preferred=True)
    d.sources.append("tiny")
    n = Normalizer(d).with_lexicon(lex)
    links = n.link_document("Capsaicin and p53 in mice with V600E.",
                            [("Capsaicin", "Chemical"), ("p53", "Gene"), ("mice", "Species"), ("V600E", "Variant")])
    assert [x.concept_id for x in links] == ["MESH:D002211", "NCBIGene:22059", "NCBITaxon:10090", "p|SUB|V|600|E"]
    assert n.version_for("Gene") == lex.version and n.version_for("Chemical") == d.version
    assert n.version == f"{d.version}+{lex.version}"


def test_linked_concepts_have_names_for_the_knowledge_tables(lexicon_folder):
    names = dict(zip(*(names_table(lexicon_folder).column(c).to_pylist() for c in ("concept_id", "name"))))
    assert names["NCBIGene:7157"] == "TP53" and names["NCBIGene:22059"] == "Trp53"
    assert names["NCBITaxon:10090"] == "Mus musculus"
    assert "CVCL_0224" not in names   # a cell line is named as the snapshot writes it (pipeline.knowledge)


def test_the_version_changes_when_a_source_file_does(tmp_path, lexicon_folder):
    import json

    from workers.inference.lexicon import LEXICON_MANIFEST

    before = json.loads((lexicon_folder / LEXICON_MANIFEST).read_text())["version"]
    data = tmp_path / "data"
    write_sources(data, extra_species="extra\t1\n")
    assert build.build_lexicon(tmp_path / "out", data)["version"] != before


def test_a_lexicon_without_the_annotated_strings_has_its_own_version(tmp_path, lexicon_folder):
    """``annotated=False`` (what a dev measurement on BioRED train documents links with): the corpus's
    rat Bax, known only from its annotation, is gone, and the version says so."""
    import json

    from workers.inference.lexicon import LEXICON_MANIFEST

    data = tmp_path / "data"
    write_sources(data)
    manifest = build.build_lexicon(tmp_path / "out", data, annotated=False)
    full = json.loads((lexicon_folder / LEXICON_MANIFEST).read_text())
    assert manifest["rows"]["genes"] == full["rows"]["genes"] - 1 and manifest["rows"]["annotated_gene_names"] == 0
    assert "BioRED-train" in full["version"] and "BioRED-train" not in manifest["version"]


def test_a_missing_source_file_is_named(tmp_path):
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="Homo_sapiens.gene_info.gz"):
        build.build_lexicon(tmp_path / "out", tmp_path)


def test_an_organisms_name_is_not_a_disease_chemical_or_gene(lex):
    assert not lex.not_an_organism("mice", "Disease") and not lex.not_an_organism("S. aureus", "Chemical")
    assert not lex.not_an_organism("patients", "Gene")
    assert lex.not_an_organism("mice", "Species")                  # as a species it stays
    assert lex.not_an_organism("hypertension", "Disease") and lex.not_an_organism("p53", "Gene")


def test_annotated_training_strings_link_genes_of_organisms_without_a_gene_file_and_rs_variants(lex, lexicon_folder):
    # the rat Bax annotators linked in training: a rat paper gets it; no human fallback for others
    assert lex.link_document([("rats", "Species"), ("Bax", "Gene")])[1].concept_id == "NCBIGene:24887"
    assert lex.link_document([("rats", "Species"), ("TP53", "Gene")])[1].concept_id is None
    names = dict(zip(*(names_table(lexicon_folder).column(c).to_pylist() for c in ("concept_id", "name"))))
    assert names["NCBIGene:24887"] == "Bax"
    assert lex.link_variant("677C>T") == lex.link_variant("677c>t")
    assert lex.link_variant("677C>T").concept_id == "rs1801133"           # annotators' ID beats the rule
    assert lex.link_variant("643C>T").concept_id == "c|SUB|C|643|T"       # no annotation: the rule


@pytest.mark.slow  # builds the real lexicon and dictionary (~40 s)
def test_real_lexicon_links_biored_dev_gold_mentions_above_the_measured_floors(tmp_path):
    """The real NCBI Gene / HGNC / UniProt / LINNAEUS / REACH / Cellosaurus tables, with MeSH + MEDIC,
    on BioRED Dev's gold mentions: floors a little under what was measured (benchmarks/results/entities.md:
    Chemical 85.8, Gene 65.5, Species 98.4, CellLine 90.9, Variant 42.4)."""
    from tests.conftest import DATA
    from workers.training.evaluate import evaluate_linking_by_type
    from workers.training.normalizer import default_dictionary

    build.build_lexicon(tmp_path, Path(DATA))
    n = Normalizer(default_dictionary(Path(DATA))).with_lexicon(Lexicon.load(tmp_path))
    scores = evaluate_linking_by_type(n, data_dir=Path(DATA))
    floors = {"Chemical": 0.83, "Gene": 0.62, "Species": 0.96, "CellLine": 0.85, "Variant": 0.38}
    for kind, floor in floors.items():
        assert scores[kind].accuracy >= floor, (kind, scores[kind])
    assert scores["Gene"].by_method["exact"][1] > 500 and scores["Variant"].by_method["rules"][1] > 100
