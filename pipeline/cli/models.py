"""``pubmine train``, ``pubmine build-normalizer`` and ``pubmine evaluate`` (routed by ``pipeline.evaluation``)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from pipeline.cli.common import app, fail, options_arg, setup_logging
from pipeline.config import artifact_url, load_dataclass
from pipeline.errors import PubmineError
from workers.inference.normalize import DEFAULT_THRESHOLD


def training_tasks() -> dict:
    """task -> (config class, trainer, default artifact kind): the one table `pubmine train` and the
    config tests read."""
    from workers.training.docre import DocReTrainConfig, train_docre
    from workers.training.ner import NerTrainConfig, train_ner
    from workers.training.qa import QaTrainConfig, train_qa
    from workers.training.relations import ReTrainConfig, train_relation

    return {"ner": (NerTrainConfig, train_ner, "ner"), "re": (ReTrainConfig, train_relation, "relation"),
            "re-doc": (DocReTrainConfig, train_docre, "redoc"), "qa": (QaTrainConfig, train_qa, "qa")}


@app.command()
def train(
    config: Path = typer.Option(Path("configs/models/default-ner.yaml"), "--config", "-c", help="training config YAML"),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="artifact URL (default: the pipeline's default model "
                                         "folder of the config's task)"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override a training field: key=value"),
    if_missing: bool = typer.Option(False, "--if-missing", help="do nothing when an artifact already exists at --output"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="one-line progress logs instead of a bar"),
) -> None:
    """Fine-tune a BERT-family encoder (task: ner | re | re-doc | qa in the config) and write a model artifact.
    With --if-missing an artifact already at --output is kept when it was trained from a config of
    the same name, and replaced otherwise (a new default model)."""
    import yaml

    setup_logging(False)
    tasks = training_tasks()
    try:
        if not config.exists():
            raise PubmineError(f"training config {config} not found")
        task = (yaml.safe_load(config.read_text()) or {}).get("task", "ner")
        if task not in tasks:
            raise PubmineError(f"{config}: task {task!r} is not one of {', '.join(tasks)}")
        config_class, trainer, kind = tasks[task]
        out = artifact_url(output or "default", kind)
        cfg = load_dataclass(config_class, config, set_ or [])
        if if_missing:
            present = existing_manifest(out)
            changed = recipe_changes(cfg, present) if present is not None else []
            if present is not None and present.get("name") == cfg.name and not changed:
                typer.echo(f"model already present at {out}; not training (drop --if-missing to retrain)")
                return
            if present is not None and present.get("name") != cfg.name:
                typer.echo(f"{out} holds {present.get('name')!r}, not this config's {cfg.name!r}: training it")
            elif present is not None:
                typer.echo(f"{out} was trained from another recipe ({'; '.join(changed)}): training it")
        typer.echo(f"training {cfg.name} ({task}) from {cfg.base_model} -> {out}")
        manifest = trainer(cfg, out, progress="log" if quiet else True, log=typer.echo)
        test = manifest["metrics"].get("test")
        if task == "ner":
            result = f"dev F1 {manifest['metrics']['dev']['f1']:.4f}"
        elif task == "re-doc" and test:
            result = f"test (gold entities) pair F1 {test['pair']['f1']:.4f}, +type {test['type']['f1']:.4f}"
        elif task == "qa":
            m = manifest["metrics"].get("test_7b")
            result = (f"7B factoid MRR {m['factoid_mrr']:.4f}, yes/no macro F1 {m['yesno_macro_f1']:.4f}" if m else
                      "not scored: pubmine evaluate --task qa --data GOLDEN.json")
        else:
            result = f"test F1 {test['f1']:.4f}" if test else f"test not scored: pubmine evaluate -m {out} -d {cfg.dataset}"
    except PubmineError as err:
        fail(err)
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
    setup_logging(False)
    from workers.training.normalizer import build_normalizer

    out = artifact_url(output or "default", "normalizer")
    try:
        present = existing_manifest(out) if if_missing else None
        if present is not None and present.get("lexicon"):
            typer.echo(f"normalizer already present at {out}; not rebuilding (drop --if-missing to rebuild)")
            return
        if present is not None:
            typer.echo(f"the normalizer at {out} has no gene/species/cell line lexicon: rebuilding it")
        manifest = build_normalizer(out, encoder, threshold, progress="log" if quiet else True, log=typer.echo,
                                    finetune_pairs=finetune_pairs)
    except PubmineError as err:
        fail(err)
    typer.echo(f"wrote {manifest['model_id']} (dictionary {manifest['version']}) to {out}")


@app.command()
def evaluate(
    model: str = typer.Option("default", "--model", "-m", help="artifact URL, or 'default' (the pipeline's NER model; "
                                                             "for -d bc5cdr-cid its CID model)"),
    dataset: str = typer.Option("bc5cdr", "--dataset", "-d",
                                help="ncbi-disease | bc5cdr-chem | bc5cdr-disease | bc2gm (BioBERT's IOB test splits) "
                                     "| bc5cdr | bc5cdr-docs-chem | bc5cdr-docs-disease | ncbi-disease-docs (whole abstracts) "
                                     "| gad | euadr | chemprot | bc5cdr-cid (relation classifiers) | biored (BioRED Dev at "
                                     "document level, gold entities: the default re-doc model)"),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | bf16 | int8 (NER: the encoder quantized, CPU)"),
    fold: int = typer.Option(0, "--fold", help="EU-ADR cross-validation fold (0-9)"),
    task: str = typer.Option("auto", "--task", help="auto (from the dataset) | normalization (link gold mentions: "
                                                     "ncbi-disease, bc5cdr-chem, bc5cdr-disease) | qa (BioASQ phase B "
                                                     "by BioASQ's rules: --data golden files)"),
    data: Optional[List[Path]] = typer.Option(None, "--data", help="qa: a BioASQ golden JSON file (any year; plain or "
                                              ".gz); repeat it to score several batches as one set"),
    answers: Optional[Path] = typer.Option(None, "--answers", help="qa: a BioASQ phase B submission (JSON) to score "
                                           "instead of reading the answers with a model"),
    out: Optional[Path] = typer.Option(None, "--out", help="qa: write the reader's answers here as a BioASQ submission"),
    encoder: str = typer.Option("minilm", "--encoder", help="normalization: the sentence encoder of the embedding "
                                                             "step (folder or hub name), or 'none' for dictionary only"),
    threshold: float = typer.Option(DEFAULT_THRESHOLD, "--threshold", help="normalization: least cosine for an embedding link"),
    normalizer: Optional[str] = typer.Option(None, "--normalizer", help="normalization: a normalizer artifact URL "
                                             "('default': the pipeline's) instead of --encoder/--threshold"),
) -> None:
    """P/R/F1 of a model on a dataset's test split: strict entity level for NER, the paper's relation
    scores for RE (gad, euadr, chemprot; document level for bc5cdr-cid and biored); accuracy@1 of
    concept linking with --task normalization; BioASQ's factoid, list and yes/no measures with --task qa."""
    from pipeline import evaluation

    try:
        evaluation.evaluate(model=model, dataset=dataset, precision=precision, fold=fold, task=task, encoder=encoder,
                            threshold=threshold, normalizer=normalizer, data=data or [], answers=answers, out=out)
    except PubmineError as err:
        fail(err)


