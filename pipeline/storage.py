"""One thin fsspec wrapper so a local folder and an S3 bucket behave the same.

Every write is whole-object: local files are written to a temporary name and renamed; an S3 PUT is
atomic by itself. So a reader never sees half a file, and a retried write overwrites instead of
duplicating.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import os
import posixpath
import uuid
from dataclasses import dataclass, field
from typing import IO, Any, Iterator

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def gunzip(fileobj: IO[bytes]) -> IO[bytes]:
    """A gunzipping reader over ``fileobj``: ISA-L's igzip when installed, else the standard library's."""
    try:
        from isal import igzip
    except ImportError:
        return gzip.GzipFile(fileobj=fileobj, mode="rb")
    return igzip.IGzipFile(fileobj=fileobj, mode="rb")


@functools.lru_cache(maxsize=1)
def _gzip_codec() -> str:
    """fsspec's name of the codec for .gz: ISA-L's igzip when it is installed (gunzip ~2.4x faster
    than zlib, a tenth of the parse stage on a baseline file), registered under its own name on first
    use, so fsspec's own "gzip" stays as it is for every other caller in the process."""
    try:
        from isal import igzip
    except ImportError:
        return "gzip"
    fsspec.compression.register_compression(
        "isal-gzip", lambda f, mode="rb", **kw: igzip.IGzipFile(fileobj=f, mode=mode, **kw), [], force=True)
    return "isal-gzip"


S3_RETRIES = 8  # attempts per S3 request (each with botocore's own few): about 90 s of outage is ridden out


def _retry_s3_outages(retries: int) -> None:
    """pubmine's S3 retry policy, applied in every process that opens an S3 URL (driver, Ray tasks,
    Beam workers): a refused or dropped connection (the server down or restarting) is retried like a
    timeout, with s3fs's backoff (0.1 s growing 1.7x to 15 s between attempts), ``retries`` times.
    s3fs keeps the count on the class, so it is set there; nothing else of s3fs changes."""
    import botocore.exceptions
    import s3fs.core

    if not issubclass(botocore.exceptions.ConnectionError, s3fs.core.S3_RETRYABLE_ERRORS):
        s3fs.core.add_retryable_error(botocore.exceptions.ConnectionError)
    s3fs.core.S3FileSystem.retries = int(retries)


def options_for(url: str, storage_options: dict | None) -> dict:
    """storage_options are keyed by protocol ({"s3": {"endpoint_url": ...}}); pick the URL's. For S3,
    pubmine reads ``retries`` itself (default ``S3_RETRIES``; see ``_retry_s3_outages``)."""
    protocol = fsspec.utils.get_protocol(url)
    options = dict((storage_options or {}).get(protocol, {}))
    if protocol in ("s3", "s3a"):
        _retry_s3_outages(options.pop("retries", S3_RETRIES))
    return options


