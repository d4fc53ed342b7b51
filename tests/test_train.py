"""A short real training run: a tiny BERT fine-tuned on 30 BC5CDR abstracts measurably lowers its loss,
and the result is a loadable artifact whose model_id is its content hash."""

import pytest

from pipeline.config import load_dataclass
from workers.inference.artifacts import content_hash, read_manifest
from workers.inference.ner import NerTagger
from workers.training.ner import NerTrainConfig, train_ner
from tests.conftest import ROOT


def test_tiny_training_run_lowers_loss_and_writes_an_artifact(tiny_model, tmp_path):
    cfg = load_dataclass(NerTrainConfig, ROOT / "configs/models/default-ner.yaml", [
        f"base_model={tiny_model}", "name=tiny-trained", "limit_docs=30", "epochs=3", "learning_rate=3e-3",
        "freeze_word_embeddings=false", "dev=[ncbi_disease/pubtator/NCBIdevelopset_corpus.txt]", "patience=5",
        "label_scheme=BIO", "empty_sentence_ratio=1.0"])
    out = tmp_path / "trained"
    manifest = train_ner(cfg, str(out), progress=False, log=lambda *_: None)
    losses = [h["train_loss"] for h in manifest["metrics"]["history"]]
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0], losses
    assert manifest["model_id"] == f"tiny-trained-{content_hash(out)}"
    assert read_manifest(out)["labels"] == ["O", *(f"{b}-{t}" for t in ("Chemical", "Disease", "Gene", "Species", "CellLine",
                                                                       "Variant") for b in "BI")]
    # 30 documents (BioRED abstracts) or IOB sentences from each of the default's five corpora
    assert manifest["training"]["train_documents"] == 150
    # the artifact holds what training learned, not the base weights it started from, and it loads and tags
    import torch
    from safetensors.torch import load_file

    trained, base = load_file(out / "model.safetensors"), load_file(tiny_model / "model.safetensors")
    shared = [k for k in trained if k in base and trained[k].shape == base[k].shape and ".encoder." in k]
    assert shared and sum(not torch.equal(trained[k], base[k]) for k in shared) > len(shared) // 2
    tagger = NerTagger.load(out, precision="fp32")
    text = "Cisplatin induced nephrotoxicity in rats."
    spans = tagger.tag([text])[0]
    assert all(0 <= sp.start < sp.end <= len(text) and sp.type in ("Chemical", "Disease", "Gene") for sp in spans)


def test_training_on_biobert_iob_splits(tiny_model, tmp_path):
    """The IOB path: the corpus's own sentences and tags, dev selection on IOB dev F1."""
    cfg = load_dataclass(NerTrainConfig, ROOT / "configs/models/ncbi-disease.yaml", [
        f"base_model={tiny_model}", "name=tiny-iob", "limit_docs=300", "epochs=3", "learning_rate=3e-3",
        "dev=[ncbi_disease/iob/devel.tsv]", "max_length=64", "batch_size=16"])
    manifest = train_ner(cfg, str(tmp_path / "m"), progress=False, log=lambda *_: None)
    losses = [h["train_loss"] for h in manifest["metrics"]["history"]]
    assert losses[-1] < 0.8 * losses[0], losses
    assert manifest["labels"] == ["O", "B-Disease", "I-Disease"] and manifest["training"]["train_sentences"] == 300


