"""``pubmine evaluate``: which scorer a dataset goes to (NER test splits, whole-abstract NER, concept
linking, relation classifiers), the published numbers each is printed beside, and the RESULT line
every benchmark and check greps. Errors are PubmineErrors (the CLI prints them as one red line)."""

from __future__ import annotations

import typer

from pipeline.config import artifact_url
from pipeline.errors import PubmineError

# BioBERT paper (Lee et al. 2020, Table 6/7) entity-level F1 on the same test splits
PAPER_F1 = {
    "ncbi-disease": {"BioBERT v1.1": 89.71, "BERT-base": 85.63},
    "bc5cdr-disease": {"BioBERT v1.1": 87.15, "BERT-base": 82.41},
    "bc5cdr-chem": {"BioBERT v1.1": 93.47, "BERT-base": 91.16},
    "bc2gm": {"BioBERT v1.1": 84.72, "BERT-base": 81.79},
    "gad": {"BioBERT v1.1": 81.61},
    "euadr": {"BioBERT v1.1": 86.51},
    "chemprot": {"BioBERT v1.1": 76.46},
}

# BioSyn (Sung et al., ACL 2020), accuracy@1 given gold mentions
BIOSYN_ACC1 = {"ncbi-disease": 91.1, "bc5cdr-disease": 93.2, "bc5cdr-chem": 96.6}

# PubTator Central's published per-type normalization F1 (Wei et al., NAR 2019), beside BioRED's
# per-type accuracy@1 on gold mentions (not the same measure: theirs is over their own mentions)
PUBTATOR_NORM_F1 = {"Gene": 86.7, "Species": 85.4, "Disease": 83.7, "Chemical": 89.5, "Variant": 86.2,
                    "CellLine": 83.1}


# BioBERT's published BioASQ numbers (Lee et al. 2020, Table 7; factoid: strict / lenient / MRR)
BIOBERT_BIOASQ = {"7b factoid, BioBERT": (31.48, 45.68, 37.13), "7b factoid, BioBERT + SQuAD": (40.12, 59.26, 48.34),
                  "6b factoid MRR": 48.43, "7b yes/no accuracy": 69.29, "7b yes/no accuracy (+ MNLI)": 90.71}


def evaluate(model: str, dataset: str, precision: str = "auto", fold: int = 0, task: str = "auto",
             encoder: str = "minilm", threshold: float | None = None, normalizer: str | None = None,
             data: list | None = None, answers=None, out=None) -> None:
    """Route ``dataset`` (and ``task``) to its scorer and print its scores and RESULT line."""
    from workers.inference.artifacts import read_manifest, stage_artifact
    from workers.training.docre import DOC_RE_DATASETS
    from workers.training.evaluate import DATASETS, IOB_EVAL
    from workers.training.relations import RE_NAMES

    if task == "normalization":
        return evaluate_normalization(dataset, encoder, threshold, normalizer, model, precision)
    if task == "qa":
        if dataset == "pubmedqa":
            return evaluate_pubmedqa(model, precision)
        return evaluate_qa(data or [], answers, model, precision, out)
    if task != "auto":
        raise PubmineError(f"--task {task!r} is not one of auto, normalization, qa")
    if dataset in DOC_RE_DATASETS or dataset == "bc5cdr-cid":
        url = relation_model_url(model, dataset)
        if read_manifest(stage_artifact(url)).get("task") == "re-doc":
            if dataset == "bc5cdr-cid":
                return evaluate_cid_one_pass(url, precision)
            return evaluate_doc_relations(url, dataset, precision)
    if dataset in RE_NAMES:
        return evaluate_relations(model, dataset, fold)
    if dataset not in DATASETS and dataset not in IOB_EVAL:
        raise PubmineError(f"unknown dataset {dataset!r}; choose one of "
                           f"{', '.join(sorted([*IOB_EVAL, *DATASETS, *RE_NAMES]))}")
    return evaluate_ner(model, dataset, precision)


