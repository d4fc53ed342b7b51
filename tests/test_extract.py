"""The extraction stages as Ray Data runs them (tokenizer actors -> NER actors -> document actors),
with tiny real models: same spans as tagging in-process, whole documents per block, entities linked to
concepts, relations pointing at entity spans."""

import pyarrow as pa
import pytest

from pipeline import schemas
from pipeline.layout import EXTRACTED_DOCS, extracted_part, table_file
from pipeline.storage import Store
from pipeline.publish import split_documents
from workers.inference.stages import TAGGED, DocumentStage, NerPredictor, Tokenize

TEXTS = ["Naloxone reverses the antihypertensive effect of clonidine.",
         "Famotidine-associated delirium in six patients.", "",
         "Clonidine lowers blood pressure; hypertension returns after naloxone (NLX) is given. " * 12]


def _sentences(n_docs: int = 20) -> pa.Table:
    rows = []
    for d in range(n_docs):
        off = 0
        for i, t in enumerate(TEXTS[: 2 + d % 3]):
            rows.append({"doc_id": f"pmid:{d}", "sent_idx": i, "start": off, "text": t})
            off += len(t) + 1
    return pa.Table.from_pylist(rows, schema=pa.schema([("doc_id", pa.string()), ("sent_idx", pa.int32()),
                                                         ("start", pa.int32()), ("text", pa.string())]))


def test_split_documents_keeps_documents_whole_and_gives_the_asked_number_of_blocks():
    t = _sentences(50)
    for n in (1, 2, 3, 7, 40, 200):
        blocks = split_documents(t, n)
        assert len(blocks) == n and sum(b.num_rows for b in blocks) == t.num_rows
        assert pa.concat_tables(blocks).equals(t)
        seen = set()
        for b in blocks:
            docs = set(b.column("doc_id").to_pylist())
            assert not docs & seen, "a document in two blocks"
            seen |= docs


def test_tokenize_then_ner_actors_give_the_in_process_spans(ray_local, tiny_model):
    import ray.data

    from workers.inference.ner import NerTagger

    sentences = _sentences()
    ds = ray.data.from_arrow_refs([ray.put(b) for b in split_documents(sentences, 4)])
    ds = ds.map_batches(Tokenize, fn_constructor_kwargs={"model_url": str(tiny_model)},
                        compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0.25, batch_size=None,
                        batch_format="pyarrow")
    ds = ds.map_batches(NerPredictor, fn_constructor_kwargs={"model_url": str(tiny_model), "precision": "fp32",
                                                             "max_length": 32, "stride": 8},
                        compute=ray.data.ActorPoolStrategy(size=1), num_cpus=1, batch_size=None, batch_format="pyarrow")
    out = pa.concat_tables(ray.get(ds.to_arrow_refs()))
    assert out.schema == TAGGED and out.num_rows == sentences.num_rows
    tagger = NerTagger.load(tiny_model, precision="fp32", max_length=32, stride=8)
    direct = {}
    for row, spans in zip(sentences.to_pylist(), tagger.tag(sentences.column("text").to_pylist())):
        direct[row["doc_id"], row["sent_idx"]] = [(row["start"] + s.start, row["start"] + s.end, s.type) for s in spans]
    got = {(r["doc_id"], r["sent_idx"]): [(e["start"], e["end"], e["type"]) for e in r["entities"]] for r in out.to_pylist()}
    assert got == direct and sum(map(len, got.values())) > 0  # the long sentence is windowed (max_length 32)


def _tagged(entities_by_sentence):
    rows = []
    for (doc, idx, start, text), ents in entities_by_sentence:
        rows.append({"doc_id": doc, "sent_idx": idx, "start": start, "text": text, "text_sha256": f"sha-{doc}",
                     "entities": [{"start": start + text.index(w), "end": start + text.index(w) + len(w), "type": t,
                                   "score": score[0] if score else 0.9} for w, t, *score in ents]})
    return pa.Table.from_pylist(rows, schema=TAGGED)