def test_iob_sentences_become_char_spans_and_labels_align_to_words(tiny_model):
    from transformers import AutoTokenizer

    from workers.training.corpora import IobSentence
    from workers.training.ner import encode_examples, training_sentences

    sent = IobSentence(["Germline", "BRCA1", "mutations", "cause", "breast", "cancer", "."],
                       ["O", "O", "O", "O", "B-Disease", "I-Disease", "O"])
    [(text, spans)] = training_sentences([sent], ("Disease",))
    assert text == "Germline BRCA1 mutations cause breast cancer ." and spans == [(31, 44, "Disease")]
    assert text[31:44] == "breast cancer"
    tok = AutoTokenizer.from_pretrained(tiny_model)
    [(ids, labels, _, shapes)] = encode_examples([(text, spans)], tok, {"O": 0, "B-Disease": 1, "I-Disease": 2}, 64)
    words = [tok.convert_ids_to_tokens(i) for i, y in zip(ids, labels) if y != -100]
    tags = [y for y in labels if y != -100]
    assert tags[words.index("breast")] == 1 and tags[words.index("cancer")] == 2
    assert sum(t != 0 for t in tags) == 2  # word pieces past the first stay -100, other words O
    # every piece of "BRCA1" carries ALL CAPS, of "Germline" Capitalized; [CLS], [SEP] and lower words 0
    brca = [shapes[t] for t, piece in enumerate(tok.convert_ids_to_tokens(ids)) if piece.lstrip("#") in ("brca", "br", "ca", "1")]
    assert brca and set(brca) == {2} and shapes[1] == 1 and shapes[0] == shapes[-1] == 0
    assert set(shapes[len(shapes) - 4:]) == {0}  # "breast cancer ." [SEP]


def test_char_spans_map_back_to_token_ranges():
    from workers.training.evaluate import char_to_token_span, iob_text

    text, offsets = iob_text(["Germline", "BRCA1", "mutations", "cause", "breast", "cancer", "."])
    assert char_to_token_span(offsets, 31, 44) == (4, 6)
    assert char_to_token_span(offsets, 33, 40) == (4, 6)  # a span inside words covers the words it touches
    assert char_to_token_span(offsets, 100, 105) is None


def test_partial_labels_never_teach_not_a_gene():
    """A corpus that annotates only diseases: its O words may be genes, so their loss does not push
    the gene labels down; with every label allowed the loss is the usual cross-entropy."""
    import torch

    from workers.training.ner import _collate, partial_label_loss

    # labels: 0 O, 1 B-Disease, 2 I-Disease, 3 B-Gene, 4 I-Gene
    examples = [([101, 7, 8, 102], [-100, 0, 1, -100], (3, 4), [0, 0, 0, 0]),   # from a Disease-only corpus
                ([101, 9, 102], [-100, 0, -100], (), [0, 2, 0])]                # from a corpus annotating both
    ids, mask, labels, types, allow = _collate(examples, [0, 1], 0, 5)
    assert types.tolist() == [[0, 0, 0, 0], [0, 2, 0, 0]]
    assert allow[0, 1].tolist() == [True, False, False, True, True]    # O word of the Disease corpus
    assert allow[0, 2].tolist() == [False, True, False, False, False]  # a gold disease stays exact
    assert allow[1, 1].tolist() == [True, False, False, False, False]  # O of a fully annotated corpus
    logits = torch.zeros(2, 4, 5, requires_grad=True)
    loss = partial_label_loss(logits, labels, allow)
    loss.backward()
    # the O word of the Disease-only corpus: no gradient pushes B-Gene / I-Gene down relative to O
    g = logits.grad[0, 1]
    assert g[3] < 0 and g[4] < 0 and g[1] > 0  # gene labels are pulled up with O; the disease label down
    exact = torch.nn.functional.cross_entropy(torch.zeros(1, 5), torch.tensor([0]))
    assert torch.isclose(partial_label_loss(torch.zeros(1, 1, 5), torch.tensor([[0]]),
                                            torch.nn.functional.one_hot(torch.tensor([[0]]), 5).bool()), exact)


