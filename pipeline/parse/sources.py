"""One entry point for every input form: decide from the file what it is and stream its records.

- MEDLINE/PubMed XML (``<PubmedArticleSet>``, legacy ``<MedlineCitationSet>``, ``<PubmedBookArticleSet>``)
- PMC JATS: one ``<article>`` (.nxml) or an efetch ``<pmc-articleset>``
- PMC OA bulk packages (.tar.gz / .tgz / .tar), streamed member by member

The root element is sniffed from the first bytes, so a misnamed file is still read correctly and a
file that is neither gets a clear error naming what was expected.

Inputs are opened by ``open_input``: a .gz / .tgz is gunzipped here, under a decompression-ratio
limit (a gzip bomb fails its file after reading a few MB, whatever it would inflate to), and a gzip
stream that is damaged, cut short or not gzip at all fails its file with what was seen before.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import zlib
from typing import IO, Iterator

import fsspec

from pipeline.errors import ShardError
from pipeline.parse.jats import PACKAGE_SUFFIXES, iter_articleset, iter_jats, iter_package
from pipeline.parse.medline import iter_medline
from pipeline.parse.records import START_TAG, prolog_end
from pipeline.storage import gunzip, options_for

INFLATE_FLOOR = 64 << 20  # below this much output the ratio is not checked (small files inflate oddly)
try:
    from isal.isal_zlib import error as _isal_error
except ImportError:  # pragma: no cover - isal is a dependency, but optional for the standard codec
    _isal_error = zlib.error
GZIP_ERRORS = (EOFError, zlib.error, _isal_error)


class _Counted(io.RawIOBase):
    """The compressed bytes read so far."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.n = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.raw.read(len(b))
        b[:len(data)] = data
        self.n += len(data)
        return len(data)


class _Inflated(io.RawIOBase):
    """A gunzipped stream that raises ShardError once it has given out more than ``ratio`` times the
    compressed bytes read (past ``INFLATE_FLOOR``)."""

    def __init__(self, compressed: _Counted, source_file: str, ratio: float) -> None:
        self.compressed, self.source_file, self.ratio = compressed, source_file, ratio
        self.gz, self.out = gunzip(compressed), 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self.gz.readinto(b)
        self.out += n
        if self.out > INFLATE_FLOOR and self.out > self.ratio * max(self.compressed.n, 1):
            raise ShardError(self.source_file, (
                f"gzip data inflates to more than {self.ratio:g}x its size ({self.out >> 20} MB out of "
                f"{self.compressed.n >> 10} KB read so far): refused as a decompression bomb. If the file is "
                "genuine, raise parse.max_inflate_ratio"))
        return n


@contextlib.contextmanager
def open_input(url: str, storage_options: dict | None, source_file: str,
               max_inflate_ratio: float = 100.0) -> Iterator[IO[bytes]]:
    """An input file's bytes (gunzipped for .gz and .tgz, under the inflate-ratio limit)."""
    with fsspec.open(url, "rb", **options_for(url, storage_options)) as raw:
        if url.endswith((".gz", ".tgz")):
            yield io.BufferedReader(_Inflated(_Counted(raw), source_file, max_inflate_ratio), 1 << 20)
        else:
            yield raw

MEDLINE_ROOTS = {"PubmedArticleSet", "MedlineCitationSet", "PubmedBookArticleSet"}
JATS_ROOTS = {"article", "pmc-articleset"}
INPUT_SUFFIXES = (".xml", ".xml.gz", ".nxml", ".nxml.gz") + PACKAGE_SUFFIXES


def iter_records(stream: IO[bytes], source_file: str) -> Iterator[tuple[str, object]]:
    """``("document", Document)``, ``("deletion", {"pmid"})`` and ``("reject", row)`` events of one file
    (already gunzipped: ``open_input``). A PMID that comes again later in the same file makes the
    earlier record a reject ("duplicate PMID": the later one is published, as across files)."""
    seen, pmids = 0, {}
    try:
        for kind, payload in _events(stream, source_file):
            if kind == "document" and payload.pmid is not None and payload.source != "pmc":
                earlier = pmids.get(payload.pmid)
                if earlier is not None:
                    yield "reject", {"position": earlier, "pmid": payload.pmid, "reason": "duplicate PMID",
                                     "detail": f"PMID {payload.pmid} comes again at record {payload.position} of this "
                                               "file; the later record is the one published"}
                pmids[payload.pmid] = payload.position
            seen += kind != "deletion"
            yield kind, payload
    except GZIP_ERRORS + (gzip.BadGzipFile,) as exc:
        if isinstance(exc, EOFError):
            what = "the gzip stream ends before its end marker (cut short?)"
        elif isinstance(exc, OSError):
            what = f"the file is named .gz but is not gzip data ({exc})"
        else:
            what = f"the gzip data is damaged ({exc})"
        raise ShardError(source_file, f"{what}: {seen} records seen; a partial file is never published, "
                                      "fetch it again") from exc


def _events(stream: IO[bytes], source_file: str) -> Iterator[tuple[str, object]]:
    if source_file.endswith(PACKAGE_SUFFIXES):
        yield from iter_package(stream, source_file)
        return
    root, stream = sniff_root(stream)
    if root in MEDLINE_ROOTS:
        yield from iter_medline(stream, source_file)
    elif root == "pmc-articleset":
        yield from iter_articleset(stream, source_file)
    elif root in JATS_ROOTS:
        yield from iter_jats(stream, source_file)
    elif root is None:
        head = stream.head[:4] if isinstance(stream, _Prefixed) else b""
        if head[:1] == b"<" and head[1:2] == b"\0" or head[:1] == b"\0" and head[1:2] == b"<":
            raise ShardError(source_file, "file is UTF-16 without a byte-order mark; pubmine reads UTF-8 (and "
                                          "what an XML declaration names after a BOM): convert it, e.g. "
                                          "iconv -f UTF-16LE -t UTF-8")
        raise ShardError(source_file, "file is empty or not XML; expected MEDLINE XML (<PubmedArticleSet>) "
                                      "or PMC JATS (<article>, <pmc-articleset>)")
    else:
        raise ShardError(source_file, f"root element is <{root}>; expected MEDLINE <PubmedArticleSet> / "
                                      "<MedlineCitationSet> or PMC JATS <article> / <pmc-articleset>")




class _Prefixed(io.RawIOBase):
    """A stream with some already-read bytes put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n is None or n < 0:
                out, self.head = self.head + self.rest.read(), b""
                return out
            out, self.head = self.head[:n], self.head[n:]
            return out
        return self.rest.read(n)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


def sniff_root(stream: IO[bytes]) -> tuple[str | None, IO[bytes]]:
    """Peek at the root element's name; return it and a stream that still starts at byte 0."""
    head = b""
    while len(head) < 1 << 20:
        chunk = stream.read(65536)
        if not chunk:
            break
        head += chunk
        m = START_TAG.search(head, prolog_end(head))
        if m and m.end() < len(head):
            return m.group(1).decode(), _Prefixed(head, stream)
    m = START_TAG.search(head)
    return (m.group(1).decode() if m else None), _Prefixed(head, stream)
