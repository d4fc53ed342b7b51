"""Stage 1: list the inputs, fingerprint each, and turn them into shards.

An input is an fsspec URL (local path, file://, s3://, https://) or a glob of them. Each matched file
is one shard. Its fingerprint (name, size, etag or mtime, parser version) names its parsed output in
state/, so an unchanged file is parsed once across nightly runs.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass

from pipeline.beam.run import PARSER_VERSION
from pipeline.beam.transforms import ShardSpec
from pipeline.errors import ConfigError
from pipeline.parse.medline import sequence_from_name
from pipeline.parse.sources import INPUT_SUFFIXES
from pipeline.storage import is_local, url_to_fs



@dataclass(frozen=True)
class InputFile:
    url: str
    name: str
    size: int
    version: str   # etag or mtime: changes when the file changes


def _protocol_url(fs, path: str) -> str:
    if is_local(fs):
        return path
    proto = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    return path if "://" in path else f"{proto}://{path}"


def list_inputs(patterns: tuple[str, ...] | list[str], storage_options: dict | None = None) -> list[InputFile]:
    """Expand globs and folders into files; a pattern that matches nothing is an error."""
    found: dict[str, InputFile] = {}
    for pattern in patterns:
        fs, path = url_to_fs(pattern, storage_options)
        if any(ch in path for ch in "*?["):
            paths = fs.glob(path)
        elif fs.isdir(path):
            paths = [p for p in fs.find(path) if p.endswith(INPUT_SUFFIXES)]
        elif fs.exists(path):
            paths = [path]
        else:
            paths = []
        if not paths:
            raise ConfigError(
                f"input {pattern!r} matches no files; expected a MEDLINE XML file (.xml or .xml.gz), "
                "a PMC article (.nxml), a PMC OA package (.tar.gz), a folder of them, or a glob such as "
                "'data/pubmed25n*.xml.gz'"
            )
        for p in paths:
            info = fs.info(p)
            if info.get("type") == "directory":
                continue
            version = str(info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified") or "")
            url = _protocol_url(fs, p)
            found[url] = InputFile(url=url, name=posixpath.basename(p), size=int(info.get("size") or 0), version=version)
    return sorted(found.values(), key=lambda f: (sequence_from_name(f.name) or 0, f.name, f.url))


def fingerprint(f: InputFile) -> str:
    key = "\x1f".join([f.name, str(f.size), f.version, PARSER_VERSION])
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def plan_shards(files: list[InputFile], storage_options: dict | None = None,
                max_inflate_ratio: float = 100.0) -> list[ShardSpec]:
    """Files -> shards with their file order.

    Files named like NLM's (pubmed25n0001.xml.gz) take their sequence from the name, so an update
    file always outranks the baseline; other files take their position in the sorted input list.
    """
    shards = []
    for i, f in enumerate(files, start=1):
        seq = sequence_from_name(f.name)
        shards.append(ShardSpec(url=f.url, source_file=f.name, source_seq=seq if seq is not None else i,
                                fingerprint=fingerprint(f), storage_options=dict(storage_options or {}),
                                max_inflate_ratio=max_inflate_ratio))
    return shards