def evaluate_ner(model: str, dataset: str, precision: str) -> None:
    """Strict entity-level P/R/F1 on an IOB test split (BioBERT's) or on whole abstracts."""
    from pipeline.report import print_scores
    from pipeline.scores import score
    from workers.inference.artifacts import stage_artifact
    from workers.inference.ner import NerTagger
    from workers.training.corpora import iob_split
    from workers.training.evaluate import DATASETS, IOB_EVAL, load_dataset, predict_documents, predict_iob, score_iob

    tagger = NerTagger.load(stage_artifact(artifact_url(model, "ner")), precision=precision)
    types = IOB_EVAL[dataset] if dataset in IOB_EVAL else DATASETS[dataset][1]
    missing = [t for t in types if t not in tagger.manifest.get("entity_types", [])]
    if missing:
        raise PubmineError(f"model {tagger.model_id} does not predict {missing}; it predicts {tagger.manifest.get('entity_types')}")
    if dataset in IOB_EVAL:
        sentences = iob_split(dataset, "test")
        scores = score_iob(sentences, predict_iob(tagger, sentences), types)
        what = f"{len(sentences)} sentences, IOB test split"
    else:
        docs, types = load_dataset(dataset)
        scores = score(docs, predict_documents(tagger, docs), types)
        what = f"{len(docs)} documents"
    p, r, f = scores.overall()
    print_scores(f"{tagger.model_id} on {dataset} test ({what}, {tagger.precision})", (p, r, f),
                 scores.by_type(), PAPER_F1.get(dataset))
    typer.echo(f"RESULT evaluate dataset={dataset} f1={f:.4f} precision={p:.4f} recall={r:.4f}")


def evaluate_normalization(dataset: str, encoder: str, threshold: float | None, normalizer_url: str | None,
                           model: str, precision: str) -> None:
    """accuracy@1 of linking gold mentions (ncbi-disease, bc5cdr-chem, bc5cdr-disease), or, with
    ``-d bc5cdr``, concept-level P/R/F1 end to end: the NER model's mentions, linked, per document."""
    from workers.inference.artifacts import stage_artifact
    from workers.inference.normalize import DEFAULT_THRESHOLD, Normalizer
    from workers.training.evaluate import NORM_DATASETS, evaluate_linking
    from workers.training.normalizer import default_dictionary, embedding_index

    if dataset == "biored":  # six types: the lexicon is part of the normalizer artifact
        normalizer_url = normalizer_url or "default"
    if normalizer_url:
        normalizer = Normalizer.load(stage_artifact(artifact_url(normalizer_url, "normalizer")))
    else:
        dictionary = default_dictionary()
        index = None if encoder == "none" else embedding_index(dictionary, encoder, progress=True)
        normalizer = Normalizer(dictionary, index, DEFAULT_THRESHOLD if threshold is None else threshold)
    if dataset == "bc5cdr":
        return evaluate_concepts(normalizer, model, precision)
    if dataset == "biored":
        return evaluate_linking_biored(normalizer)
    if dataset not in NORM_DATASETS:
        raise PubmineError(f"--task normalization takes -d {', '.join(NORM_DATASETS)} or biored (gold mentions) or "
                           "bc5cdr (end to end: NER mentions linked, concept-level F1)")
    s = evaluate_linking(normalizer, dataset)
    typer.echo(f"{dataset}: {s.n} gold test mentions linked with dictionary {normalizer.version}")
    for method, (ok, n) in sorted(s.by_method.items(), key=lambda kv: -kv[1][1]):
        typer.echo(f"  {method:<7} {n:>6} mentions  {ok / max(n, 1):6.1%} correct")
    typer.echo(f"  accuracy@1 {100 * s.accuracy:.2f}   (BioSyn {BIOSYN_ACC1[dataset]})")
    typer.echo(f"RESULT evaluate task=normalization dataset={dataset} acc1={s.accuracy:.4f} n={s.n}")


