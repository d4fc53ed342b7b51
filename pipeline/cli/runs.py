"""``pubmine run`` (a snapshot), ``pubmine parse`` (the Beam parse alone) and ``pubmine dump`` (PubTator
corpora as MEDLINE XML)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from pipeline.cli.common import app, fail, setup_logging
from pipeline.config import load_config, to_dict
from pipeline.errors import PubmineError


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
    setup_logging(verbose)
    try:
        cfg = load_config(config, set_ or [], inputs=[*(input or []), *(inputs or [])], store=store)
        if dryrun:
            typer.echo(json.dumps(to_dict(cfg), indent=2))
            return
        from pipeline.driver import run as run_pipeline
        from pipeline.report import print_run_summary

        summary = run_pipeline(cfg)
    except PubmineError as err:
        fail(err)
    print_run_summary(summary)
    if summary_json:
        summary_json.write_text(json.dumps(summary.to_json(), indent=2, default=str))
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
        fail(err)
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
