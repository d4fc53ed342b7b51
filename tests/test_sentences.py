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
        # pre-tokenized corpora put a space after decimal points: never split inside a number
        ("Risk was higher (p < 0. 01) in males. Rates were 0. 63 v 0. 30.", ["Risk was higher (p < 0. 01) in males.", "Rates were 0. 63 v 0. 30."]),
        ("Significant (P =. 03) effect. Next one.", ["Significant (P =. 03) effect.", "Next one."]),
        ("The enzyme (E. C. 3. 5. 3. 1) was active.", ["The enzyme (E. C. 3. 5. 3. 1) was active."]),
        ("Two mutations, c. 38T>C and c. 667T>C, were found.", ["Two mutations, c. 38T>C and c. 667T>C, were found."]),
        # a single capital after an ordinary word ends a sentence; initials in names do not
        ("Rats lacked vitamin E. In this way they were deficient.", ["Rats lacked vitamin E.", "In this way they were deficient."]),
        ("Shown by B. Vogelstein and K. Kinzler (eds.) earlier.", ["Shown by B. Vogelstein and K. Kinzler (eds.) earlier."]),
        ("Values (mean +/- S. D.) were low. The rest.", ["Values (mean +/- S. D.) were low.", "The rest."]),
        ("Mutations E148Q, P369S, and K695R. Nevertheless, E148Q helps.", ["Mutations E148Q, P369S, and K695R.", "Nevertheless, E148Q helps."]),
        # units after numbers, routes in brackets, acronyms
        ("Symptoms faded within 24 h. Few days later it recurred.", ["Symptoms faded within 24 h.", "Few days later it recurred."]),
        ("Mice got lidocaine (50 mg/kg, i.p.). In the second test, none.", ["Mice got lidocaine (50 mg/kg, i.p.).", "In the second test, none."]),
        ("Cases came from Orange County, CA. These were consecutive.", ["Cases came from Orange County, CA.", "These were consecutive."]),
        # a sentence may open with a lower-case biomedical name
        ("It was caused by the deficiency. mtDNA deletions were absent.", ["It was caused by the deficiency.", "mtDNA deletions were absent."]),
        ("Binding was unchanged. beta2(-/-) mice were normal.", ["Binding was unchanged.", "beta2(-/-) mice were normal."]),
        ("Given at 10 mg. kg-1 daily. Then stopped.", ["Given at 10 mg. kg-1 daily.", "Then stopped."]),
        ("Described in J. Biol. Chem. 273, 22068-22074. Later work.", ["Described in J. Biol. Chem. 273, 22068-22074.", "Later work."]),
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


def test_sentence_numbers_places_offsets_in_the_sentences_split_spans_finds():
    from pipeline.parse.sentences import sentence_numbers

    text = "p53 in mice. Human TP53 too. The end."
    assert sentence_numbers(text, [0, 7, 13, 19, 29, len(text) - 1]) == [0, 0, 1, 1, 2, 2]