def evaluate_linking_biored(normalizer) -> None:
    """accuracy@1 per type on BioRED Dev's gold mentions (its test split is withheld here)."""
    from workers.training.evaluate import evaluate_linking_by_type

    if normalizer.lexicon is None:
        raise PubmineError("this normalizer has no gene/species/cell line lexicon (built before it existed); "
                           "rebuild it: pubmine build-normalizer")
    scores = evaluate_linking_by_type(normalizer)
    typer.echo(f"BioRED Dev gold mentions linked with {normalizer.version}")
    typer.echo(f"  {'type':<9} {'mentions':>8} {'acc@1':>7}   by method (correct/linked)   PubTator Central F1")
    for kind, s in scores.items():
        methods = ", ".join(f"{m} {ok}/{n}" for m, (ok, n) in sorted(s.by_method.items(), key=lambda kv: -kv[1][1]))
        typer.echo(f"  {kind:<9} {s.n:>8} {100 * s.accuracy:>6.2f}   {methods}   {PUBTATOR_NORM_F1.get(kind, '-')}")
    n = sum(s.n for s in scores.values())
    micro = sum(s.accuracy * s.n for s in scores.values()) / max(n, 1)
    keys = " ".join(f"acc1_{k.lower()}={s.accuracy:.4f}" for k, s in scores.items())
    typer.echo(f"RESULT evaluate task=normalization dataset=biored acc1={micro:.4f} {keys} n={n}")


def evaluate_concepts(normalizer, model: str, precision: str) -> None:
    from pipeline.report import print_scores
    from pipeline.scores import score_concepts
    from workers.inference.artifacts import stage_artifact
    from workers.inference.ner import NerTagger
    from workers.training.evaluate import load_dataset, predict_documents

    docs, types = load_dataset("bc5cdr")
    tagger = NerTagger.load(stage_artifact(artifact_url(model, "ner")), precision=precision)
    predicted = predict_documents(tagger, docs)
    mentions = [sorted(m for m in predicted[d.pmid] if m[3] in types) for d in docs]
    links = normalizer.link_documents([(d.text, [(d.text[s:e], t) for _, s, e, t in ms]) for d, ms in zip(docs, mentions)])
    concepts = {d.pmid: {(d.pmid, link.concept_id, m[3]) for m, link in zip(ms, ls) if link.concept_id}
                for d, ms, ls in zip(docs, mentions, links)}
    s = score_concepts(docs, concepts, types)
    p, r, f = s.overall()
    print_scores(f"concepts found and linked: {tagger.model_id} + {normalizer.version} on the {len(docs)} BC5CDR test "
                 "abstracts (per document, concept level)", (p, r, f), s.by_type())
    typer.echo(f"RESULT evaluate task=normalization dataset=bc5cdr concept_f1={f:.4f} precision={p:.4f} recall={r:.4f}")


def relation_model_url(model: str, dataset: str) -> str:
    """``-m default`` for a relation dataset: the pipeline's default relation model is BC5CDR CID; no
    other dataset has a default, so it must be named."""
    if model != "default":
        return artifact_url(model, "relation")
    if dataset == "bc5cdr-cid":
        return artifact_url("default", "relation")
    if dataset == "biored":
        return artifact_url("default", "redoc")
    raise PubmineError(f"-d {dataset} has no default model (the default relation model is BC5CDR CID); train one "
                       f"with `pubmine train -c configs/models/{dataset}.yaml -o DIR` and pass it: "
                       f"pubmine evaluate -d {dataset} -m DIR")


# BioCreative VIII BioRED track (Islamaj et al. 2024), best F1 per measure: subtask 1 gives gold
# entities, subtask 2 is end to end from the text
BIORED_TRACK_BEST = {"gold entities": {"pair": 77.17, "type": 58.95, "novelty": 59.22, "all": 44.55},
                     "end to end": {"pair": 55.84, "type": 43.03, "all": 32.75}}


