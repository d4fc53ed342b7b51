"""Properties of the text path, over generated untrusted text (PyPI hypothesis): MEDLINE XML written by
the dumper -> our parser -> the sentence splitter -> the tokenizer and BIO decoder -> the PubTator and
BioC exports, with every offset checked against the text at each step. Derandomized (the same
examples every run, so CI is repeatable) and without an example database (nothing is written)."""

from __future__ import annotations

import io
import json
import os

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.export import bioc_document, pubtator_document
from pipeline.parse.document import Passage, document_text
from pipeline.parse.medline import iter_medline
from pipeline.parse.pubtator import PubtatorDoc, read_pubtator, write_medline_xml
from pipeline.parse.sentences import split_spans
from workers.inference.decoding import decode_bio, word_spans

# PUBMINE_HYPOTHESIS_EXAMPLES=5000 for a deeper, randomized search (what found the bugs in the docstrings)
_DEEP = int(os.environ.get("PUBMINE_HYPOTHESIS_EXAMPLES", "0"))
settings.register_profile("pubmine", database=None, deadline=None, derandomize=not _DEEP, max_examples=_DEEP or 150,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile("pubmine")

# characters XML 1.0 can carry (no C0 controls but tab and newline, no surrogates, no U+FFFE/U+FFFF),
# weighted towards what abstracts hold: letters, digits, punctuation, the XML specials and Greek
XML_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn", "Co"))
PROSE = st.sampled_from(list("abcdefghij ABCDE 0123456789 .,;:!?()[]-/+%<>&\"' αβγμ–±°\t\n"))
TEXT = st.text(st.one_of(PROSE, PROSE, PROSE, XML_CHARS), max_size=300)


def _parsed(title: str, abstract: str, tmp, pmid: int = 4242):
    path = tmp / "gen.xml"
    write_medline_xml([PubtatorDoc(pmid, title, abstract)], path)
    return list(iter_medline(io.BytesIO(path.read_bytes()), "gen.xml"))


@given(title=TEXT, abstract=TEXT)
def test_untrusted_prop_dump_then_parse_gives_back_the_text_at_its_offsets(tmp_path_factory, title, abstract):
    events = _parsed(title, abstract, tmp_path_factory.mktemp("p"))
    t, a = title.strip(), abstract.strip()
    if not t and not a:
        assert [(k, p["reason"]) for k, p in events] == [("reject", "no text")]
        return
    [(kind, doc)] = events
    assert kind == "document" and doc.pmid == 4242
    text = document_text(doc.passages)
    assert [p.text for p in doc.passages if p.text] == [x for x in (t, a) if x]
    for p in doc.passages:  # every passage sits at its offset in the document text
        assert text[p.offset:p.offset + len(p.text)] == p.text
    if t and a:
        assert text == f"{t} {a}"  # PubTator's layout: gold offsets compare directly


@given(text=TEXT)
def test_untrusted_prop_sentences_cover_every_character_once_at_their_offsets(text):
    spans = split_spans(text)
    covered = [0] * len(text)
    last = 0
    for s, e in spans:
        assert last <= s < e <= len(text)
        sentence = text[s:e]
        assert sentence == sentence.strip() and sentence
        for i in range(s, e):
            covered[i] += 1
        last = e
    assert all(covered[i] == 1 for i, ch in enumerate(text) if not ch.isspace())


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from workers.inference.artifacts import load_tokenizer

    return load_tokenizer(tiny_model, "ner")


LABELS = st.sampled_from(["O", "O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease", "I-Gene"])


@given(text=TEXT, data=st.data())
def test_untrusted_prop_decoded_spans_fall_on_word_boundaries_of_the_text(tokenizer, text, data):
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True, truncation=True, max_length=512)
    first, words = word_spans(enc.word_ids(), enc["offset_mapping"])
    assume(words)
    labels = data.draw(st.lists(LABELS, min_size=len(words), max_size=len(words)))
    scores = data.draw(st.lists(st.floats(0.0, 1.0), min_size=len(words), max_size=len(words)))
    spans = decode_bio(labels, scores, words)
    starts, ends = {s for s, _ in words}, {e for _, e in words}
    assert len(spans) == sum(1 for i, lab in enumerate(labels) if lab != "O" and (
        lab.startswith("B-") or i == 0 or labels[i - 1] == "O" or labels[i - 1][2:] != lab[2:]))
    previous_end = 0
    for span in spans:
        assert span.start in starts and span.end in ends and previous_end <= span.start < span.end <= len(text)
        assert text[span.start:span.end].strip() == text[span.start:span.end]  # no blank at either edge
        assert 0.0 <= span.score <= 1.0
        previous_end = span.end


