"""Readers of the benchmark corpora, on the real files (counts from each folder's PROVENANCE.md)."""

from collections import Counter

import pytest

from pipeline.parse.pubtator import read_pubtator
from workers.training.corpora import (
    BIORED_TYPES,
    DatasetError,
    IobSentence,
    euadr_fold,
    iob_split,
    read_chemprot,
    read_gad,
    read_iob,
)
from tests.conftest import DATA

# dataset -> {split: (sentences, entity type, mentions)}
IOB = {
    "ncbi-disease": {"train": (5424, "Disease", 5134), "devel": (923, "Disease", 787), "test": (940, "Disease", 960)},
    "bc5cdr-chem": {"train": (4560, "Chemical", 5203), "devel": (4581, "Chemical", 5347), "test": (4797, "Chemical", 5385)},
    "bc5cdr-disease": {"test": (4797, "Disease", 4424)},
    "bc2gm": {"train": (12574, "Gene", 15197), "devel": (2519, "Gene", 3061), "test": (5038, "Gene", 6325)},
    "linnaeus": {"test": (7142, "Species", 1433)},
}


@pytest.mark.parametrize("dataset,split", [(d, s) for d, splits in IOB.items() for s in splits])
def test_iob_splits(dataset, split):
    n, kind, mentions = IOB[dataset][split]
    sentences = iob_split(dataset, split)
    assert len(sentences) == n
    assert Counter(t for s in sentences for _, _, t in s.spans()) == {kind: mentions}


def test_iob_first_sentence_and_jnlpba_types():
    s = iob_split("ncbi-disease", "test")[0]
    assert s.tokens[:5] == ["Clustering", "of", "missense", "mutations", "in"]
    assert s.spans()[:2] == [(6, 9, "Disease"), (12, 17, "Disease")]
    assert " ".join(s.tokens[6:9]) == "ataxia - telangiectasia"
    types = Counter(t for x in iob_split("jnlpba", "test") for _, _, t in x.spans())
    assert types == {"protein": 5067, "cell_type": 1921, "DNA": 1056, "cell_line": 500, "RNA": 118}


def test_spans_follow_the_conlleval_convention():
    s = IobSentence(["a", "b", "c", "d", "e"], ["I-X", "I-X", "B-X", "I-Y", "O"])
    assert s.spans() == [(0, 2, "X"), (2, 3, "X"), (3, 4, "Y")]


def test_a_malformed_iob_line_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("Aspirin\tB-Chemical\nworks\tX-Chemical\n")
    with pytest.raises(DatasetError, match=r"bad.tsv:2: tag 'X-Chemical'"):
        read_iob(bad)
    with pytest.raises(DatasetError, match="not found"):
        iob_split("jnlpba", "train")  # JNLPBA's training set exists only as standoff


def test_gad_fold1():
    train, test = read_gad("gad/biobert_fold1/train.tsv"), read_gad("gad/biobert_fold1/test.tsv")
    assert (len(train), Counter(x.label for x in train)) == (4796, {"1": 2520, "0": 2276})
    assert (len(test), Counter(x.label for x in test)) == (534, {"1": 281, "0": 253})
    assert "@GENE$" in test[0].text and "@DISEASE$" in test[0].text and test[0].id == "0"


def test_euadr_ten_folds_cover_every_sentence_once_as_test():
    ids = []
    for fold in range(10):
        test = euadr_fold(fold, "test")
        ids += [x.id for x in test]
        assert len(euadr_fold(fold, "train")) + len(test) == 355
    assert len(ids) == len(set(ids)) == 355
    fold0 = euadr_fold(0, "test")
    assert Counter(x.label for x in fold0) == {"1": 27, "0": 10}
    assert "[E1]" in fold0[0].text and "[E2]" in fold0[0].text


def test_chemprot_scibert_form():
    train = read_chemprot("chemprot/scibert_jsonl/train.jsonl")
    assert len(train) == 4169 and Counter(x.label for x in train)["INHIBITOR"] == 1642
    assert "<<" in train[0].text and "[[" in train[0].text
    assert len(read_chemprot("chemprot/scibert_jsonl/test.jsonl")) == 3469


def test_biored_pubtator_with_relations():
    docs = list(read_pubtator(DATA / "biored/pubtator/Train.PubTator.gz", type_map=BIORED_TYPES))
    assert len(docs) == 400
    assert sum(len(d.relations) for d in docs) == 4178
    types = Counter(m.type for d in docs for m in d.mentions)
    assert set(types) == {"Gene", "Disease", "Chemical", "Variant", "Species", "CellLine"}
    first = docs[0]
    assert first.pmid == 10491763 and first.mentions[0].text == "Hepatocyte nuclear factor-6"
    assert first.relations[0] == ("Association", "3175", "D003924")


def test_document_relation_candidates_mark_concepts_and_count_missed_gold():
    from pipeline.parse.pubtator import Mention, PubtatorDoc
    from workers.training.corpora import doc_relation_examples

    title = "Lithium causes tremor."
    abstract = "We saw nothing else. Later, renal failure followed lithium and haloperidol (-1 id)."
    doc = PubtatorDoc(1, title, abstract)
    t = doc.text

    def m(word, kind, ids, nth=0):
        start = -1
        for _ in range(nth + 1):
            start = t.index(word, start + 1)
        return Mention(start, start + len(word), word, kind, ids)

    doc.mentions = [m("Lithium", "Chemical", "D1"), m("tremor", "Disease", "D9"), m("renal failure", "Disease", "D7|D8"),
                    m("lithium", "Chemical", "D1"), m("haloperidol", "Chemical", "-1")]
    doc.relations = [("CID", "D1", "D9"), ("CID", "D1", "D7"), ("CID", "D5", "D9")]
    s = doc_relation_examples([doc], (("Chemical", "Disease"),), window=1)
    by_id = {x.id: x for x in s.examples}
    assert set(by_id) == {"1|D1|D9", "1|D1|D7", "1|D1|D8"}  # composite IDs count for each; -1 is left out
    assert by_id["1|D1|D9"].text == "Chemical Disease | [E1] Lithium [/E1] causes [E2] tremor [/E2]."
    assert by_id["1|D1|D7"].text.endswith("[E2] renal failure [/E2] followed [E1] lithium [/E1] and haloperidol (-1 id).")
    assert [x.label for x in s.examples].count("CID") == 2 and by_id["1|D1|D8"].label == "None"
    assert s.missed == [(1, "D5", "D9", "CID")]  # D5 is never mentioned: a false negative, not dropped


@pytest.mark.parametrize("name, gold", [("bc5cdr-cid", 1066), ("biored", 1162)])
def test_document_relation_corpora_account_for_every_gold_relation(name, gold):
    from workers.training.corpora import doc_relation_split

    near, far = doc_relation_split(name, "test", window=1), doc_relation_split(name, "test", window=3)
    for s in (near, far):
        assert sum(x.label != "None" for x in s.examples) + len(s.missed) == gold
        assert all("[E1]" in x.text and "[E2]" in x.text for x in s.examples)
    assert len(far.missed) < len(near.missed) and len(far.examples) > len(near.examples)