def test_training_sources_name_the_types_they_annotate(tiny_model, tmp_path):
    from pipeline.errors import ConfigError
    from workers.training.ner import load_sources, split_range, split_source

    assert split_source("bc2gm/iob/train.tsv.gz#Gene", ("Chemical", "Disease", "Gene")) == (
        "bc2gm/iob/train.tsv.gz", ("Gene",))
    assert split_source("x.tsv", ("Gene",)) == ("x.tsv", ("Gene",))
    # a corpus without a dev split of its own lends part of its training split to model selection
    assert split_range("biored/pubtator/Train.PubTator.gz@0-360") == ("biored/pubtator/Train.PubTator.gz", slice(0, 360))
    assert split_range("s3://b/x@y.tsv@360-") == ("s3://b/x@y.tsv", slice(360, None))
    assert split_range("x.tsv") == ("x.tsv", slice(None))
    with pytest.raises(ConfigError, match="range 5-5 is empty"):
        split_range("x.tsv@5-5")
    (train,), (held,) = (load_sources((f"biored/pubtator/Train.PubTator.gz@{r}",), ("Gene", "Species"))
                         for r in ("40-", "-40"))
    assert len(train[0]) == 360 and len(held[0]) == 40 and not {d.pmid for d in train[0]} & {d.pmid for d in held[0]}
    # a rare type's sentences are seen more often; a type the config does not tag cannot be asked for
    from workers.training.ner import oversampled
    sents = [("a", [(0, 1, "CellLine"), (2, 3, "Gene")]), ("b", [(0, 1, "Gene")]), ("c", [])]
    assert [x[0] for x in oversampled(sents, {"CellLine": 3}, ("CellLine", "Gene"))] == ["a", "a", "a", "b", "c"]
    assert [x[0] for x in oversampled(sents, {"CellLine": 3}, ("Gene",))] == ["a", "b", "c"]  # not annotated there
    with pytest.raises(ConfigError, match="oversample"):
        NerTrainConfig(types=("Gene",), oversample={"CellLine": 2})
    # BioRED's class names arrive as pubmine's six types
    assert {m.type for d in held[0] for m in d.mentions} == {"Chemical", "Disease", "Gene", "Species", "CellLine", "Variant"}
    with pytest.raises(ConfigError, match="no documents in that range"):
        load_sources(("biored/pubtator/Train.PubTator.gz@400-",), ("Gene",))
    cfg = load_dataclass(NerTrainConfig, ROOT / "configs/models/default-ner.yaml", [
        f"base_model={tiny_model}", "name=tiny-mtl", "limit_docs=40", "epochs=2", "learning_rate=3e-3",
        "types=[Chemical, Disease, Gene]", "max_length=64", "oversample={}",
        "train=[bc5cdr/pubtator/CDR_TrainingSet.PubTator.txt.gz#Chemical+Disease, bc2gm/iob/train.tsv.gz#Gene]",
        "dev=[bc2gm/iob/devel.tsv.gz#Gene, ncbi_disease/iob/devel.tsv#Disease]", "freeze_word_embeddings=false"])
    manifest = train_ner(cfg, str(tmp_path / "mtl"), progress=False, log=lambda *_: None)
    history = manifest["metrics"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"] and manifest["entity_types"] == ["Chemical", "Disease", "Gene"]
    assert len(history[0]["dev_f1_by_source"]) == 2


def test_per_type_heads_let_types_overlap_and_leave_unannotated_types_without_loss(tiny_model):
    """Label scheme BIO-per-type: a word inside a chemical and a gene carries both; a corpus that does
    not annotate genes puts no target at all (-100) on the gene head, so it cannot teach "not a gene"."""
    import torch
    from transformers import AutoTokenizer

    from workers.training.ner import _collate, _loss, encode_examples_per_type

    tok = AutoTokenizer.from_pretrained(tiny_model)
    text = "insulin resistance in rats"
    mentions = [(0, 7, "Chemical"), (0, 7, "Gene"), (8, 18, "Disease")]
    types = ("Chemical", "Disease", "Gene")
    [(ids, labels, _, sh)] = encode_examples_per_type([(text, mentions)], tok, types, types, 64)
    words = {tok.convert_ids_to_tokens(i): y for i, y in zip(ids, labels) if y[0] != -100}
    assert words["insulin"] == [1, 0, 1] and words["resistance"] == [0, 1, 0] and words["rats"] == [0, 0, 0]
    assert labels[0] == [-100, -100, -100]  # [CLS]
    [(ids2, labels2, _, sh2)] = encode_examples_per_type([(text, [(0, 7, "Chemical")])], tok, types, ("Chemical",), 64)
    assert all(y[1] == -100 and y[2] == -100 for y in labels2)  # Disease and Gene heads: no loss
    ids_t, mask, y, _, allow = _collate([(ids, labels, (), sh), (ids2, labels2, (), sh2)], [0, 1], 0)
    assert y.shape == (2, len(ids), 3) and allow is None

    class Head(torch.nn.Module):  # logits for 3 types x (O, B, I) that the loss must reshape per type
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(9))

        def forward(self, input_ids, attention_mask):
            return type("Out", (), {"logits": self.w.expand(*input_ids.shape, 9)})()

    head = Head()
    loss = _loss(head, ids_t, mask, y, None)
    assert torch.isclose(loss, torch.log(torch.tensor(3.0)))  # uniform over (O, B, I) per labelled type
    loss.backward()
    assert head.w.grad.abs().sum() > 0