def _parts(store, xfp, name):
    """One table of an extracted fingerprint's parts (state/extracted/<xfp>/parts/<key>/<name>.parquet)."""
    keys = sorted(store.iter_dirs(*extracted_part(xfp)))
    return pa.concat_tables([store.read_table(*extracted_part(xfp, k, table_file(name))) for k in keys])


def test_document_stage_links_mentions_and_writes_relations_between_entity_spans(tiny_normalizer, tiny_relation, tmp_path):
    s1 = "Naloxone reverses the antihypertensive effect of clonidine (CLN)."
    s2 = "Delirium followed CLN in two patients with hypertension."
    batch = _tagged([(("pmid:1", 0, 0, s1), [("Naloxone", "Chemical"), ("clonidine", "Chemical")]),
                     (("pmid:1", 1, len(s1) + 1, s2), [("Delirium", "Disease"), ("CLN", "Chemical"),
                                                       ("hypertension", "Disease")]),
                     (("pmid:2", 0, 0, "No entities here."), [])])
    store = Store(str(tmp_path / "store"))
    stage = DocumentStage(str(tmp_path / "store"), "run-x", "tiny-ner-1", "x1", normalizer_url=str(tiny_normalizer),
                          relation_urls=(str(tiny_relation),), precision="fp32")
    counts = stage(batch).to_pylist()
    parts = list(store.iter_dirs(*extracted_part("x1")))
    relations = _parts(store, "x1", "relations").num_rows
    assert counts == [{"documents": 2, "entities": 5, "linked": 5, "relations": relations,
                       "first_doc": "pmid:1", "last_doc": "pmid:2", "part": parts[0]}] and relations > 0
    assert len(parts) == 1 and store.exists(*extracted_part("x1", parts[0], EXTRACTED_DOCS))  # the part it names
    ents = _parts(store, "x1", "entities")
    assert ents.schema == schemas.ENTITIES
    assert _parts(store, "x1", "docs").to_pylist() == [{"doc_id": "pmid:1", "text_sha256": "sha-pmid:1"},
                                                       {"doc_id": "pmid:2", "text_sha256": "sha-pmid:2"}]
    by_text = {r["text"]: r for r in ents.to_pylist()}
    assert by_text["clonidine"]["concept_id"] == "MESH:D003000" and by_text["clonidine"]["link_method"] == "exact"
    assert by_text["CLN"]["concept_id"] == "MESH:D003000" and by_text["CLN"]["link_method"] == "abbrev"
    assert by_text["hypertension"]["concept_id"] == "MESH:D006973"
    assert set(ents.column("dictionary_version").to_pylist()) == {stage.normalizer.version}
    assert stage.normalizer.version.startswith("tiny#")
    rels = _parts(store, "x1", "relations")
    assert rels.schema == schemas.RELATIONS
    # every Chemical x Disease concept pair within two sentences, called CID by the always-CID model
    pairs = {(r["head"]["concept_id"], r["tail"]["concept_id"]) for r in rels.to_pylist()}
    chems = {"MESH:D009270", "MESH:D003000"}
    assert {(c, "MESH:D006973") for c in chems} <= pairs and all(h in chems for h, _ in pairs)
    spans = {(r["start"], r["end"], r["type"], r["concept_id"]) for r in ents.to_pylist()}
    for r in rels.to_pylist():
        assert r["type"] == "CID" and r["sent_idx"] is None and r["doc_id"] == "pmid:1" and 0.5 < r["score"] <= 1
        for end in (r["head"], r["tail"]):
            assert (end["start"], end["end"], end["type"], end["concept_id"]) in spans
    # a retried block rewrites its own part
    stage(batch)
    assert _parts(store, "x1", "entities").num_rows == 5 and len(list(store.iter_dirs("state", "extracted/x1/parts"))) == 1


