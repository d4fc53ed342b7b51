"""One entry point for every input form: decide from the file what it is and stream its records.

- MEDLINE/PubMed XML (``<PubmedArticleSet>``, legacy ``<MedlineCitationSet>``, ``<PubmedBookArticleSet>``)
- PMC JATS: one ``<article>`` (.nxml) or an efetch ``<pmc-articleset>``
- PMC OA bulk packages (.tar.gz / .tgz / .tar), streamed member by member

The root element is sniffed from the first bytes, so a misnamed file is still read correctly and a
file that is neither gets a clear error naming what was expected.
"""

from __future__ import annotations

import io
from typing import IO, Iterator

from pipeline.errors import ShardError
from pipeline.parse.jats import PACKAGE_SUFFIXES, iter_articleset, iter_jats, iter_package
from pipeline.parse.medline import iter_medline
from pipeline.parse.records import START_TAG, prolog_end

MEDLINE_ROOTS = {"PubmedArticleSet", "MedlineCitationSet", "PubmedBookArticleSet"}
JATS_ROOTS = {"article", "pmc-articleset"}
INPUT_SUFFIXES = (".xml", ".xml.gz", ".nxml", ".nxml.gz") + PACKAGE_SUFFIXES


def iter_records(stream: IO[bytes], source_file: str) -> Iterator[tuple[str, object]]:
    """``("document", Document)``, ``("deletion", {"pmid"})`` and ``("reject", row)`` events of one file
    (already decompressed when its name ends in .gz, except .tgz packages)."""
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
