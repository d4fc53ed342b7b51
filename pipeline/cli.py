"""The ``pubmine`` command: run, parse, query, export, snapshots, train, build-normalizer, evaluate, dump.

``run`` and ``train`` take a typed config (YAML + ``--set key=value``); a wrong key or type is a clear
error naming the key. Every error pubmine raises on purpose is one red line and exit code 2.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

import typer

from pipeline.config import default_model_dir, default_relation_dir, load_config, load_dataclass, to_dict
from pipeline.errors import PubmineError
from workers.inference.normalize import DEFAULT_THRESHOLD

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="pubmine: PubMed/PMC -> entity tables (Ray + Beam + BERT-family NER) as Parquet snapshots.")

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


def _fail(err: Exception) -> None:
    typer.secho(f"pubmine: error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pubmine.progress").setLevel(logging.INFO)  # the quiet one-line progress, off a terminal


@app.command()
def run(
    inputs: Optional[List[str]] = typer.Argument(None, metavar="[INPUT]...", show_default=False,
                                                  help="input files, URLs or globs (a shell-expanded data/*.xml.gz "
                                                       "too); with --input, they replace the config's inputs"),
    config: Path = typer.Option(..., "--config", "-c", help="YAML run config, e.g. configs/local.yaml"),
    input: Optional[List[str]] = typer.Option(None, "--input", "-i", help="input URL or glob (repeatable); replaces the config's inputs"),
    store: Optional[str] = typer.Option(None, "--store", "-s", help="store root URL (local path, file://, s3://)"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override a config field: key=value (repeatable)"),
    dryrun: bool = typer.Option(False, "--dryrun", help="print the resolved config and exit"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
    summary_json: Optional[Path] = typer.Option(None, "--summary-json", help="also write the run summary as JSON here"),
) -> None:
    """Plan, parse, extract and publish one snapshot:
    pubmine run -c configs/nightly.yaml [INPUT ...] [--input URL_OR_GLOB ...] [--set key=value ...]"""
    _setup_logging(verbose)
    try:
        cfg = load_config(config, set_ or [], inputs=[*(input or []), *(inputs or [])], store=store)
        if dryrun:
            typer.echo(json.dumps(to_dict(cfg), indent=2))
            return
        from pipeline.driver import run as run_pipeline
        from pipeline.report import print_run_summary

        summary = run_pipeline(cfg)
    except PubmineError as err:
        _fail(err)
    print_run_summary(summary)
    if summary_json:
        summary_json.write_text(json.dumps({**summary.__dict__, "wall_seconds": summary.wall_seconds}, indent=2, default=str))
    if summary.failed_files:
        typer.secho(f"{len(summary.failed_files)} input file(s) failed and were skipped; see rejects.", fg=typer.colors.YELLOW, err=True)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def parse(
    ctx: typer.Context,
    input: List[str] = typer.Option(..., "--input", "-i", help="input URL or glob (repeatable)"),
    output: str = typer.Option(..., "--output", "-o", help="store root; shards go to <output>/state/parsed/<fingerprint>/"),
    runner: str = typer.Option("FnApiRunner", "--runner", help="Beam runner (FnApiRunner, FlinkRunner, SparkRunner, DataflowRunner, ...)"),
    reuse: bool = typer.Option(True, "--reuse/--no-reuse", help="skip inputs whose parsed shard already exists"),
) -> None:
    """Run the Beam parse pipeline standalone (no Ray). Extra arguments go to Beam as pipeline options,
    e.g. --direct_num_workers=2 --direct_running_mode=multi_processing. The parsed shards are the ones
    `pubmine run` reads, so a later run on the same store reuses them."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.beam.run import parse_shards
    from pipeline.layout import parsed_prefix
    from pipeline.plan import list_inputs, plan_shards
    from pipeline.storage import Store

    try:
        shards = plan_shards(list_inputs(input))
    except PubmineError as err:
        _fail(err)
    store = Store(output)
    options = PipelineOptions([f"--runner={runner}", *ctx.args])
    failed = 0
    for shard, marker in zip(shards, parse_shards(shards, store, reuse=reuse, options=options)):
        if not marker["ok"]:
            failed += 1
            typer.secho(marker["error"], fg=typer.colors.RED, err=True)
            continue
        rows = marker["rows"]
        typer.echo(f"{shard.source_file}: {rows['documents']} documents, {rows['sentences']} sentences, "
                   f"{rows['deletions']} deletions, {rows['rejects']} rejects"
                   f"{' (reused)' if marker.get('reused') else ''} -> {store.uri(*parsed_prefix(shard.fingerprint))}")
    if failed:
        raise typer.Exit(1)


