"""The ``pubmine`` command: run, parse, dump (``runs``); train, build-normalizer, evaluate, models
(``models``); query, export, snapshots (``snapshots``).

``run`` and ``train`` take a typed config (YAML + ``--set key=value``); a wrong key or type is a clear
error naming the key. Every error pubmine raises on purpose is one red line and exit code 2.
"""

from __future__ import annotations

# each registers its commands on the app, in the order `pubmine --help` lists them
from pipeline.cli import runs  # noqa: F401,I001
from pipeline.cli import snapshots  # noqa: F401,I001
from pipeline.cli import models  # noqa: F401,I001
from pipeline.cli.common import app


def main() -> None:  # pragma: no cover
    app()


__all__ = ["app", "main"]