@app.command()
def calibrate(
    model: str = typer.Option("default-redoc", "--model", "-m",
                              help="a re-doc, NER or QA artifact URL, or default-redoc / default-ner / default-qa"),
    accept_precision: Optional[float] = typer.Option(None, "--accept-precision",
                                           help="NER: the dev precision each type's kept spans must reach "
                                                "(default: the one the model was trained with)"),
    precision: str = typer.Option("auto", "--precision",
                                  help="auto | fp32 | bf16; int8 (NER): fit the thresholds the int8-quantized "
                                       "encoder uses, beside the model's own, and measure whether auto may choose it"),
) -> None:
    """Recalibrate a model's decisions on held-out data and write them into its manifest (a new model
    id; the weights are untouched). A document relation model: its decision margin, chosen on half
    of BioRED Dev, the other half saying what it gained. An NER model: its span calibration and
    per-type acceptance thresholds, on the dev sources it was trained with. A QA reader: its decision
    biases, on the decision questions held out of its training, kept only where halves of them say
    choosing one pays."""
    from workers.inference.artifacts import read_manifest, stage_artifact

    url = artifact_url(model, "redoc")
    try:
        task = read_manifest(stage_artifact(url)).get("task")
        if task == "ner":
            from workers.training.ner import calibrate_ner_artifact

            manifest = calibrate_ner_artifact(url, accept_precision, precision=precision, log=typer.echo)
        elif task == "re-doc":
            from workers.training.docre import calibrate_artifact

            manifest = calibrate_artifact(url, precision=precision, log=typer.echo)
        elif task == "qa":
            from workers.training.qa import calibrate_qa_artifact

            manifest = calibrate_qa_artifact(url, precision=precision, log=typer.echo)
        else:
            raise PubmineError(f"{url} is a {task!r} model; calibrate takes an NER (ner), document relation "
                              "(re-doc) or question-answering (qa) model")
    except PubmineError as err:
        fail(err)
    typer.echo(f"wrote {manifest['model_id']} to {url}")
    if task == "qa":
        cv = manifest["metrics"]["decision_dev"]["cross_validated"]
        typer.echo(f"RESULT calibrate model={manifest['model_id']} decision_bias={','.join(map(str, manifest['reader']['decision_bias']))} "
                   f"decision_bias_yes_no={','.join(map(str, manifest['reader']['decision_bias_yes_no']))} "
                   + " ".join(f"cv_{k}_chosen={v['chosen']} cv_{k}_none={v['none']}" for k, v in sorted(cv.items())))
        return
    if task == "ner":
        int8 = precision == "int8"
        cal = manifest["calibration_int8" if int8 else "calibration"]
        accept = cal.get("accept") or {}
        extra = (f" calibration=int8 dev_f1_fp32={cal['dev_f1']['fp32']} dev_f1_int8={cal['dev_f1']['int8']} "
                 f"auto_int8={str(cal['auto']).lower()}") if int8 else ""
        typer.echo(f"RESULT calibrate model={manifest['model_id']} precision={accept.get('precision')}{extra} "
                   + " ".join(f"threshold_{k.lower()}={v}" for k, v in sorted(accept.get("thresholds", {}).items())))
        return
    cal = manifest["calibration"]
    typer.echo(f"RESULT calibrate margin={cal['margin']} checked_pair_f1={cal['checked_half']['chosen']['pair']} "
               f"checked_type_f1={cal['checked_half']['chosen']['type']} "
               f"checked_pair_f1_margin0={cal['checked_half']['margin_0']['pair']} "
               f"checked_type_f1_margin0={cal['checked_half']['margin_0']['type']}")