@app.command()
def train(
    config: Path = typer.Option(Path("configs/models/default-ner.yaml"), "--config", "-c", help="training config YAML"),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="artifact URL (default: the pipeline's default model folder)"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override a training field: key=value"),
    if_missing: bool = typer.Option(False, "--if-missing", help="do nothing when an artifact already exists at --output"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="one-line progress logs instead of a bar"),
) -> None:
    """Fine-tune a BERT-family encoder (task: ner | re in the config) and write a model artifact."""
    import yaml

    _setup_logging(False)
    from workers.inference.artifacts import artifact_exists
    from workers.training.ner import NerTrainConfig, train_ner
    from workers.training.relations import ReTrainConfig, train_relation

    out = output or str(default_model_dir())
    try:
        if not config.exists():
            raise PubmineError(f"training config {config} not found")
        task = (yaml.safe_load(config.read_text()) or {}).get("task", "ner")
        if task not in ("ner", "re"):
            raise PubmineError(f"{config}: task {task!r} is not one of ner, re")
        cfg = load_dataclass(NerTrainConfig if task == "ner" else ReTrainConfig, config, set_ or [])
        if if_missing:
            if artifact_exists(out):
                typer.echo(f"model already present at {out}; not training (drop --if-missing to retrain)")
                return
        typer.echo(f"training {cfg.name} ({task}) from {cfg.base_model} -> {out}")
        if task == "ner":
            manifest = train_ner(cfg, out, progress="log" if quiet else True, log=typer.echo)
            result = f"dev F1 {manifest['metrics']['dev']['f1']:.4f}"
        else:
            manifest = train_relation(cfg, out, progress="log" if quiet else True, log=typer.echo)
            test = manifest["metrics"].get("test")
            result = f"test F1 {test['f1']:.4f}" if test else f"test not scored: pubmine evaluate -m {out} -d {cfg.dataset}"
    except PubmineError as err:
        _fail(err)
    typer.echo(f"wrote {manifest['model_id']} to {out} ({result}, {manifest['training']['seconds']} s)")


@app.command("build-normalizer")
def build_normalizer_cmd(
    output: Optional[str] = typer.Option(None, "--output", "-o", help="artifact URL (default: the pipeline's default normalizer folder)"),
    encoder: str = typer.Option("minilm", "--encoder", help="sentence encoder of the embedding step (folder or hub name)"),
    threshold: float = typer.Option(DEFAULT_THRESHOLD, "--threshold", help="least cosine for an embedding link (below: NIL)"),
    finetune_pairs: int = typer.Option(0, "--finetune-pairs", help="fine-tune the encoder on this many synonym pairs "
                                                                "from the dictionary first (SapBERT style); 0: as is"),
    if_missing: bool = typer.Option(False, "--if-missing", help="do nothing when an artifact already exists at --output"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="one-line progress logs instead of a bar"),
) -> None:
    """Build MeSH 2024 + CTD MEDIC (+ the training corpora's linked names) into a normalizer artifact:
    the dictionary, its version, the encoder and every name embedded once."""
    _setup_logging(False)
    from pipeline.config import default_normalizer_dir
    from workers.inference.artifacts import artifact_exists
    from workers.training.normalizer import build_normalizer

    out = output or str(default_normalizer_dir())
    try:
        if if_missing and artifact_exists(out):
            typer.echo(f"normalizer already present at {out}; not rebuilding (drop --if-missing to rebuild)")
            return
        manifest = build_normalizer(out, encoder, threshold, progress="log" if quiet else True, log=typer.echo,
                                    finetune_pairs=finetune_pairs)
    except PubmineError as err:
        _fail(err)
    typer.echo(f"wrote {manifest['model_id']} (dictionary {manifest['version']}) to {out}")


