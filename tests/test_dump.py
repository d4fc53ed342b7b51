"""Corpus-to-dump: PubTator -> PubmedArticleSet -> our parser gives back the same text and offsets."""

from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.parse.medline import document_text
from pipeline.parse.pubtator import read_pubtator
from pipeline.storage import open_url
from pipeline.parse.medline import iter_medline
from tests.conftest import DATA


def test_bc5cdr_and_ncbi_round_trip(tmp_path):
    for src, n in [(DATA / "bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", 500),
                   (DATA / "ncbi_disease/pubtator/NCBItestset_corpus.txt", 100)]:
        out = tmp_path / (src.name.split(".")[0] + ".xml.gz")
        result = CliRunner().invoke(app, ["dump", "--pubtator", str(src), "--output", str(out)])
        assert result.exit_code == 0, result.output
        gold = {d.pmid: d for d in read_pubtator(src)}
        assert len(gold) == n
        with open_url(str(out)) as stream:
            parsed = [p for k, p in iter_medline(stream, out.name) if k == "document"]
        assert [d.pmid for d in parsed] == list(gold)
        for doc in parsed:
            g = gold[doc.pmid]
            text = document_text(doc.passages)
            assert text == g.text.rstrip(), doc.pmid  # MEDLINE text carries no trailing blanks
            for m in g.mentions:  # gold offsets line up with the pipeline's document text
                assert text[m.start:m.end] == m.text


def test_pubtator_reader_reads_relations_and_maps_ncbi_types():
    bc5 = next(iter(read_pubtator(DATA / "bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz")))
    assert bc5.pmid == 8701013 and bc5.title == "Famotidine-associated delirium. A series of six cases."
    assert bc5.mentions[0].type == "Chemical" and bc5.mentions[0].ids == "D015738"
    assert ("CID", "D015738", "D003693") in bc5.relations
    ncbi = next(iter(read_pubtator(DATA / "ncbi_disease/pubtator/NCBItestset_corpus.txt")))
    assert {m.type for m in ncbi.mentions} == {"Disease"}