models_app = typer.Typer(no_args_is_help=True, help="model releases: publish the default models, or fetch them")
app.add_typer(models_app, name="models")


@models_app.command("push")
def models_push(
    to: str = typer.Option(..., "--to", help="release URL: a folder, s3://bucket/prefix, ..."),
    ner: str = typer.Option("default", "--ner", help="NER artifact URL ('default': the pipeline's)"),
    normalizer: str = typer.Option("default", "--normalizer", help="normalizer artifact URL"),
    relation: str = typer.Option("default", "--relation", help="relation artifact URL (the CID model by default)"),
    redoc: str = typer.Option("default", "--redoc", help="document-level relation artifact URL (BioRED's types; "
                                                         "'none' to leave it out)"),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help="fsspec options per protocol, JSON"),
) -> None:
    """Publish the default models (or the ones named) as a release with an index of every file's size
    and sha256: pubmine models push --to s3://bucket/pubmine-models/2026-12"""
    from pipeline import release

    setup_logging(False)
    try:
        index = release.push(to, options_arg(storage_options), {"ner": ner, "normalizer": normalizer, "relation": relation,
                                                                **({} if redoc == "none" else {"redoc": redoc})})
    except PubmineError as err:
        fail(err)
    stored, whole = release.release_size(index)
    for kind, m in sorted(index["models"].items()):
        typer.echo(f"{kind}: {m['model_id']} ({sum(f['size'] for f in m['files'] if not f.get('base')) / 1e6:.1f} MB"
                   + (", base encoder referenced" if any(f.get("base") for f in m["files"]) else "") + ")")
    typer.echo(f"release at {to}: {stored / 1e6:.1f} MB stored ({whole / 1e6:.1f} MB once pulled), contract {index['contract']}")


@models_app.command("pull")
def models_pull(
    from_: str = typer.Option(..., "--from", help="release URL (what `pubmine models push --to` wrote)"),
    storage_options: Optional[str] = typer.Option(None, "--storage-options", help="fsspec options per protocol, JSON"),
) -> None:
    """Fetch a release into the default model folders (~/.cache/pubmine/models), every file checked
    against the index; a release that does not match is refused and nothing is installed. Exit 3: no
    release there."""
    from pipeline import release

    setup_logging(False)
    try:
        installed = release.pull(from_, options_arg(storage_options))
    except FileNotFoundError as err:
        typer.secho(f"pubmine: {err}", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(3)
    except PubmineError as err:
        fail(err)
    for kind, model_id in sorted(installed.items()):
        typer.echo(f"{kind}: {model_id} -> {artifact_url('default', kind)}")


# training fields that say how a run went, not what it learns: the device, threads, the precision
# "auto" resolved to, whether the test split was scored
RUN_ONLY_FIELDS = frozenset({"device", "num_threads", "precision", "score_test"})


def recipe_changes(cfg, present: dict) -> list[str]:
    """``field old -> new`` for each field of the training config ``cfg`` whose value differs from
    the one the present artifact was trained with (its manifest's ``training``): a default whose
    recipe changed under the same name ("limit_docs 4000 -> 0") is a new model. Fields the manifest
    does not record, or records as another kind of value (readers before 2026-12-08 wrote counts
    under "decisions" and "decision_windows"), and RUN_ONLY_FIELDS do not count."""
    import dataclasses
    import json

    trained = present.get("training") or {}
    # the config as the manifest holds it (tuples as lists)
    now = {f.name: json.loads(json.dumps(getattr(cfg, f.name), default=str)) for f in dataclasses.fields(cfg)}
    kind = lambda v: float if type(v) is int else type(v)  # noqa: E731  (2 and 2.0 are one kind)
    return [f"{name} {trained[name]!r} -> {value!r}" for name, value in now.items()
            if name in trained and name not in RUN_ONLY_FIELDS and kind(trained[name]) is kind(value)
            and value != trained[name]]


def existing_manifest(url: str) -> dict | None:
    """The pubmine.json of a complete artifact at ``url`` (any fsspec URL), or None."""
    import json
    import posixpath

    from pipeline.storage import url_to_fs
    from workers.inference.artifacts import MANIFEST, artifact_exists

    if not artifact_exists(url):
        return None
    fs, path = url_to_fs(url)
    with fs.open(posixpath.join(path, MANIFEST), "r") as f:
        return json.load(f)