def evaluate_doc_relations(url: str, dataset: str, precision: str) -> None:
    """BioRED Dev at document level with gold entities: pair, +type, +novelty, all (the track's measures)."""
    from workers.inference.artifacts import stage_artifact
    from workers.inference.docre import DocRelationExtractor
    from workers.training.docre import evaluate_gold_entities, read_documents

    extractor = DocRelationExtractor.load(stage_artifact(url), precision=precision)
    docs = read_documents(dataset, "test")
    s = evaluate_gold_entities(extractor, docs).summary()
    best = BIORED_TRACK_BEST["gold entities"]
    typer.echo(f"{extractor.model_id} on {dataset} Dev ({len(docs)} documents, gold entities, {str(extractor.autocast or 'fp32').removeprefix('torch.')}); "
               "BioRED's test split is withheld, Dev is the test")
    typer.echo(f"{'measure':<10}{'P':>8}{'R':>8}{'F1':>8}   BioCreative VIII best F1")
    for name in ("pair", "type", "novelty", "all"):
        m = s[name]
        typer.echo(f"{name:<10}{100 * m['precision']:8.2f}{100 * m['recall']:8.2f}{100 * m['f1']:8.2f}   {best[name]:.2f}")
    typer.echo(f"RESULT evaluate dataset={dataset} pair_f1={s['pair']['f1']:.4f} type_f1={s['type']['f1']:.4f} "
               f"novelty_f1={s['novelty']['f1']:.4f} all_f1={s['all']['f1']:.4f}")


# BioRED's label for a chemical that induces or raises a disease: what BC5CDR calls CID
CID_FROM_BIORED = "Positive_Correlation"


def evaluate_cid_one_pass(url: str, precision: str) -> None:
    """BC5CDR CID test (gold entities, document level) read off a BioRED one-pass model: a
    chemical-disease pair it calls Positive_Correlation is a CID pair. Nothing is trained or chosen
    on BC5CDR for this; it says how far BioRED's types carry to BC5CDR's one."""
    from collections import defaultdict

    from pipeline.config import shared_data_dir
    from pipeline.parse.pubtator import read_pubtator
    from pipeline.report import print_scores
    from pipeline.scores import score_cid
    from workers.inference.artifacts import stage_artifact
    from workers.inference.docre import DocRelationExtractor
    from workers.training.corpora import DOC_RE_CORPORA
    from workers.training.docre import predict_relations

    extractor = DocRelationExtractor.load(stage_artifact(url), precision=precision)
    docs = [d for f in DOC_RE_CORPORA["bc5cdr-cid"][1] for d in read_pubtator(shared_data_dir() / f)]
    predicted: dict[int, set] = defaultdict(set)
    for pmid, pair, label, _ in predict_relations(extractor, docs):
        kinds = dict(pair)
        if label == CID_FROM_BIORED and set(kinds) == {"Chemical", "Disease"}:
            predicted[pmid].add((pmid, kinds["Chemical"], kinds["Disease"]))
    p, r, f = score_cid(docs, predicted).overall()
    print_scores(f"{extractor.model_id} on BC5CDR CID test ({len(docs)} documents, gold entities; CID = its "
                 f"{CID_FROM_BIORED} between a chemical and a disease)", (p, r, f), {})
    typer.echo(f"RESULT evaluate dataset=bc5cdr-cid f1={f:.4f} precision={p:.4f} recall={r:.4f}")


def evaluate_relations(model: str, dataset: str, fold: int) -> None:
    from pipeline.report import print_scores
    from workers.inference.artifacts import stage_artifact
    from workers.inference.relations import RelationClassifier
    from workers.training.corpora import DOC_RE_CORPORA
    from workers.training.evaluate import score_relations
    from workers.training.relations import load_split, negative_label

    clf = RelationClassifier.load(stage_artifact(relation_model_url(model, dataset)))
    window = clf.manifest.get("training", {}).get("window", 2)  # candidates built as in training
    test, missed = load_split(dataset, "test", fold, window)
    s = score_relations([x.label for x in test], clf.predict([x.text for x in test]), negative_label(dataset), missed)
    comparable = negative_label(dataset) is not None or dataset in DOC_RE_CORPORA
    print_scores(f"{clf.manifest.get('model_id')} on {dataset} test ({s.n} examples)", (s.precision, s.recall, s.f1),
                 {}, PAPER_F1.get(dataset) if comparable else None)
    if not comparable:
        typer.echo(f"{dataset}: this copy holds positive instances only, so micro-F1 over its labels is accuracy; "
                   f"not comparable with the paper's {PAPER_F1.get(dataset)} (scored against negative pairs)")
    typer.echo(f"RESULT evaluate dataset={dataset} f1={s.f1:.4f} precision={s.precision:.4f} recall={s.recall:.4f}")