@app.command()
def evaluate(
    model: str = typer.Option("default", "--model", "-m", help="artifact URL, or 'default' (the pipeline's NER model; "
                                                             "for -d bc5cdr-cid its CID model)"),
    dataset: str = typer.Option("bc5cdr", "--dataset", "-d",
                                help="ncbi-disease | bc5cdr-chem | bc5cdr-disease | bc2gm (BioBERT's IOB test splits) "
                                     "| bc5cdr | bc5cdr-docs-chem | bc5cdr-docs-disease | ncbi-disease-docs (whole abstracts) "
                                     "| gad | euadr | chemprot | bc5cdr-cid | biored (relation classifiers)"),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | bf16"),
    fold: int = typer.Option(0, "--fold", help="EU-ADR cross-validation fold (0-9)"),
    task: str = typer.Option("auto", "--task", help="auto (from the dataset) | normalization (link gold mentions: "
                                                     "ncbi-disease, bc5cdr-chem, bc5cdr-disease)"),
    encoder: str = typer.Option("minilm", "--encoder", help="normalization: the sentence encoder of the embedding "
                                                             "step (folder or hub name), or 'none' for dictionary only"),
    threshold: float = typer.Option(DEFAULT_THRESHOLD, "--threshold", help="normalization: least cosine for an embedding link"),
    normalizer: Optional[str] = typer.Option(None, "--normalizer", help="normalization: a normalizer artifact URL "
                                             "('default': the pipeline's) instead of --encoder/--threshold"),
) -> None:
    """P/R/F1 of a model on a dataset's test split: strict entity level for NER, the paper's relation
    scores for RE (gad, euadr, chemprot; document level for bc5cdr-cid and biored); accuracy@1 of
    concept linking with --task normalization."""
    from pipeline.report import print_scores
    from workers.inference.artifacts import stage_artifact
    from workers.inference.ner import NerTagger
    from workers.training.corpora import iob_split
    from pipeline.scores import score
    from workers.training.evaluate import (DATASETS, IOB_EVAL, load_dataset, predict_documents, predict_iob,
                                           score_iob)
    from workers.training.relations import RE_NAMES

    if task == "normalization":
        return _evaluate_normalization(dataset, encoder, threshold, normalizer, model, precision)
    if task != "auto":
        _fail(PubmineError(f"--task {task!r} is not one of auto, normalization"))
    if dataset in RE_NAMES:
        return _evaluate_relations(model, dataset, fold)
    if dataset not in DATASETS and dataset not in IOB_EVAL:
        _fail(PubmineError(f"unknown dataset {dataset!r}; choose one of "
                           f"{', '.join(sorted([*IOB_EVAL, *DATASETS, *RE_NAMES]))}"))
    try:
        folder = stage_artifact(str(default_model_dir()) if model == "default" else model)
        tagger = NerTagger.load(folder, precision=precision)
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
    except PubmineError as err:
        _fail(err)
    p, r, f = scores.overall()
    print_scores(f"{tagger.model_id} on {dataset} test ({what}, {tagger.precision})", (p, r, f),
                 scores.by_type(), PAPER_F1.get(dataset))
    typer.echo(f"RESULT evaluate dataset={dataset} f1={f:.4f} precision={p:.4f} recall={r:.4f}")


# BioSyn (Sung et al., ACL 2020), accuracy@1 given gold mentions
BIOSYN_ACC1 = {"ncbi-disease": 91.1, "bc5cdr-disease": 93.2, "bc5cdr-chem": 96.6}


def _evaluate_normalization(dataset: str, encoder: str, threshold: float, normalizer_url: str | None,
                            model: str, precision: str) -> None:
    """accuracy@1 of linking gold mentions (ncbi-disease, bc5cdr-chem, bc5cdr-disease), or, with
    ``-d bc5cdr``, concept-level P/R/F1 end to end: the NER model's mentions, linked, per document."""
    from pipeline.config import default_normalizer_dir
    from workers.inference.artifacts import stage_artifact
    from workers.inference.normalize import Normalizer
    from workers.training.evaluate import NORM_DATASETS, evaluate_linking
    from workers.training.normalizer import default_dictionary, embedding_index

    try:
        if normalizer_url:
            url = str(default_normalizer_dir()) if normalizer_url == "default" else normalizer_url
            normalizer = Normalizer.load(stage_artifact(url))
        else:
            dictionary = default_dictionary()
            index = None if encoder == "none" else embedding_index(dictionary, encoder, progress=True)
            normalizer = Normalizer(dictionary, index, threshold)
        if dataset == "bc5cdr":
            return _evaluate_concepts(normalizer, model, precision)
        if dataset not in NORM_DATASETS:
            raise PubmineError(f"--task normalization takes -d {', '.join(NORM_DATASETS)} (gold mentions) or bc5cdr "
                               "(end to end: NER mentions linked, concept-level F1)")
        s = evaluate_linking(normalizer, dataset)
    except PubmineError as err:
        _fail(err)
    typer.echo(f"{dataset}: {s.n} gold test mentions linked with dictionary {normalizer.version}")
    for method, (ok, n) in sorted(s.by_method.items(), key=lambda kv: -kv[1][1]):
        typer.echo(f"  {method:<7} {n:>6} mentions  {ok / max(n, 1):6.1%} correct")
    typer.echo(f"  accuracy@1 {100 * s.accuracy:.2f}   (BioSyn {BIOSYN_ACC1[dataset]})")
    typer.echo(f"RESULT evaluate task=normalization dataset={dataset} acc1={s.accuracy:.4f} n={s.n}")


