"""Errors classed by blast radius.

- ``ConfigError``: the run cannot start; nothing has been read or written.
- ``RecordError``: one record is bad; it goes to the rejects table and the file goes on.
- ``ShardError``: one input file cannot be read; it fails alone, is reported, and the run goes on.
- ``PublishError``: the snapshot cannot be completed; LATEST is left untouched.
- ``RunInProgress``: another run holds the store's lease; this one refuses (or waits) before writing.
- ``StoreUnavailable``: the object store stopped answering and kept silent through every retry; the
  run stops, LATEST is left untouched, and finished work is kept for the rerun.

Every message says what was expected, where, and what to do.
"""

from __future__ import annotations

from typing import Iterator


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


class RunInProgress(PublishError):
    """Another run holds the store's lease: one run per store at a time."""


class StoreUnavailable(PublishError):
    """The object store did not answer through every retry (``pipeline.storage``): not a bad input."""


class AccessDenied(PublishError):
    """A store, input or model location refused the credentials pubmine found: not a bad input."""


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and everything that caused it, each once: here, or in a Ray worker (a task error
    carries the remote exception as ``cause`` and subclasses its type)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__


# what a refused credential raises: s3fs maps a 403 to PermissionError; botocore names the others
_DENIED_CODES = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken")


def is_access_denied(exc: BaseException | None) -> bool:
    """True when ``exc`` or its cause chain is a refused credential or permission: the run stops, no
    file is rejected for it."""
    return any(isinstance(e, PermissionError) or any(c in str(e)[:300] for c in _DENIED_CODES) for e in _chain(exc))


# what a store that is down, restarting or unreachable raises, by class name along the cause chain
# (botocore, aiohttp and the OS each wrap the one below; a Ray task error carries the remote one)
_OUTAGE_TYPES = {"EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ClientConnectorError",
                 "ServerDisconnectedError", "ConnectionRefusedError", "ConnectionResetError"}
_OUTAGE_TEXT = ("Could not connect to the endpoint URL", "Cannot connect to host", "Connect call failed")


def is_store_outage(exc: BaseException | None) -> bool:
    """True when ``exc`` or anything that caused it (``_chain``) is a failed connection to a server,
    not an answer from it: an outage to retry or report, never a reason to reject a file."""
    return any(any(t.__name__ in _OUTAGE_TYPES for t in type(e).__mro__) or any(t in str(e) for t in _OUTAGE_TEXT)
               for e in _chain(exc))


def remote_pubmine_error(exc: BaseException | None) -> PubmineError | None:
    """The pubmine error behind ``exc``: one along its cause chain, or, where Ray kept only the text (an
    actor that died in its constructor: ActorDiedError holds the remote traceback as a string), the
    last ``pipeline.errors.<Class>: message`` line of it, rebuilt. So a corrupt model met by an actor
    reaches the user as the ModelError it is, not as a Ray traceback."""
    import re

    for e in _chain(exc):
        if isinstance(e, PubmineError):
            return e
    simple = {c.__name__: c for c in (ConfigError, ModelError, PublishError, AccessDenied)}
    for e in _chain(exc):
        found = re.findall(r"pipeline\.errors\.(\w+): (.+)", str(e))
        if found and found[-1][0] in simple:
            return simple[found[-1][0]](found[-1][1].strip())
    return None
