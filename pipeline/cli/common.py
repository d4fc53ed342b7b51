"""What every ``pubmine`` command shares: the Typer app, the one-red-line error exit, logging, and the
store a snapshot command reads."""

from __future__ import annotations

import json
import logging
from typing import Optional

import typer

from pipeline.errors import PubmineError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="pubmine: PubMed/PMC -> entity tables (Ray + Beam + BERT-family NER) as Parquet snapshots.")


def fail(err: Exception) -> None:
    typer.secho(f"pubmine: error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pubmine.progress").setLevel(logging.INFO)  # the quiet one-line progress, off a terminal


def options_arg(storage_options: Optional[str]) -> dict:
    """``--storage-options`` (JSON: fsspec options per protocol) as a dict."""
    try:
        return json.loads(storage_options) if storage_options else {}
    except json.JSONDecodeError as exc:
        raise PubmineError(f"--storage-options must be JSON such as '{{\"s3\": {{\"endpoint_url\": \"...\"}}}}': {exc}")


def snapshot_store(store: str, storage_options: Optional[str]):
    """The store at ``store`` with ``--storage-options`` applied."""
    from pipeline.storage import Store

    return Store(store, options_arg(storage_options))
