"""Record isolation: a set file (MEDLINE ``<PubmedArticleSet>``, PMC ``<pmc-articleset>``) cut into its
records at the byte level, each record then parsed alone, so that markup that is not well-formed, an
invalid character reference or invalid UTF-8 inside one record costs that record, never the file.

The cut needs no XML parser: after the root's start tag, each record runs from ``<Tag`` (a record
tag of that root) to the first ``</Tag>``; records of these sets never nest their own tag. A record
whose closing tag never comes before the next record starts is cut at that start and rejected. A
record over ``max_record_bytes`` is skipped without being held in memory and rejected. The file must
end with the root's closing tag: a file cut short (a partial download, a truncated gzip) raises
:class:`ShardError` saying how many records were seen, because a partial update file must never be
published as if it were whole.

The prolog (XML declaration, DOCTYPE with any internal subset) is never parsed: no DTD, no entity
declared there is ever expanded (an entity bomb is an undefined entity in the record that uses it,
and so a reject), nothing is fetched. Each record is parsed by lxml with entities, DTDs and the
network off, in the file's declared encoding.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import IO, Iterator

from lxml import etree

from pipeline.errors import ShardError

READ = 1 << 20
MAX_RECORD_BYTES = 64 << 20   # a record this large is not an article: rejected (the largest real ones are a few MB)
_PROLOG = re.compile(rb"\s*(<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^\[>]*(\[.*?\])?\s*>)", re.S)
START_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


@dataclass
class Piece:
    """One cut of the file: a record (``tag`` a record tag), another element (``tag`` anything else),
    or a part that is not an element at all (``tag`` None); ``problem`` says why it cannot be parsed
    whole (no closing tag, too large), ``data`` is None when it was skipped."""

    tag: str | None
    offset: int
    data: bytes | None
    problem: str | None = None


class _Buffer:
    """Bytes read so far; ``pos`` is where the unconsumed part starts. Indices into ``buf`` stay valid
    across ``more`` (it only appends); ``drop`` may compact, so indices are taken again after it."""

    def __init__(self, stream: IO[bytes]):
        self.stream, self.buf, self.base, self.pos, self.eof = stream, b"", 0, 0, False

    def more(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(READ)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def drop(self, upto: int) -> None:
        """The bytes before buffer index ``upto`` are consumed (compacted now and then, not per record)."""
        self.pos = upto
        if upto > READ and upto * 2 > len(self.buf):
            self.base += upto
            self.buf = self.buf[upto:]
            self.pos = 0


_PARSERS = threading.local()


def parser(encoding: str | None = None) -> etree.XMLParser:
    """lxml's parser with entities, DTDs and the network off (one per thread and encoding)."""
    cache = _PARSERS.__dict__.setdefault("by_encoding", {})
    if encoding not in cache:
        cache[encoding] = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                          dtd_validation=False, huge_tree=True, encoding=encoding)
    return cache[encoding]