def test_sentence_level_models_relate_gene_disease_mentions_within_a_sentence(tiny_normalizer, tmp_path):
    """A GAD-form model sees each Gene x Disease mention pair of one sentence with both masked as GAD
    writes them; its positive label becomes an 'Association' row with the sentence index."""
    from workers.inference.relations import RelationClassifier
    from workers.training.tiny import tiny_relation_bert

    tiny_relation_bert(tmp_path / "gad", labels=("0", "1"), dataset="gad", always="1")
    s1 = "BRCA1 variants raise the risk of breast cancer and ovarian cancer."
    s2 = "TP53 is mutated in glioma."
    batch = _tagged([(("pmid:7", 0, 0, s1), [("BRCA1", "Gene"), ("breast cancer", "Disease"), ("ovarian cancer", "Disease")]),
                     (("pmid:7", 1, len(s1) + 1, s2), [("TP53", "Gene"), ("glioma", "Disease")])])
    stage = DocumentStage(str(tmp_path / "store"), "run-g", "tiny-ner-1", "x1", normalizer_url=str(tiny_normalizer),
                          relation_urls=(str(tmp_path / "gad"),), precision="fp32")
    seen = []
    real = RelationClassifier.predict_scored
    stage.relations[0].predict_scored = lambda texts, *a: seen.extend(texts) or real(stage.relations[0], texts)
    assert stage(batch).column("relations").to_pylist() == [3]
    assert sorted(seen) == sorted(["@GENE$ variants raise the risk of @DISEASE$ and ovarian cancer.",
                                   "@GENE$ variants raise the risk of breast cancer and @DISEASE$.",
                                   "@GENE$ is mutated in @DISEASE$."])
    rels = _parts(Store(str(tmp_path / "store")), "x1", "relations").to_pylist()
    assert {(r["sent_idx"], r["head"]["type"], r["tail"]["type"], r["type"]) for r in rels} == {
        (0, "Gene", "Disease", "Association"), (1, "Gene", "Disease", "Association")}


def test_relation_models_the_pipeline_cannot_feed_are_refused_with_the_reason(tiny_normalizer, tmp_path):

    from pipeline.errors import ModelError
    from workers.training.tiny import tiny_relation_bert

    tiny_relation_bert(tmp_path / "chemprot", labels=("INHIBITOR", "AGONIST"), dataset="chemprot")
    with pytest.raises(ModelError, match="no negative class"):
        DocumentStage(str(tmp_path / "store"), "r", "m", "x1", normalizer_url=str(tiny_normalizer),
                      relation_urls=(str(tmp_path / "chemprot"),))


def test_an_unlinked_entity_stays_only_from_its_types_score(tiny_normalizer, tmp_path):
    """``keep_unlinked_from``: an entity no dictionary links is dropped when its type keeps none
    (None) or its score is under the type's cut; a linked one always stays, and a type without a
    cut keeps every unlinked span. The config merges a setting over the defaults and refuses a cut
    outside 0..1."""
    from pipeline.config import KEEP_UNLINKED_FROM, ExtractConfig
    from pipeline.errors import ConfigError
    from workers.inference.stages import kept_unlinked

    s = "Naloxone and zyxoquine eased hypertension, plasticity and quorbitis; FOO1 rose."
    batch = _tagged([(("pmid:5", 0, 0, s), [("Naloxone", "Chemical"), ("zyxoquine", "Chemical", 0.99),
                                            ("hypertension", "Disease", 0.5), ("plasticity", "Disease", 0.9),
                                            ("quorbitis", "Disease", 0.97), ("FOO1", "Gene", 0.3)])])
    stage = DocumentStage(str(tmp_path / "store"), "run-u", "tiny-ner-1", "x1", normalizer_url=str(tiny_normalizer),
                          precision="fp32", keep_unlinked_from={"Chemical": None, "Disease": 0.95})
    stage.normalizer.thresholds = {"Chemical": None, "Disease": None, "Gene": None}  # only exact names link
    _, ents, _ = stage.annotate(batch)
    assert sorted(zip(ents.column("text").to_pylist(), ents.column("concept_id").to_pylist())) == [
        ("FOO1", None), ("Naloxone", "MESH:D009270"), ("hypertension", "MESH:D006973"), ("quorbitis", None)]
    assert kept_unlinked("Gene", 0.0, {}) and not kept_unlinked("Gene", 0.69, {"Gene": 0.7})
    assert kept_unlinked("Gene", 0.7, {"Gene": 0.7}) and not kept_unlinked("Chemical", 1.0, {"Chemical": None})
    # without a normalizer nothing is linked, and nothing is dropped for it
    bare = DocumentStage(str(tmp_path / "store"), "run-u", "tiny-ner-1", "x1", precision="fp32",
                         keep_unlinked_from={"Chemical": None, "Disease": None})
    assert bare.annotate(batch)[1].num_rows == 6
    assert ExtractConfig().keep_unlinked_from == KEEP_UNLINKED_FROM
    assert ExtractConfig(keep_unlinked_from={"Gene": 0.0}).keep_unlinked_from == {**KEEP_UNLINKED_FROM, "Gene": 0.0}
    with pytest.raises(ConfigError, match=r"keep_unlinked_from.Gene must be a score in 0..1 or null"):
        ExtractConfig(keep_unlinked_from={"Gene": 1.5})