def url_to_fs(url: str, storage_options: dict | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path) for a URL, with the options of its protocol."""
    fs, path = fsspec.core.url_to_fs(url, **options_for(url, storage_options))
    return fs, path


def open_url(url: str, storage_options: dict | None = None, mode: str = "rb"):
    """Open any URL; .gz/.bz2/.xz decompressed by name."""
    compression = _gzip_codec() if url.endswith(".gz") else "infer"
    return fsspec.open(url, mode, compression=compression, **options_for(url, storage_options))


def open_text(path: str | os.PathLike, newline: str | None = None) -> IO[str]:
    """A local text file (UTF-8), gunzipped when its name ends in .gz: the corpora and dictionaries."""
    path = os.fspath(path)
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline=newline)
    return open(path, encoding="utf-8", newline=newline)


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,))


@dataclass
class Store:
    """A folder at any fsspec URL; keys are '/'-separated paths below it."""

    url: str
    storage_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fs, self.root = url_to_fs(self.url, self.storage_options)  # storage_options per protocol
        if is_local(self.fs):
            self.root = os.path.abspath(self.root)
        self.root = self.root.rstrip("/")

    # -- paths
    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *[p.strip("/") for p in parts if p])

    def uri(self, *parts: str) -> str:
        """A URL other tools (DuckDB, pyarrow, Spark) can open: s3://bucket/... or a local path."""
        p = self.path(*parts)
        return p if is_local(self.fs) else f"{self._protocol()}://{p}"

    def _protocol(self) -> str:
        proto = self.fs.protocol
        return proto[0] if isinstance(proto, (tuple, list)) else proto

    # -- reads. Other processes (Ray workers, other runs) write into the store, so no read trusts a
    # listing the filesystem object cached earlier in this process (s3fs keeps one per prefix).
    def _fresh(self, path: str) -> str:
        """Forget what this process cached of ``path`` and everything below it (s3fs's own
        ``invalidate_cache`` drops a path and its parents only: a subfolder listed earlier, by this or
        another thread sharing the cached filesystem, would hide files a worker wrote into it since)."""
        self.fs.invalidate_cache(path)
        cache = getattr(self.fs, "dircache", None)
        if cache:
            below = path.rstrip("/") + "/"
            for key in [k for k in list(cache) if k.startswith(below)]:
                cache.pop(key, None)
        return path

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self._fresh(self.path(*parts)))

    def read_text(self, *parts: str) -> str:
        with self.fs.open(self.path(*parts), "rb") as f:
            return f.read().decode("utf-8")

    def read_json(self, *parts: str) -> Any:
        return json.loads(self.read_text(*parts))

    def glob(self, *parts: str) -> list[str]:
        """Paths matching a pattern below the root (``*`` within a path component)."""
        pattern = self.path(*parts)
        self._fresh(pattern.split("*", 1)[0].rstrip("/"))
        try:
            return sorted(self.fs.glob(pattern))
        except FileNotFoundError:
            return []

    def parquet_files(self, *parts: str) -> list[str]:
        p = self._fresh(self.path(*parts))
        try:
            found = self.fs.find(p)
        except FileNotFoundError:
            return []
        return sorted(f for f in found if f.endswith(".parquet"))

    def parquet_rows(self, *parts: str) -> int:
        """Row count of one parquet file, from its footer."""
        with self.fs.open(self.path(*parts), "rb") as f:
            return pq.ParquetFile(f).metadata.num_rows

    def read_table(self, *parts: str, columns: list[str] | None = None, schema: pa.Schema | None = None) -> pa.Table:
        """All parquet files under a folder (or one file) as one table of ``schema``."""
        p = self.path(*parts)
        files = [p] if p.endswith(".parquet") else self.parquet_files(*parts)
        if not files:
            if schema is None:
                raise FileNotFoundError(f"no parquet files under {self.uri(*parts)}")
            empty = schema.empty_table()
            return empty.select(columns) if columns else empty
        tables = []
        for f in files:
            with self.fs.open(f, "rb") as fh:
                tables.append(pq.read_table(fh, columns=columns, schema=schema))
        return pa.concat_tables(tables)

    def read_groups(self, values, *parts: str, key: str) -> pa.Table:
        """The rows of a ``write_grouped`` file whose integer column ``key`` is in ``values``, reading
        only their row groups (told apart by the column's statistics)."""
        wanted = sorted(set(int(v) for v in values))
        with self.fs.open(self.path(*parts), "rb") as fh:
            pf = pq.ParquetFile(fh)
            col = pf.schema_arrow.get_field_index(key)
            groups = []
            for i in range(pf.metadata.num_row_groups):
                stats = pf.metadata.row_group(i).column(col).statistics
                if stats is None or not stats.has_min_max or any(stats.min <= v <= stats.max for v in wanted):
                    groups.append(i)
            table = pf.read_row_groups(groups) if groups else pf.schema_arrow.empty_table()
        return table.filter(pc.is_in(table.column(key), value_set=pa.array(wanted, table.schema.field(key).type)))

    # -- writes (whole-object, overwrite on retry)
    def write_bytes(self, data: bytes, *parts: str) -> None:
        p = self.path(*parts)
        if is_local(self.fs):
            os.makedirs(os.path.dirname(p), exist_ok=True)
            tmp = f"{p}.tmp-{uuid.uuid4().hex[:8]}"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        else:
            self.fs.pipe_file(p, data)

    def create_bytes(self, data: bytes, *parts: str) -> bool:
        """Write ``data`` only where nothing is yet: False when something is. Local folders create the
        file exclusively; S3 asks for a conditional put (If-None-Match), which a server without it
        treats as a plain put, so a caller that must be alone reads its write back (``Lease``)."""
        p = self.path(*parts)
        if is_local(self.fs):
            os.makedirs(os.path.dirname(p), exist_ok=True)
            try:
                fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            return True
        if self.exists(*parts):
            return False
        try:
            self.fs.pipe_file(p, data, mode="create")
        except (FileExistsError, TypeError):  # TypeError: a filesystem without mode="create"
            if self.exists(*parts):
                return False
            self.fs.pipe_file(p, data)
        except OSError as exc:
            if "PreconditionFailed" in repr(exc) or "412" in str(exc):
                return False
            raise
        return True

    def write_text(self, text: str, *parts: str) -> None:
        self.write_bytes(text.encode("utf-8"), *parts)

    def write_json(self, obj: Any, *parts: str) -> None:
        self.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", *parts)

    def write_table(self, table: pa.Table, *parts: str) -> None:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        self.write_bytes(buf.getvalue(), *parts)

    def write_grouped(self, table: pa.Table, key: str, *parts: str) -> None:
        """``table`` sorted by its integer column ``key``, one row group per value, so that
        ``read_groups`` reads one value's rows (a partition's, a shard's) and none of the others."""
        table = table.sort_by(key)
        buf = io.BytesIO()
        with pq.ParquetWriter(buf, table.schema, compression="zstd") as writer:
            values = table.column(key).to_numpy()
            if not len(values):  # a file with no rows (a shard of DeleteCitations only): no row group
                writer.write_table(table)
            else:
                cuts = [0, *(np.flatnonzero(np.diff(values)) + 1).tolist(), len(values)]
                for a, b in zip(cuts, cuts[1:]):
                    writer.write_table(table.slice(a, b - a), row_group_size=b - a)
        self.write_bytes(buf.getvalue(), *parts)

    def copy(self, src: tuple[str, ...], dst: tuple[str, ...]) -> None:
        """Copy one object inside the store without passing its bytes through this process where the
        store can: S3 CopyObject (server side); locally a copy to a temporary name, then a rename."""
        a, b = self.path(*src), self.path(*dst)
        if is_local(self.fs):
            os.makedirs(os.path.dirname(b), exist_ok=True)
            tmp = f"{b}.tmp-{uuid.uuid4().hex[:8]}"
            self.fs.cp_file(a, tmp)
            os.replace(tmp, b)
        else:
            self.fs.copy(a, b)

    def remove(self, *parts: str) -> None:
        """Remove a file or a folder and everything below it; nothing there is not an error."""
        p = self._fresh(self.path(*parts))
        try:
            self.fs.rm(p, recursive=True)
        except FileNotFoundError:
            pass

    def iter_dirs(self, *parts: str) -> Iterator[str]:
        p = self.path(*parts)
        try:
            entries = self.fs.ls(p, detail=True, refresh=True)
        except FileNotFoundError:
            return
        for e in entries:
            if e.get("type") == "directory":
                yield posixpath.basename(e["name"].rstrip("/"))