def _evaluate_concepts(normalizer, model: str, precision: str) -> None:
    from pipeline.report import print_scores
    from workers.inference.artifacts import stage_artifact
    from workers.inference.ner import NerTagger
    from pipeline.scores import score_concepts
    from workers.training.evaluate import load_dataset, predict_documents

    docs, types = load_dataset("bc5cdr")
    tagger = NerTagger.load(stage_artifact(str(default_model_dir()) if model == "default" else model), precision=precision)
    predicted = predict_documents(tagger, docs)
    mentions = [sorted(m for m in predicted[d.pmid] if m[3] in types) for d in docs]
    links = normalizer.link_documents([(d.text, [(d.text[s:e], t) for _, s, e, t in ms]) for d, ms in zip(docs, mentions)])
    concepts = {d.pmid: {(d.pmid, l.concept_id, m[3]) for m, l in zip(ms, ls) if l.concept_id}
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
        return model
    if dataset == "bc5cdr-cid":
        return str(default_relation_dir())
    raise PubmineError(f"-d {dataset} has no default model (the default relation model is BC5CDR CID); train one "
                       f"with `pubmine train -c configs/models/{dataset}.yaml -o DIR` and pass it: "
                       f"pubmine evaluate -d {dataset} -m DIR")


def _evaluate_relations(model: str, dataset: str, fold: int) -> None:
    from pipeline.report import print_scores
    from workers.inference.artifacts import stage_artifact
    from workers.inference.relations import RelationClassifier
    from workers.training.corpora import DOC_RE_CORPORA
    from workers.training.evaluate import score_relations
    from workers.training.relations import load_split, negative_label

    try:
        clf = RelationClassifier.load(stage_artifact(relation_model_url(model, dataset)))
        window = clf.manifest.get("training", {}).get("window", 2)  # candidates built as in training
        test, missed = load_split(dataset, "test", fold, window)
        s = score_relations([x.label for x in test], clf.predict([x.text for x in test]), negative_label(dataset), missed)
    except PubmineError as err:
        _fail(err)
    comparable = negative_label(dataset) is not None or dataset in DOC_RE_CORPORA
    print_scores(f"{clf.manifest.get('model_id')} on {dataset} test ({s.n} examples)", (s.precision, s.recall, s.f1),
                 {}, PAPER_F1.get(dataset) if comparable else None)
    if not comparable:
        typer.echo(f"{dataset}: this copy holds positive instances only, so micro-F1 over its labels is accuracy; "
                   f"not comparable with the paper's {PAPER_F1.get(dataset)} (scored against negative pairs)")
    typer.echo(f"RESULT evaluate dataset={dataset} f1={s.f1:.4f} precision={s.precision:.4f} recall={s.recall:.4f}")


def _snapshot_store(store: str, storage_options: Optional[str]):
    from pipeline.storage import Store

    try:
        options = json.loads(storage_options) if storage_options else {}
    except json.JSONDecodeError as exc:
        raise PubmineError(f"--storage-options must be JSON such as '{{\"s3\": {{\"endpoint_url\": \"...\"}}}}': {exc}")
    return Store(store, options)


@app.command()
def query(
    sql: str = typer.Argument(..., help="one SQL statement over the snapshot's tables (documents, passages, sentences, "
                                        "entities, relations, rejects, concepts, concept_relations, cooccurrences)"),
    store: str = typer.Option("store", "--store", "-s", help="store root URL (local path, file://, s3://)"),
    at: Optional[str] = typer.Option(None, "--at", help="the snapshot's run id (default: the one LATEST names)"),
    since: Optional[str] = typer.Option(None, "--since", help="the snapshot whose tables are previous.<table> "
                                                              "(default: the one before --at)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write the result to .csv, .parquet or .json instead"),
    limit: int = typer.Option(50, "--limit", help="rows printed on the terminal (--out writes them all)"),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help="fsspec options per protocol, JSON"),
) -> None:
    """DuckDB over a snapshot, every table a view (and an earlier snapshot's as previous.<table>):
    pubmine query "select name, documents from concepts order by documents desc limit 10"
    [--at RUN_ID] [--since RUN_ID] [--out top.csv]"""
    from pipeline.knowledge import run_query
    from pipeline.publish import pick_snapshots

    try:
        where = _snapshot_store(store, storage_options)
        run_id, previous = pick_snapshots(where, at, since)
        table = run_query(where, sql, run_id, previous)
    except PubmineError as err:
        _fail(err)
    if out is None:
        from pipeline.report import print_table

        print_table(table, f"{run_id}: {table.num_rows} rows", limit)
        return
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, out)
    elif suffix == ".csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, out)
    elif suffix in (".json", ".jsonl"):
        out.write_text("".join(json.dumps(r, default=str) + "\n" for r in table.to_pylist()))
    else:
        _fail(PubmineError(f"--out {out}: the format is told by the name; use .csv, .parquet, .json or .jsonl"))
    typer.echo(f"{table.num_rows} rows from snapshot {run_id} -> {out}")


