"""Progress of a long step, the same way everywhere (training, parse, extraction, publish, export): a
bar on a terminal; on anything else (a ``ray job submit`` log, cron, CI) one quiet line now and then,
``run=<id> stage=<stage> done=<n>/<total> <unit> <counts> elapsed=<s>``, that a log search can read.

    with Progress("parse", total=len(groups), unit="file", run_id=run_id) as bar:
        for result in results:
            bar.update(documents=result["documents"])

Counts given to ``update`` add up; ``show`` sets values that replace (a running loss). ``mode`` is
"bar", "log" or "off" (or a bool: True the default, False off); by default a bar when stderr is a
terminal, log lines otherwise (``pubmine --quiet`` asks for the log lines on a terminal too).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter

log = logging.getLogger("pubmine.progress")


def default_mode() -> str:
    """A bar on a terminal, log lines otherwise."""
    return "bar" if sys.stderr.isatty() else "log"


def mode_of(progress: bool | str | None) -> str:
    """A ``progress`` argument as a mode: True or None -> the default, False -> "off", or a mode."""
    if progress is None or progress is True:
        return default_mode()
    return "off" if progress is False else progress


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


class Progress:
    def __init__(self, stage: str, total: int | None = None, unit: str = "it", *, run_id: str | None = None,
                 mode: bool | str | None = None, every_s: float = 30.0, emit=None):
        self.stage, self.total, self.unit, self.run_id = stage, total, unit, run_id
        self.mode = mode_of(mode)
        if self.mode not in ("bar", "log", "off"):
            raise ValueError(f"progress mode {self.mode!r}: expected bar, log or off")
        self.every_s, self.done = every_s, 0
        self.counts: Counter = Counter()
        self.values: dict = {}
        self._emit = emit or (lambda line: log.info("%s", line))
        self._t0 = self._last = time.monotonic()
        self._bar = None
        if self.mode == "bar":
            from tqdm import tqdm

            label = f"{run_id} {stage}" if run_id else stage
            self._bar = tqdm(total=total, desc=label, unit=unit, file=sys.stderr, dynamic_ncols=True)
        elif self.mode == "log":
            self._line("started")

    def line(self, status: str = "") -> str:
        """The log line as it stands: run, stage, done/total, counts, elapsed seconds."""
        parts = [f"run={self.run_id}"] if self.run_id else []
        parts.append(f"stage={self.stage}")
        parts.append(f"done={self.done:,}" + (f"/{self.total:,}" if self.total is not None else "") + f" {self.unit}")
        parts += [f"{k}={_fmt(v)}" for k, v in {**self.counts, **self.values}.items()]
        parts.append(f"elapsed={time.monotonic() - self._t0:.1f}s")
        if status:
            parts.append(status)
        return " ".join(parts)

    def _line(self, status: str = "") -> None:
        self._emit(self.line(status))
        self._last = time.monotonic()

    def update(self, n: int = 1, **counts) -> None:
        self.done += n
        self.counts.update({k: v for k, v in counts.items() if v})
        if self._bar is not None:
            self._bar.update(n)
            if counts or self.values:
                self._bar.set_postfix({k: _fmt(v) for k, v in {**self.counts, **self.values}.items()}, refresh=False)
        elif self.mode == "log" and time.monotonic() - self._last >= self.every_s:
            self._line()

    def show(self, **values) -> None:
        self.values.update(values)
        if self._bar is not None:
            self._bar.set_postfix({k: _fmt(v) for k, v in {**self.counts, **self.values}.items()}, refresh=False)

    def close(self, status: str = "finished") -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "log":
            self._line(status)
        self.mode = "off"

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("finished" if exc_type is None else f"failed ({exc_type.__name__})")