def _entities(text: str, data) -> list[dict]:
    """Non-overlapping spans over ``text``'s non-blank runs, as entity rows."""
    runs, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        j = i
        while j < len(text) and not text[j].isspace():
            j += 1
        runs.append((i, j))
        i = j
    chosen = data.draw(st.lists(st.sampled_from(runs), unique=True, max_size=6)) if runs else []
    return [{"start": s, "end": e, "text": text[s:e], "type": data.draw(st.sampled_from(["Chemical", "Disease"])),
             "concept_id": data.draw(st.sampled_from([None, "MESH:D003693"])), "score": 0.5} for s, e in sorted(chosen)]


@given(title=TEXT, abstract=TEXT, data=st.data())
def test_untrusted_prop_pubtator_and_bioc_exports_read_back_with_the_same_offsets(tmp_path_factory, title, abstract,
                                                                                  data):
    t, a = title.strip(), abstract.strip()
    assume(t)
    passages = [{"offset": 0, "kind": "title", "text": t}] + ([{"offset": len(t) + 1, "kind": "abstract", "text": a}] if a else [])
    text = document_text([Passage(p["kind"], None, p["offset"], p["text"]) for p in passages])
    entities = _entities(text, data)
    doc = {"doc_id": "pmid:77", "pmid": 77}

    out = tmp_path_factory.mktemp("x") / "one.pubtator"
    out.write_text(pubtator_document(doc, passages, entities, []), encoding="utf-8")
    [back] = list(read_pubtator(out))
    flat = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    assert back.pmid == 77 and back.text == flat
    assert [(m.start, m.end, m.type) for m in back.mentions] == [(e["start"], e["end"], e["type"]) for e in entities]

    import bioc.biocjson

    collection = bioc.biocjson.loads(json.dumps({"source": "pubmine", "date": "", "key": "", "infons": {},
                                                 "documents": [bioc_document(doc, passages, entities, [])]}))
    anns = [(ann, p) for p in collection.documents[0].passages for ann in p.annotations]
    assert len(anns) == len(entities)
    for ann, p in anns:
        loc = ann.locations[0]
        assert p.text[loc.offset - p.offset:loc.offset - p.offset + loc.length] == ann.text


def test_untrusted_regression_a_mention_whose_text_is_pipe_a_pipe_stays_a_mention(tmp_path):
    """Found by the export property: the reader took any line with "|a|" near its start for the
    abstract, so an entity whose text is "|a|" replaced the abstract on reading back."""
    text = "0 |a|"
    entities = [{"start": 2, "end": 5, "text": "|a|", "type": "Chemical", "concept_id": None, "score": 0.5}]
    out = tmp_path / "one.pubtator"
    out.write_text(pubtator_document({"doc_id": "pmid:77", "pmid": 77}, [
        {"offset": 0, "kind": "title", "text": "0"}, {"offset": 2, "kind": "abstract", "text": "|a|"}], entities, []))
    [back] = list(read_pubtator(out))
    assert back.text == text and [(m.start, m.end, m.text) for m in back.mentions] == [(2, 5, "|a|")]