@app.command()
def export(
    out: Path = typer.Option(..., "--out", "-o", help="the file to write"),
    format: str = typer.Option(..., "--format", "-f", help="pubtator, biocxml or biocjson"),
    store: str = typer.Option("store", "--store", "-s", help="store root URL (local path, file://, s3://)"),
    at: Optional[str] = typer.Option(None, "--at", help="the snapshot's run id (default: the one LATEST names)"),
    pmid: Optional[List[int]] = typer.Option(None, "--pmid", help="only these PMIDs (repeatable)"),
    where: Optional[str] = typer.Option(None, "--where", help="only documents matching this SQL condition, e.g. 'pub_year >= 2020'"),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help="fsspec options per protocol, JSON"),
) -> None:
    """A snapshot's documents with their entities (type, concept id) and relations as PubTator, BioC XML
    or BioC JSON: pubmine export --format biocxml --pmid 17212035 --out paper.xml"""
    from pipeline.export import export as export_snapshot
    from pipeline.publish import pick_snapshots

    _setup_logging(False)
    try:
        where_store = _snapshot_store(store, storage_options)
        run_id, _ = pick_snapshots(where_store, at)
        counts = export_snapshot(where_store, run_id, format, out, tuple(pmid or ()), where)
    except PubmineError as err:
        _fail(err)
    typer.echo(f"{counts['documents']} documents, {counts['entities']} entities, {counts['relations']} relations "
               f"from snapshot {run_id} -> {out} ({format})")


@app.command()
def snapshots(
    store: str = typer.Option("store", "--store", "-s", help="store root URL (local path, file://, s3://)"),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help="fsspec options per protocol, JSON"),
) -> None:
    """The store's complete snapshots, oldest first, with when they were published and their counts."""
    import pyarrow as pa

    from pipeline.publish import list_snapshots
    from pipeline.report import print_table

    try:
        rows = list_snapshots(_snapshot_store(store, storage_options))
    except PubmineError as err:
        _fail(err)
    if not rows:
        _fail(PubmineError(f"no complete snapshot in {store}: run `pubmine run` first (or check --store)"))
    print_table(pa.Table.from_pylist(rows), f"{len(rows)} snapshots in {store}", len(rows))


@app.command()
def dump(
    pubtator: List[Path] = typer.Option(..., "--pubtator", "-p", help="PubTator file(s) (.txt or .txt.gz)"),
    output: Path = typer.Option(..., "--output", "-o", help="MEDLINE-style XML to write (.xml or .xml.gz)"),
    limit: int = typer.Option(0, "--limit", help="only the first n documents (0 = all)"),
) -> None:
    """Turn PubTator corpora (BC5CDR, NCBI-disease) into a PubmedArticleSet the pipeline can ingest."""
    from pipeline.parse.pubtator import read_pubtator, write_medline_xml

    docs = [d for p in pubtator for d in read_pubtator(p)]
    if limit:
        docs = docs[:limit]
    n = write_medline_xml(docs, output)
    typer.echo(f"wrote {n} articles to {output}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
