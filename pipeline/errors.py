"""Errors classed by blast radius.

- ``ConfigError``: the run cannot start; nothing has been read or written.
- ``RecordError``: one record is bad; it goes to the rejects table and the file goes on.
- ``ShardError``: one input file cannot be read; it fails alone, is reported, and the run goes on.
- ``PublishError``: the snapshot cannot be completed; LATEST is left untouched.

Every message says what was expected, where, and what to do.
"""

from __future__ import annotations


class PubmineError(Exception):
    """Base class of every error pubmine raises on purpose."""


class ConfigError(PubmineError):
    """A configuration value is missing, unknown or of the wrong type."""


class RecordError(PubmineError):
    """One input record cannot be used; ``reason`` is the short code stored in rejects."""

    def __init__(self, reason: str, detail: str = "", pmid: int | None = None):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.pmid = pmid


class ShardError(PubmineError):
    """A whole input file cannot be parsed (unreadable, not XML, truncated)."""

    def __init__(self, source_file: str, detail: str):
        super().__init__(
            f"input file {source_file} could not be parsed: {detail}. The file is skipped and "
            "recorded in rejects; fix or re-download it and run again (other files are unaffected)."
        )
        self.source_file = source_file
        self.detail = detail


class ModelError(PubmineError):
    """A model artifact is missing, incomplete or unsafe to load."""


class PublishError(PubmineError):
    """A snapshot could not be completed; LATEST still names the previous snapshot."""
