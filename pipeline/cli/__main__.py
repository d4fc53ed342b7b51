"""``python -m pipeline.cli``: the pubmine command."""

import sys

from pipeline.cli import app

sys.exit(app())
