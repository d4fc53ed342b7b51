"""The text stages: plan the input files, parse them (Beam, in Ray tasks), resolve the live documents
(Ray tasks over doc_id partitions), and publish the text tables (a Ray task per parsed shard). Each
returns a frozen result for the next stage; the driver holds counts and names, never rows."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa

from pipeline import publish, resolve, reuse, schemas
from pipeline.beam.run import group_shards, parse_shards
from pipeline.beam.transforms import ShardSpec
from pipeline.config import RunConfig
from pipeline.driver.session import gather
from pipeline.layout import PARTS, failed_files_part, live_file, partition_groups, run_state, snapshot_key
from pipeline.manifest import Manifest, TextRows
from pipeline.plan import InputFile, list_inputs, plan_shards
from pipeline.storage import Store

log = logging.getLogger("pubmine")


@dataclass(frozen=True)
class Parsed:
    """Stage 2's result: the input files, one shard each, and each shard's outcome (its ``_SUCCESS``
    marker with ``ok`` True, or ``ok`` False and why), in file order."""

    files: tuple[InputFile, ...]
    shards: tuple[ShardSpec, ...]
    results: tuple[dict, ...]

    @property
    def ok(self) -> list[int]:
        """Indices of the shards that parsed."""
        return [i for i, r in enumerate(self.results) if r and r["ok"]]

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.results if r and not r["ok"]]

    @property
    def records(self) -> int:
        """Document records over the shards that parsed (every version, before resolution)."""
        return sum((self.results[i].get("rows") or {}).get("documents", 0) for i in self.ok)


def plan(config: RunConfig) -> tuple[list[InputFile], list[ShardSpec]]:
    """The input files (globs expanded) and one shard per file, in file order."""
    files = list_inputs(config.inputs, config.storage_options)
    return files, plan_shards(files, config.storage_options, config.parse.max_inflate_ratio)


def _parse_task(shards: list[ShardSpec], store_url: str, storage_options: dict, reuse: bool) -> list[dict]:
    """One Beam run over a group of input files; a file that cannot be parsed fails alone."""
    return parse_shards(shards, Store(store_url, storage_options), reuse=reuse)


def _parsed(results: list[dict]) -> dict:
    ok = [r for r in results if r["ok"]]
    return {"documents": sum((r.get("rows") or {}).get("documents", 0) for r in ok),
            "reused": sum(1 for r in ok if r.get("reused")), "failed": len(results) - len(ok)}


def parse(config: RunConfig, files: list[InputFile], shards: list[ShardSpec], run_id: str | None = None) -> Parsed:
    """Stage 2: one Ray task per group of input files (a big file alone, small ones packed together)."""
    import ray

    task = ray.remote(_parse_task).options(num_cpus=config.parse.num_cpus, max_retries=config.parse.max_retries)
    groups = group_shards([f.size for f in files], int(config.parse.group_mb * 1024 * 1024))
    refs = [task.remote([shards[i] for i in g], config.store, config.storage_options, config.parse.reuse) for g in groups]
    results: list[dict | None] = [None] * len(shards)
    for g, group_results in zip(groups, gather(refs, "parse", run_id, "file group", _parsed)):
        for i, result in zip(g, group_results):
            results[i] = result
    for r in results:
        if r and not r["ok"]:
            log.error("%s", r["error"])
    return Parsed(tuple(files), tuple(shards), tuple(results))


@dataclass(frozen=True)
class ResolveCounts:
    """What resolution decided, summed over its groups (``resolve.resolve_group``'s keys, each named:
    a key a group returns that is not a field here is a TypeError, never a silent 0)."""

    live: int = 0
    superseded: int = 0
    deleted: int = 0
    reused: int = 0          # live documents that a finished extracted part already serves
    added: int = 0           # the night's changes against the previous snapshot
    revised: int = 0
    unchanged: int = 0
    night_deleted: int = 0

    @classmethod
    def total(cls, parts: list[dict]) -> "ResolveCounts":
        summed = Counter()
        for p in parts:
            summed.update(p)
        return cls(**summed)


@dataclass(frozen=True)
class Resolved:
    """Stage 3's result, as counts: the live documents themselves are in the store
    (``state/runs/<run_id>/live/`` by shard, ``resolved/`` by partition), never in the driver."""

    run_id: str
    groups: tuple[tuple[int, ...], ...]      # the partitions each resolution task took
    counts: ResolveCounts

    @property
    def live_files(self) -> list[str]:
        return [live_file(g) for g in range(len(self.groups))]


def index_parts(config: RunConfig, run_id: str, xfp: str, parts: list[str], name: str, per_task: int = 256) -> None:
    """Index ``parts`` by partition for this run (Ray tasks of ``per_task`` parts; ``pipeline.resolve``)."""
    import ray

    task = ray.remote(resolve.index_parts).options(max_retries=config.retries.state)
    gather([task.remote(config.store, config.storage_options, run_id, xfp, parts[k : k + per_task],
                        f"{name}-{k // per_task:05d}.parquet") for k in range(0, len(parts), per_task)],
           f"index {name} parts", run_id)


def resolve_live(config: RunConfig, run_id: str, xfp: str, parsed: Parsed, previous: Manifest | None = None) -> Resolved:
    """Stage 3 (Ray tasks; ``pipeline.resolve``): each parsed shard's id columns by partition (once per
    shard), then one task per group of partitions: last file wins per PMID, DeleteCitation removes,
    each live text looked up in the extraction state of ``xfp`` (the previous run's served table, and
    the parts it does not know: a killed run's), the night's changes against ``previous``.
    Groups are sized by ``resolve.group_documents``; the driver holds counts and part keys only."""
    import ray

    url, so = config.store, config.storage_options
    store = Store(url, so)
    shards = parsed.shards
    keys = ray.remote(resolve.write_keys).options(max_retries=config.retries.state)
    gather([keys.remote(url, so, shards[i].fingerprint) for i in parsed.ok], "resolve: keys", run_id, "shard")
    previous_id = previous.run_id if previous else None
    same = previous is not None and previous.fingerprint == xfp
    known = set()
    if same and store.exists(*run_state(previous_id, PARTS)):
        known = set(store.read_table(*run_state(previous_id, PARTS)).column("part").to_pylist())
    index_parts(config, run_id, xfp, [p for p in reuse.finished_parts(store, xfp) if p not in known], "found")
    groups = partition_groups(-(-parsed.records // config.resolve.group_documents))
    task = ray.remote(resolve.resolve_group).options(max_retries=config.retries.state)
    listed = [(i, shards[i].fingerprint) for i in parsed.ok]
    counts = gather([task.remote(url, so, run_id, g, parts, listed, previous_id, same) for g, parts in enumerate(groups)],
                    "resolve", run_id, "group", lambda c: {k: c[k] for k in ("live", "reused") if k in c})
    return Resolved(run_id, tuple(tuple(g) for g in groups), ResolveCounts.total(counts))


@dataclass(frozen=True)
class TextTables(TextRows):
    """What publishing the text tables wrote (``publish.publish_parsed_shard``'s counts, summed)."""

    copied_tables: int = 0       # tables copied whole inside the store (every row live)
    sentence_docs: int = 0       # live documents with at least one sentence
    extract_sentences: int = 0   # sentences of the documents no finished part serves
    blocks: tuple[str, ...] = ()  # the blocks to extract, in order (never an empty one)


def publish_text(config: RunConfig, run_id: str, parsed: Parsed, resolved: Resolved) -> TextTables:
    """The live rows of each parsed shard into the snapshot (a Ray task per shard; a shard whose
    documents are all live is copied inside the store), and the rejects of files that failed; the
    sentences of whole documents that no finished part serves are written as blocks to extract."""
    import ray

    store = Store(config.store, config.storage_options)
    pub = ray.remote(publish.publish_parsed_shard).options(max_retries=config.retries.publish)
    refs = [pub.remote(config.store, config.storage_options, run_id, i, parsed.shards[i].fingerprint,
                       resolved.live_files, config.extract.batch_size) for i in parsed.ok]
    totals, blocks = Counter(), []
    for counts in gather(refs, "publish text", run_id, "shard",
                         lambda c: {"documents": c.get("documents", 0), "blocks": len(c["blocks"])}):
        blocks.extend(name for name, _ in counts.pop("blocks"))
        totals.update(counts)
    failed = parsed.failed
    if failed:
        store.write_table(
            pa.Table.from_pylist([{"source_file": r["source_file"], "position": -1, "pmid": None,
                                   "reason": "unreadable file", "detail": r["detail"]} for r in failed],
                                 schema=schemas.REJECTS),
            *snapshot_key(run_id, "rejects", failed_files_part(run_id)))
    totals["rejects"] += len(failed)
    return TextTables(**totals, blocks=tuple(blocks))


__all__ = ["Parsed", "ResolveCounts", "Resolved", "TextTables", "plan", "parse", "resolve_live", "publish_text",
           "index_parts"]
