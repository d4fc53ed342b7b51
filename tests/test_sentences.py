import pytest

from pipeline.parse.pubtator import read_pubtator
from pipeline.parse.sentences import split_sentences, split_spans
from tests.conftest import DATA


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Cells were grown. E. coli was used.", ["Cells were grown.", "E. coli was used."]),
        ("We used drugs, e.g. Aspirin and others. Then we stopped.", ["We used drugs, e.g. Aspirin and others.", "Then we stopped."]),
        ("As shown by Smith et al. The effect was large.", ["As shown by Smith et al. The effect was large."]),
        ("See Fig. 2 for details. Results vary.", ["See Fig. 2 for details.", "Results vary."]),
        ("The dose was 2.5 mg (p < 0.05). It worked!", ["The dose was 2.5 mg (p < 0.05).", "It worked!"]),
        ("Is it? Yes. (Maybe) not.", ["Is it?", "Yes.", "(Maybe) not."]),
        ("Treated vs. Untreated groups differ.", ["Treated vs. Untreated groups differ."]),
        ("  padded text.  ", ["padded text."]),
        ("", []),
    ],
)
def test_biomedical_boundaries(text, expected):
    assert split_sentences(text) == expected


def test_spans_cover_all_text_on_real_abstracts():
    docs = list(read_pubtator(DATA / "bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz"))
    assert len(docs) == 500
    for d in docs:
        spans = split_spans(d.abstract)
        assert spans, d.pmid
        covered = "".join(d.abstract[s:e] for s, e in spans)
        assert covered.replace(" ", "") == d.abstract.replace(" ", "")
        assert all(s < e for s, e in spans) and all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
