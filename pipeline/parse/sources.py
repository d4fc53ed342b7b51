"""One entry point for every input form: decide from the file what it is and stream its records.

- MEDLINE/PubMed XML (``<PubmedArticleSet>``, legacy ``<MedlineCitationSet>``, ``<PubmedBookArticleSet>``)
- PMC JATS: one ``<article>`` (.nxml) or an efetch ``<pmc-articleset>``
- PMC OA bulk packages (.tar.gz / .tgz / .tar), streamed member by member

The root element is sniffed from the first bytes, so a misnamed file is still read correctly and a
file that is neither gets a clear error naming what was expected.
"""

from __future__ import annotations

from typing import IO, Iterator

from pipeline.errors import ShardError
from pipeline.parse.jats import PACKAGE_SUFFIXES, iter_jats, iter_package, sniff_root
from pipeline.parse.medline import iter_medline

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
    elif root in JATS_ROOTS:
        yield from iter_jats(stream, source_file)
    elif root is None:
        raise ShardError(source_file, "file is empty or not XML; expected MEDLINE XML (<PubmedArticleSet>) "
                                      "or PMC JATS (<article>, <pmc-articleset>)")
    else:
        raise ShardError(source_file, f"root element is <{root}>; expected MEDLINE <PubmedArticleSet> / "
                                      "<MedlineCitationSet> or PMC JATS <article> / <pmc-articleset>")