def _reader(model: str, precision: str):
    from workers.inference.artifacts import artifact_exists, stage_artifact
    from workers.inference.qa import QaReader

    url = artifact_url(model, "qa")
    if not artifact_exists(url):
        raise PubmineError(f"no question-answering reader at {url}: train it with `make qa-model` (or `pubmine train "
                           f"-c configs/models/default-qa.yaml`), pass one with -m, or score a submission with --answers")
    return QaReader.load(stage_artifact(url), precision=precision)


def evaluate_qa(data: list, answers, model: str = "default", precision: str = "auto", out=None) -> None:
    """BioASQ phase B over golden files (several scored as one set), by BioASQ's rules
    (``pipeline.bioasq``), beside BioBERT's published numbers: a submission's answers (``answers``)
    or the reader's, read from each question's golden snippets (written to ``out`` as a submission)."""
    import json

    from pipeline.bioasq import read_golden, read_submission, score_answers

    if not data:
        raise PubmineError("--task qa needs --data: a BioASQ golden JSON file (e.g. "
                           "../shared/data/qa/bioasq_golden_7b/Task7BGoldenEnriched/7B1_golden.json.gz)")
    questions = read_golden(data)
    if answers is None:
        from workers.training.qa import bioasq_answers

        reader = _reader(model, precision)
        typer.echo(f"reading {len(questions)} questions' snippets with {reader.model_id}")
        got = bioasq_answers(reader, questions)
        if out is not None:
            out.write_text(json.dumps({"questions": [{"id": k, "exact_answer": v} for k, v in got.items()]}, indent=1))
            typer.echo(f"wrote the answers to {out} (BioASQ phase B submission format)")
    else:
        got = read_submission(answers)
    unknown = set(got) - {q.id for q in questions}
    if unknown:
        raise PubmineError(f"{answers}: {len(unknown)} answered question(s) are in none of the golden files "
                           f"(e.g. {sorted(unknown)[0]}); give the golden batches the submission answers")
    s = score_answers(questions, got)
    counts = ", ".join(f"{t} {c['answered']}/{c['questions']}" for t, c in s.counts.items())
    typer.echo(f"{len(questions)} questions in {len(data)} golden file(s); answered: {counts}")
    typer.echo(f"{'measure':<22}{'ours':>8}")
    for name in ("factoid_strict", "factoid_lenient", "factoid_mrr", "list_precision", "list_recall", "list_f1",
                 "yesno_acc", "yesno_f1_yes", "yesno_f1_no", "yesno_macro_f1"):
        typer.echo(f"{name:<22}{100 * getattr(s, name):8.2f}")
    typer.echo("BioBERT (published): " + "; ".join(
        f"{k} {'/'.join(f'{x:.2f}' for x in v) if isinstance(v, tuple) else f'{v:.2f}'}" for k, v in BIOBERT_BIOASQ.items()))
    typer.echo(s.result_line())


# PubMedQA's paper (Jin et al. 2019): BioBERT's accuracy on PQA-L's test split (reasoning required)
PUBMEDQA_BIOBERT_ACC = 68.1


def evaluate_pubmedqa(model: str, precision: str) -> None:
    """PubMedQA PQA-L's official 500-question test split: yes / no / maybe from each abstract."""
    from workers.training.qa import pubmedqa_scores, pubmedqa_split

    reader = _reader(model, precision)
    s = pubmedqa_scores(reader, pubmedqa_split("test"))
    typer.echo(f"{reader.model_id} on PubMedQA PQA-L test ({s['n']} questions): accuracy {100 * s['acc']:.2f}, "
               f"macro F1 {100 * s['macro_f1']:.2f}; BioBERT's accuracy (the paper) {PUBMEDQA_BIOBERT_ACC:.1f}; "
               "majority class (yes) 55.20")
    typer.echo(f"RESULT qa dataset=pubmedqa acc={s['acc']:.4f} macro_f1={s['macro_f1']:.4f}")