def prolog_end(head: bytes) -> int:
    """Where the root element may start in ``head``: after the XML declaration, comments, processing
    instructions, a DOCTYPE (with any internal subset) and blanks."""
    pos = 0
    while True:
        m = _PROLOG.match(head, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
    while head[pos:pos + 1].isspace():
        pos += 1
    return pos


def _cut_short(source_file: str, where: str, seen: int) -> ShardError:
    return ShardError(source_file, f"file ends {where} (cut short?): {seen} records seen; a partial file is never "
                                   "published, fetch it again")


def declared_encoding(head: bytes) -> str | None:
    m = _ENCODING.match(head)
    enc = m.group(1).decode().lower() if m else None
    return None if enc in (None, "utf-8", "utf8", "us-ascii", "ascii") else enc


def split(stream: IO[bytes], source_file: str, roots: dict[str, tuple[str, ...]],
          max_record_bytes: int = MAX_RECORD_BYTES) -> Iterator[tuple[str, Piece | str]]:
    """``("root", (name, encoding))`` first (the encoding the XML declaration names, None for UTF-8), then ``("piece", Piece)`` for each record or other content under the
    root, in file order. Raises ShardError for a file that is empty, has another root, or ends before
    the root's closing tag."""
    b = _Buffer(stream)
    # the prolog and the root's start tag
    while True:
        pos = prolog_end(b.buf)
        m = START_TAG.match(b.buf, pos) if b.buf[pos:pos + 1] == b"<" else None
        close = b.buf.find(b">", m.end()) if m else -1
        if close >= 0 or not b.more():
            break
    if not m or close < 0:
        raise ShardError(source_file, "file is empty or not XML; expected " + " or ".join(f"<{r}>" for r in roots))
    root = m.group(1).decode()
    if root not in roots:
        raise ShardError(source_file, f"root element is <{root}>; expected " + " or ".join(f"<{r}>" for r in roots))
    encoding = declared_encoding(b.buf[:pos])
    try:
        parser(encoding)
    except LookupError:
        raise ShardError(source_file, f"its XML declaration names the encoding {encoding!r}, which is not one; "
                                      "expected UTF-8 (or another real encoding)") from None
    yield "root", (root, encoding)
    if b.buf[close - 1:close] == b"/":  # <PubmedArticleSet/>: no records, and closed
        return
    tags = roots[root]
    end_root = f"</{root}".encode()
    starts = re.compile(rb"<(?:" + b"|".join(re.escape(t.encode()) for t in tags) + rb")[\s>/]")
    b.drop(close + 1)
    seen = 0
    while True:
        # the next markup; text before it is let go as it is read (a run of blanks may be huge), and the
        # first 200 bytes of any that is not blank are kept for its reject
        stray: tuple[int, bytes] | None = None
        while True:
            lt = b.buf.find(b"<", b.pos)
            if lt >= 0 and len(b.buf) - lt >= 2 + len(end_root):
                break
            if lt < 0:
                text = b.buf[b.pos:].strip()
                if text and stray is None:
                    stray = (b.base + b.pos, text[:200])
                b.drop(len(b.buf))
            if not b.more():
                break
        if lt < 0 or len(b.buf) - lt < 2:
            raise _cut_short(source_file, f"before </{root}>", seen)
        if lt > b.pos and stray is None:
            text = b.buf[b.pos:lt].strip()
            stray = (b.base + b.pos, text[:200]) if text else None
        if stray:
            yield "piece", Piece(None, stray[0], stray[1], "text outside any record")
        if b.buf.startswith(end_root, lt):
            return
        if b.buf.startswith(b"<!--", lt) or b.buf.startswith(b"<?", lt):
            closer = b"-->" if b.buf.startswith(b"<!--", lt) else b"?>"
            while (e := b.buf.find(closer, lt)) < 0:
                if not b.more():
                    raise _cut_short(source_file, "inside a comment", seen)
            b.drop(e + len(closer))
            continue
        while not (m := START_TAG.match(b.buf, lt)) or m.end() >= len(b.buf):
            if not b.more():
                raise _cut_short(source_file, f"before </{root}>", seen)
        tag = m.group(1).decode()
        offset = b.base + lt
        seen += 1
        while (gt := b.buf.find(b">", m.end())) < 0:
            if not b.more():
                raise _cut_short(source_file, f"inside <{tag}> at byte {offset}", seen)
        if b.buf[gt - 1:gt] == b"/":  # an empty element: <Tag ... />
            yield "piece", Piece(tag, offset, b.buf[lt:gt + 1])
            b.drop(gt + 1)
            continue
        end_tag = f"</{tag}>".encode()
        scan = m.end()
        while True:
            e = b.buf.find(end_tag, scan)
            n = starts.search(b.buf, m.end(), e if e >= 0 else len(b.buf))
            if n:  # another record starts before this one closes: this one is cut there
                yield "piece", Piece(tag, offset, b.buf[lt:n.start()], f"<{tag}> has no closing tag before the next record")
                b.drop(n.start())
                break
            if e >= 0:
                stop = e + len(end_tag)
                if stop - lt > max_record_bytes:
                    yield "piece", Piece(tag, offset, None, f"<{tag}> is larger than {max_record_bytes >> 20} MB")
                else:
                    yield "piece", Piece(tag, offset, b.buf[lt:stop])
                b.drop(stop)
                break
            if len(b.buf) - lt > max_record_bytes:  # skip it without holding it
                yield from _skip(b, tag, offset, end_tag, starts, max_record_bytes, source_file, seen)
                break
            scan = max(m.end(), len(b.buf) - len(end_tag))
            if not b.more():
                raise _cut_short(source_file, f"inside <{tag}> at byte {offset}", seen)


def _skip(b: _Buffer, tag: str, offset: int, end_tag: bytes, starts, limit: int, source_file: str,
          seen: int) -> Iterator[tuple[str, Piece]]:
    """Read past a record too large to hold, up to its closing tag or the next record's start."""
    b.drop(len(b.buf) - len(end_tag))
    while True:
        e = b.buf.find(end_tag, b.pos)
        n = starts.search(b.buf, b.pos)
        if n and (e < 0 or n.start() < e):
            b.drop(n.start())
            break
        if e >= 0:
            b.drop(e + len(end_tag))
            break
        b.drop(max(b.pos, len(b.buf) - len(end_tag)))
        if not b.more():
            raise _cut_short(source_file, f"inside <{tag}> at byte {offset}", seen)
    yield "piece", Piece(tag, offset, None, f"<{tag}> is larger than {limit >> 20} MB")


def parse_piece(piece: Piece, encoding: str | None = None):
    """The piece's element, parsed alone. Raises ``etree.XMLSyntaxError`` (or ``ValueError``)."""
    return etree.fromstring(piece.data, parser(encoding))