def test_a_per_type_model_trains_and_tags_overlapping_types(tmp_path):
    from workers.training.tiny import tiny_bert

    tiny = tmp_path / "tiny-per-type"
    tiny_bert(tiny, types=("Chemical", "Disease", "Gene"), label_scheme="BIO-per-type")
    cfg = load_dataclass(NerTrainConfig, ROOT / "configs/models/multitask-ner.yaml", [
        f"base_model={tiny}", "name=tiny-per-type", "limit_docs=40", "epochs=2", "learning_rate=3e-3",
        "max_length=64", "dev=[bc2gm/iob/devel.tsv.gz#Gene, ncbi_disease/iob/devel.tsv#Disease]"])
    assert cfg.label_scheme == "BIO-per-type"
    manifest = train_ner(cfg, str(tmp_path / "m"), progress=False, log=lambda *_: None)
    history = manifest["metrics"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert manifest["label_scheme"] == "BIO-per-type" and manifest["labels"][:3] == ["O/Chemical", "B-Chemical", "I-Chemical"]
    tagger = NerTagger.load(tmp_path / "m", precision="fp32")
    # force "insulin" to be both a chemical and a gene: every head says B on every token
    import torch
    with torch.no_grad():
        tagger.model.classifier.weight.zero_()
        tagger.model.classifier.bias.copy_(torch.tensor([0.0, 5.0, 0.0] * 3))
    spans = tagger.tag(["insulin resistance"])[0]
    assert {(s.start, s.end, s.type) for s in spans} == {
        (a, b, t) for a, b in ((0, 7), (8, 18)) for t in ("Chemical", "Disease", "Gene")}
    from pipeline.errors import ModelError
    with pytest.raises(ModelError, match="3 outputs per entity type"):
        NerTagger(tagger.tokenizer, tagger.model, {**tagger.manifest, "entity_types": ["Chemical", "Gene"]})


def test_dev_selection_scores_each_corpus_on_the_types_it_annotates():
    """A gene found in a corpus that never annotates genes is not a false positive there."""
    from workers.training.corpora import IobSentence
    from workers.inference.decoding import Span
    from workers.training.evaluate import iob_text
    from workers.training.ner import dev_prf

    class Oracle:  # the gold entities, plus a "Gene" on every first token
        def tag(self, texts):
            out = []
            for text in texts:
                sent = by_text[text]
                _, offsets = iob_text(sent.tokens)
                spans = [Span(offsets[a][0], offsets[b - 1][1], t, 1.0) for a, b, t in sent.spans()]
                out.append(spans + [Span(0, offsets[0][1], "Gene", 1.0)])
            return out

    sents = [IobSentence(["Huntington", "disease", "is", "rare"], ["B-Disease", "I-Disease", "O", "O"]),
             IobSentence(["No", "disease", "here"], ["O", "B-Disease", "O"])]
    by_text = {iob_text(s.tokens)[0]: s for s in sents}
    (p, r, f), each = dev_prf(Oracle(), [(sents, ("Disease",))])
    assert (p, r, f) == (1.0, 1.0, 1.0) and each == [1.0]
    (p, r, f), each = dev_prf(Oracle(), [(sents, ("Disease",)), (sents, ("Disease", "Gene"))])
    assert each[0] == 1.0 and each[1] < 1.0 and f == (each[0] + each[1]) / 2


@pytest.mark.parametrize("path", sorted((ROOT / "configs/models").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_model_config_loads_and_names_data_that_exists(path):
    """A config a README command points at must at least parse, validate and find its corpora."""
    import yaml

    from pipeline.cli.models import training_tasks
    from workers.training.docre import read_documents
    from workers.training.ner import load_sources
    from workers.training.relations import load_split

    task = yaml.safe_load(path.read_text()).get("task", "ner")
    cfg = load_dataclass(training_tasks()[task][0], path)
    if task == "ner":
        for docs, annotated in load_sources(cfg.train, cfg.types) + load_sources(cfg.dev, cfg.types):
            assert docs and set(annotated) <= set(cfg.types)
    elif task == "re-doc":
        assert read_documents(cfg.dataset, "train") and read_documents(cfg.dataset, "test")
    elif task == "qa":
        from workers.training import qa
        from workers.training.corpora import data_file

        for rel in (qa.SQUAD, qa.BIOASQ_FACTOID, *qa.BIOASQ_YESNO, qa.PUBMEDQA, qa.PUBMEDQA_TEST, *qa.GOLDEN_7B):
            assert data_file(rel).exists(), rel
    else:
        assert load_split(cfg.dataset, "test", cfg.fold, cfg.window)[0]


@pytest.mark.parametrize("path", sorted((ROOT / "configs/models").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_train_command_a_config_comment_gives_loads(path):
    """The cluster commands written in a config's comments ("--set limit_docs=null" once failed:
    the field is an integer, 0 for all) load with their overrides."""
    import re
    import shlex

    import yaml

    from pipeline.cli.models import training_tasks

    config_class = training_tasks()[yaml.safe_load(path.read_text()).get("task", "ner")][0]
    comments = [line.lstrip("# ").rstrip() for line in path.read_text().splitlines() if line.startswith("#")]
    commands = " ".join(c if c.endswith("\\") else c + " \n" for c in comments).replace("\\", " ").splitlines()
    for command in (c for c in commands if "pubmine train" in c and f"configs/models/{path.name}" in c):
        words = shlex.split(re.sub(r"\$\w+", "0", command))   # a loop's "fold=$k"
        overrides = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
        load_dataclass(config_class, path, overrides)


def test_case_features_give_an_uncased_encoder_each_words_case_on_every_path(tmp_path):
    """case_features: the token-type embedding grows to the four case shapes (new rows start as type
    0), the artifact says so, and the tagger feeds each word's shape to every one of its pieces —
    through NerTagger.tag and through the pipeline's Tokenize -> NerPredictor stages alike."""
    import pyarrow as pa
    import torch

    from workers.inference.decoding import word_shape
    from workers.inference.stages import NerPredictor, Tokenize
    from workers.training.tiny import tiny_bert

    assert [word_shape(w) for w in ("insulin", "Insulin", "A", "BRCA1", "mRNA", "NaCl", "5-HT", "--")] == [0, 1, 1, 2, 3, 3, 2, 0]
    tiny = tmp_path / "tiny"
    tiny_bert(tiny, types=("Chemical", "Disease", "Gene"), label_scheme="BIO-per-type")
    cfg = load_dataclass(NerTrainConfig, ROOT / "configs/models/multitask-ner.yaml", [
        f"base_model={tiny}", "name=tiny-case", "limit_docs=20", "epochs=1", "max_length=64",
        "case_features=true", "dev=[ncbi_disease/iob/devel.tsv#Disease]"])
    manifest = train_ner(cfg, str(tmp_path / "m"), progress=False, log=lambda *_: None)
    assert manifest["case_features"] == "word-shape-4"
    tagger = NerTagger.load(tmp_path / "m", precision="fp32")
    assert tagger.model.config.type_vocab_size == 4 and tagger.case == "word-shape-4"
    seen = []
    tagger.model.base_model.embeddings.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs["token_type_ids"].clone()), with_kwargs=True)
    text = "BRCA1 binds NaCl in Rats"
    direct = tagger.tag([text])[0]
    pieces = tagger.tokenizer.convert_ids_to_tokens(tagger.encode([text]).ids[0])
    shapes = seen[-1][0, 1 : 1 + len(pieces)].tolist()
    want = {"brca": 2, "##1": 2, "binds": 0, "na": 3, "##cl": 3, "in": 0, "rats": 1}
    assert [want.get(p, shapes[i]) for i, p in enumerate(pieces)] == shapes and set(shapes) == {0, 1, 2, 3}
    assert seen[-1][0, 0] == 0 and seen[-1][0, len(pieces) + 1] == 0  # [CLS], [SEP]
    batch = pa.table({"doc_id": ["d"], "sent_idx": [0], "start": [0], "text": [text]})
    staged = NerPredictor(str(tmp_path / "m"), precision="fp32")
    staged.tagger.model.base_model.embeddings.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs["token_type_ids"].clone()), with_kwargs=True)
    out = staged(Tokenize(str(tmp_path / "m"))(batch)).column("entities").to_pylist()[0]
    assert torch.equal(seen[-1][0, : len(pieces) + 2], seen[-2][0, : len(pieces) + 2])
    assert [(e["start"], e["end"], e["type"]) for e in out] == [(s.start, s.end, s.type) for s in direct]
    from pipeline.errors import ModelError
    with pytest.raises(ModelError, match="case_features"):
        NerTagger(tagger.tokenizer, tagger.model, {**tagger.manifest, "case_features": "word-shape-9"})


def test_span_scores_are_calibrated_per_type_by_what_dev_said(tmp_path):
    """fit_calibration: Platt scaling per type on (type, raw score, correct) dev spans recovers a
    known miscalibration; a type with too few spans keeps its raw score; the tagger applies the map
    to every span of that type."""
    import random

    from workers.inference.decoding import calibrated
    from workers.training.ner import fit_calibration
    from workers.training.tiny import tiny_bert

    rng = random.Random(3)
    spans = []
    for _ in range(4000):  # chemicals: right half as often as the raw score says
        s = rng.uniform(0.3, 1.0)
        spans.append(("Chemical", s, rng.random() < s / (s + 2 * (1 - s)) ))
    spans += [("Gene", 0.9, True)] * 30  # too few to fit
    cal = fit_calibration(spans)
    assert cal["method"] == "platt-logit" and set(cal["params"]) == {"Chemical"} and cal["spans"] == {"Chemical": 4000}
    ab = cal["params"]["Chemical"]
    for s in (0.4, 0.6, 0.8, 0.95):
        truth = s / (s + 2 * (1 - s))  # = sigmoid(logit(s) - log 2)
        assert abs(calibrated(s, ab) - truth) < 0.03, (s, calibrated(s, ab), truth)
    assert calibrated(0.7, None) == 0.7
    # scores piled up near 1, as a well-trained head gives them: plain Newton from (1, 0) overshot
    # here to a = 1.2e7 (and the tagger then overflowed); the damped fit finds the map that made them
    import numpy as np

    from workers.training.ner import platt_fit

    gen = np.random.default_rng(0)
    raw = np.clip(1 - gen.beta(0.5, 8, 4000), 0.35, 0.998)
    z = np.log(raw / (1 - raw))
    a, b = platt_fit(z, (gen.random(4000) < 1 / (1 + np.exp(-(0.8 * z - 1.8)))).astype(float))
    assert abs(a - 0.8) < 0.1 and abs(b + 1.8) < 0.2, (a, b)
    assert calibrated(1 - 1e-9, [1e7, 2e6]) == 1.0 and calibrated(1e-9, [1e7, 2e6]) < 1e-20  # saturates, no OverflowError

    tiny = tmp_path / "tiny"
    tiny_bert(tiny, types=("Chemical", "Gene"))
    raw = NerTagger.load(tiny, precision="fp32")
    text = "aspirin and BRCA1 and insulin with p53 in rats given cisplatin or tamoxifen for HER2 cancer"
    raw_spans = raw.tag([text])[0]
    assert raw_spans and {s.type for s in raw_spans} == {"Chemical"}  # this random model's choice
    for params, moved in (({"Chemical": [1.0, -5.0]}, True), ({"Gene": [1.0, -5.0]}, False)):
        cooked = NerTagger(raw.tokenizer, raw.model, {**raw.manifest, "calibration": {**cal, "params": params}},
                           precision="fp32")
        got = cooked.tag([text])[0]
        assert [(s.start, s.end, s.type) for s in got] == [(s.start, s.end, s.type) for s in raw_spans]
        for a, b in zip(raw_spans, got):
            assert b.score == (pytest.approx(calibrated(a.score, [1.0, -5.0])) if moved else a.score)
            assert (b.score < a.score) == moved
    from pipeline.errors import ModelError
    with pytest.raises(ModelError, match="calibration method"):
        NerTagger(raw.tokenizer, raw.model, {**raw.manifest, "calibration": {"method": "isotonic-v9", "params": {}}})


def test_aio_sentences_carry_their_task_tag_and_the_tasks_own_o():
    """AIONER's scheme: a corpus that annotates one type trains under that type's tag, its other words
    labelled the task's own O; one that annotates every type trains under ALL with plain O."""
    from workers.inference.decoding import aio_labels, task_tag_ids
    from workers.training.loop import MINILM, load_base_tokenizer
    from workers.training.ner import aio_tasks, encode_examples_aio

    types = ("Chemical", "Disease", "Gene")
    assert aio_tasks(types, types) == ("ALL",) and aio_tasks(("Disease", "Chemical"), types) == ("Chemical", "Disease")
    labels = aio_labels(types)
    assert labels[:4] == ["O", "O-Chemical", "O-Disease", "O-Gene"] and len(labels) == 1 + 3 + 6
    label2id = {l: i for i, l in enumerate(labels)}
    tok = load_base_tokenizer(MINILM)
    text, mentions = "cisplatin nephrotoxicity", [(0, 9, "Chemical"), (10, 24, "Disease")]
    opening, closing = task_tag_ids(tok, "Chemical")
    assert tok.decode(opening) == "< chemical >" and tok.decode(closing) == "< / chemical >"
    [(ids, y, unannotated, shapes)] = encode_examples_aio([(text, mentions)], tok, label2id, types, "Chemical", 64)
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and unannotated == ()
    assert ids[1:1 + len(opening)] == opening and ids[-1 - len(closing):-1] == closing
    assert len(ids) == len(y) == len(shapes) and all(v == -100 for v in y[1:1 + len(opening)] + y[-1 - len(closing):])
    words = [labels[v] for v in y if v != -100]
    assert words[0] == "B-Chemical" and set(words[1:]) == {"O-Chemical"}   # the disease is not this task's
    [(ids_all, y_all, _, _)] = encode_examples_aio([(text, mentions)], tok, label2id, types, "ALL", 64)
    words = [labels[v] for v in y_all if v != -100]
    assert words[0] == "B-Chemical" and "B-Disease" in words and "O-Chemical" not in words
    # the tag's pieces come out of the sentence's budget, never off its end
    [(long_ids, *_)] = encode_examples_aio([("word " * 100, [])], tok, label2id, types, "Gene", 32)
    assert len(long_ids) == 32 and long_ids[-1] == tok.sep_token_id


def test_an_aio_model_trains_and_tags_under_the_all_tag(tmp_path):
    """A short AIO training run lowers its loss; the tagger reads every window as [CLS] <ALL> window
    </ALL> [SEP], decodes a task's own O as O, and windows a long sentence without losing a word."""
    import torch

    from workers.training.tiny import tiny_bert

    tiny = tmp_path / "tiny-aio"
    tiny_bert(tiny, types=("Chemical", "Disease", "Gene"), label_scheme="AIO")
    cfg = load_dataclass(NerTrainConfig, ROOT / "configs/models/multitask-ner.yaml", [
        f"base_model={tiny}", "name=tiny-aio", "limit_docs=40", "epochs=2", "learning_rate=3e-3",
        "label_scheme=AIO", "max_length=64", "dev=[bc2gm/iob/devel.tsv.gz#Gene, ncbi_disease/iob/devel.tsv#Disease]"])
    manifest = train_ner(cfg, str(tmp_path / "m"), progress=False, log=lambda *_: None)
    history = manifest["metrics"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert manifest["label_scheme"] == "AIO" and "O-Gene" in manifest["labels"]
    tagger = NerTagger.load(tmp_path / "m", precision="fp32", max_length=16, stride=4)
    seen = []
    forward = tagger.model.forward
    tagger.model.forward = lambda input_ids, **kw: (seen.append(input_ids), forward(input_ids=input_ids, **kw))[1]
    labels = manifest["labels"]
    with torch.no_grad():   # every word a gene, except where the Gene task's own O wins: never here
        tagger.model.classifier.weight.zero_()
        tagger.model.classifier.bias.copy_(torch.tensor([5.0 if l == "B-Gene" else 0.0 for l in labels]))
    text = " ".join(f"w{i}" for i in range(30))   # ~60 pieces: windows of 16 - 2 - tags
    spans = tagger.tag([text])[0]
    assert [(s.start, s.end) for s in spans] == [(m.start(), m.end()) for m in __import__("re").finditer(r"\S+", text)]
    assert {s.type for s in spans} == {"Gene"}
    opening = tagger.tag_open
    assert seen and all(row[1:1 + len(opening)].tolist() == opening for batch in seen for row in batch)
    with torch.no_grad():   # the task's own O is an O: no span
        tagger.model.classifier.bias.copy_(torch.tensor([5.0 if l == "O-Gene" else 0.0 for l in labels]))
    assert tagger.tag([text]) == [[]]
    # a stride as wide as what the tags leave of a window would never move on: it is capped at half
    narrow = NerTagger(tagger.tokenizer, tagger.model, tagger.manifest, max_length=16, stride=64, precision="fp32")
    assert narrow.stride == (16 - narrow.extra) // 2 and len(narrow.tag([text])[0]) == 0
    from pipeline.errors import ModelError
    with pytest.raises(ModelError, match="no room"):
        NerTagger(tagger.tokenizer, tagger.model, tagger.manifest, max_length=10, precision="fp32")


def test_if_missing_keeps_a_model_of_the_same_recipe_and_retrains_one_whose_recipe_changed(tmp_path, monkeypatch):
    """`pubmine train --if-missing` (what `make model` runs): the same name and recipe is kept; a
    default whose recipe changed under the same name (limit_docs 4000 -> 0) is trained again, and
    how a run went (device, precision "auto" resolved, seconds) or a field an older artifact used
    for a count is no change."""
    import json

    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.cli import models as cli_models
    from workers.inference.artifacts import MANIFEST

    config = ROOT / "configs/models/default-ner.yaml"
    out = tmp_path / "ner"
    trained = []

    def fake_trainer(cfg, url, progress=None, log=print):
        trained.append(cfg.limit_docs)
        return {"model_id": f"{cfg.name}-x", "metrics": {"dev": {"f1": 0.5}}, "training": {"seconds": 1}}

    real = cli_models.training_tasks()
    monkeypatch.setattr(cli_models, "training_tasks", lambda: {**real, "ner": (NerTrainConfig, fake_trainer, "ner")})
    monkeypatch.setattr(cli_models, "existing_manifest", lambda url: json.loads((out / MANIFEST).read_text()))
    cfg = load_dataclass(NerTrainConfig, config, ["limit_docs=0"])
    recorded = {**json.loads(json.dumps(cfg.__dict__)), "precision": "bf16", "device": "cpu", "seconds": 700.0}
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps({"name": cfg.name, "training": recorded}))

    run = lambda *extra: CliRunner().invoke(app, ["train", "-c", str(config), "-o", str(out), "--if-missing", *extra])  # noqa: E731
    result = run("--set", "limit_docs=0")
    assert result.exit_code == 0 and "already present" in result.output and trained == []
    (out / MANIFEST).write_text(json.dumps({"name": cfg.name, "training": {**recorded, "limit_docs": 4000}}))
    result = run("--set", "limit_docs=0")
    assert result.exit_code == 0, result.output
    assert "another recipe (limit_docs 4000 -> 0)" in result.output and trained == [0]
    assert cli_models.recipe_changes(cfg, {"training": {**recorded, "oversample": {"CellLine": 3}}}) == [
        "oversample {'CellLine': 3} -> {'CellLine': 5}"]
    qa = load_dataclass(cli_models.training_tasks()["qa"][0], ROOT / "configs/models/default-qa.yaml")
    counts = {"decisions": 3662, "decision_windows": 3662}   # what readers before 2026-12-08 recorded there
    assert cli_models.recipe_changes(qa, {"training": {**counts, "epochs": qa.epochs}}) == []
    assert cli_models.recipe_changes(qa, {"training": {**counts, "epochs": qa.epochs + 1}}) == [
        f"epochs {qa.epochs + 1} -> {qa.epochs}"]