def test_a_span_without_a_letter_or_of_one_character_is_never_an_entity(tmp_path):
    """What the model tags as "-", "(" or "%" alone is dropped; "5-HT", "α" and "IL-2" stay."""
    s = "The 5-HT ( - ) and α % of IL-2 - rose."
    batch = _tagged([(("pmid:9", 0, 0, s), [("5-HT", "Chemical"), ("(", "Gene"), ("-", "Gene"), ("α", "Gene"),
                                            ("%", "Chemical"), ("IL-2", "Gene")])])
    stage = DocumentStage(str(tmp_path / "store"), "run-x", "tiny-ner-1", "x1", precision="fp32")
    _, ents, _ = stage.annotate(batch)
    assert sorted(ents.column("text").to_pylist()) == sorted(["5-HT", "IL-2"])  # no letter, or one character: out


def test_the_entities_docs_name_the_default_unlinked_cuts():
    """The entities table's docs (pipeline.schemas, which may not import pipeline.config) say the
    default cuts config holds: they went stale once when the cuts were re-chosen."""
    from pipeline.config import KEEP_UNLINKED_FROM
    from pipeline.schemas import COLUMN_DOCS

    said = ", ".join(f"no unlinked {kind}" if cut is None else f"{kind} below {cut}"
                     for kind, cut in KEEP_UNLINKED_FROM.items())
    assert f"by default {said})" in COLUMN_DOCS["entities"]["concept_id"][0]


def test_a_span_loses_the_punctuation_left_dangling_at_its_edges():
    """"MAPK-", "-IgA", "SKI-1)/" (the tokenizer splits words at punctuation and the model took the
    piece beside the name) become "MAPK", "IgA", "SKI-1"; a charge ("O2-") and a promoter variant
    ("-930G") keep theirs; a span trimmed onto another of its type is one entity."""
    from workers.inference.decoding import trimmed

    text = "MAPK- and anti-IgA with SKI-1)/ and O2- at -930G, MAPK and poly ( here"
    batch = _tagged([(("pmid:1", 0, 0, text), [("MAPK-", "Gene", 0.9), ("-IgA", "Gene"), ("SKI-1)/", "Gene"),
                                               ("O2-", "Chemical"), ("-930G", "Variant"), ("poly (", "Chemical")])])
    rows = batch.to_pylist()
    rows[0]["entities"].append({"start": text.index("MAPK and"), "end": text.index("MAPK and") + 4, "type": "Gene",
                                "score": 0.5})
    rows[0]["entities"].append({"start": 0, "end": 4, "type": "Gene", "score": 0.4})   # "MAPK" under "MAPK-"
    docs = DocumentStage._documents(pa.Table.from_pylist(rows, schema=TAGGED))
    got = [(e["text"], e["type"], round(e["score"], 2)) for e in docs[0].ents]
    assert got == [("MAPK", "Gene", 0.9), ("IgA", "Gene", 0.9), ("SKI-1", "Gene", 0.9), ("O2-", "Chemical", 0.9),
                   ("-930G", "Variant", 0.9), ("MAPK", "Gene", 0.5), ("poly", "Chemical", 0.9)]
    assert all(text[e["start"]:e["end"]] == e["text"] for e in docs[0].ents)
    assert trimmed("(R)-ketamine", 0, 12, "Chemical") == (0, 12) and trimmed("Ca(2+)", 0, 6, "Chemical") == (0, 6)
