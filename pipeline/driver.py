"""The driver: one function per stage, and ``run``, which calls them in order on Ray.

    check_models → plan → parse → resolve → publish_text → extract → carry → knowledge → commit

This is what ``pubmine run`` (and so ``ray job submit ... -- pubmine run``) executes. It starts Ray
in-process when no cluster is given and joins one when RAY_ADDRESS (or ray.address) is set. Parsing
runs as Ray tasks over groups of input files, each running the Beam pipeline in-process; publishing
the text tables is a Ray task per parsed shard; extraction is three Ray Data actor pools
(``workers.inference.stages``). Nothing is visible to readers until LATEST moves, which happens last.
Each stage returns its counters; the manifest is built from them and the run summary is read back
from the manifest, so the two never disagree.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from pipeline import knowledge, publish, resolve, reuse, runpage, schemas, spotcheck
from pipeline.beam.run import SENTENCES_VERSION, group_shards, parse_shards
from pipeline.beam.transforms import ShardSpec
from pipeline.config import RunConfig, to_dict
from pipeline.errors import (AccessDenied, ConfigError, ModelError, PublishError, PubmineError, StoreUnavailable,
                             is_access_denied, is_store_outage)
from pipeline.layout import MANIFEST, PARTS, new_run_id, part_name, partition_groups, run_state, snapshot_key
from pipeline.plan import InputFile, list_inputs, plan_shards
from pipeline.progress import Progress
from pipeline.storage import Store, url_to_fs

log = logging.getLogger("pubmine")


@dataclass
class RunSummary:
    """What a run published, read from its manifest (``from_manifest``)."""

    run_id: str
    snapshot: str
    documents: int = 0
    sentences: int = 0
    entities_by_type: dict = field(default_factory=dict)
    rejects: int = 0
    failed_files: list = field(default_factory=list)
    deleted: int = 0
    superseded: int = 0
    timings: dict = field(default_factory=dict)
    model_id: str | None = None
    precision: str | None = None
    relations: int = 0
    linked: int = 0
    normalizer_version: str | None = None
    report: str | None = None          # the run report's URL (report.html in the snapshot)
    spotcheck_f1: float | None = None  # mention F1 on the gold spot-check set

    @property
    def wall_seconds(self) -> float:
        return self.timings.get("total", 0.0)

    @classmethod
    def from_manifest(cls, manifest: dict, snapshot: str, timings: dict[str, float] | None = None) -> "RunSummary":
        counts, models = manifest["counts"], manifest["models"]
        return cls(
            run_id=manifest["run_id"], snapshot=snapshot, documents=counts["documents"], sentences=counts["sentences"],
            entities_by_type=counts["entities_by_type"], rejects=counts["rejects"],
            failed_files=[i["source_file"] for i in manifest["inputs"] if i["status"] == "failed"],
            deleted=counts["deleted"], superseded=counts["superseded"],
            timings=timings if timings is not None else manifest["timings_s"],
            model_id=models["ner"]["model_id"], precision=models["ner"]["precision"],
            relations=counts["relations"], linked=counts["entities_linked"],
            normalizer_version=(models["normalizer"] or {}).get("dictionary_version"),
            report=f"{snapshot.rstrip('/')}/{manifest['report']}" if manifest.get("report") else None,
            spotcheck_f1=((manifest.get("spotcheck") or {}).get("mentions") or {}).get("f1"))


def code_version() -> str:
    try:
        from importlib.metadata import version

        v = version("pubmine")
    except Exception:
        v = "unknown"
    head = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".git", "HEAD")
    try:
        ref = open(head).read().strip()
        if ref.startswith("ref:"):
            ref = open(os.path.join(os.path.dirname(head), ref.split(" ", 1)[1])).read().strip()
        return f"{v}+g{ref[:10]}"
    except OSError:
        return v


RAY_MARKER = "pubmine-driver"  # in an in-process Ray's session folder: the pid of the pubmine driver that started it


def _ray_temp_root() -> str:
    import tempfile

    return os.path.join(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir(), "ray")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphaned_ray(temp_root: str | None = None) -> list[int]:
    """Kill what is left of in-process Ray sessions whose pubmine driver is gone (a SIGKILLed driver
    leaves its Ray agents running, parentless). Only sessions a pubmine driver marked are touched: a
    cluster from `ray start` or another program's Ray is never reaped. Returns the pids killed."""
    import glob
    import signal

    if not os.path.isdir("/proc"):
        return []
    dead = []
    for marker in glob.glob(os.path.join(temp_root or _ray_temp_root(), "session_*", RAY_MARKER)):
        if os.path.islink(os.path.dirname(marker)):  # session_latest
            continue
        try:
            pid = int(open(marker).read().strip())
        except (OSError, ValueError):
            continue
        if not _alive(pid):
            dead.append((marker, os.path.basename(os.path.dirname(marker))))
    killed = []
    if dead:
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                cmdline = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if any(session in cmdline for _, session in dead):
                try:
                    os.kill(int(entry), signal.SIGKILL)
                    killed.append(int(entry))
                except OSError:
                    pass
    for marker, _ in dead:
        with contextlib.suppress(OSError):
            os.remove(marker)
    return killed


def _mark_session() -> None:
    """Name this driver in the session folder of the Ray it just started (see reap_orphaned_ray)."""
    try:
        from ray._private import worker

        session = worker._global_node.get_session_dir_path()
        with open(os.path.join(session, RAY_MARKER), "w") as f:
            f.write(str(os.getpid()))
    except Exception as exc:  # pragma: no cover - a Ray without this private API: nothing to reap later
        log.debug("could not mark the Ray session: %s", exc)


def connect_ray(config: RunConfig) -> bool:
    """Join the configured cluster or start one in-process. Returns True when we started it; then
    the leftovers of an earlier in-process Ray whose driver was killed are reaped first."""
    import ray

    if ray.is_initialized():
        return False
    address = config.ray.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return False
    reaped = reap_orphaned_ray()
    if reaped:
        log.warning("stopped %d Ray processes left by a killed pubmine run: %s", len(reaped), reaped)
    # the in-process Ray sends no usage report home (RAY_USAGE_STATS_ENABLED=1 to allow it)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=config.ray.num_cpus, include_dashboard=False,
             log_to_driver=True, configure_logging=False)
    _mark_session()
    return True


# -- models: read every artifact's manifest before any work starts


@dataclass(frozen=True)
class Models:
    ner_url: str
    ner: dict
    normalizer_url: str | None = None
    normalizer: dict | None = None
    relation_urls: tuple[str, ...] = ()
    relations: tuple[dict, ...] = ()

    def manifest_entry(self, precision: str | None) -> dict:
        return {
            "ner": {"url": self.ner_url, "model_id": self.ner.get("model_id"), "precision": precision},
            "normalizer": (None if self.normalizer is None else
                           {"url": self.normalizer_url, "model_id": self.normalizer["model_id"],
                            "dictionary_version": self.normalizer["version"]}),
            "relations": [{"url": u, "model_id": m["model_id"], "dataset": m.get("dataset")}
                          for u, m in zip(self.relation_urls, self.relations)],
        }


def _model_manifest(url: str, storage_options: dict, what: str = "extract.model", task: str = "ner") -> dict:
    """An artifact's pubmine.json: a missing or wrong model fails the run at once, not after the parse."""
    fs, path = url_to_fs(url, storage_options)
    try:
        manifest = json.loads(fs.cat_file(path.rstrip("/") + "/pubmine.json"))
    except FileNotFoundError as exc:
        raise ModelError(
            f"no artifact for {what} at {url} (pubmine.json not found). Run `make model` once to build the "
            "default models, `pubmine train`/`pubmine build-normalizer --output DIR` to make one, or set "
            f"{what} to an artifact URL" + (" ('none' to skip linking)." if task == "normalizer" else ".")
        ) from exc
    if manifest.get("task") != task:
        raise ModelError(f"{what} at {url} is a {manifest.get('task')!r} artifact; expected task {task!r}")
    return manifest


def check_models(config: RunConfig) -> Models:
    """The NER model, the normalizer and the relation models the run will load, checked up front."""
    ex, so = config.extract, config.storage_options
    normalizer_url, relation_urls = ex.normalizer_url(), ex.relation_urls()
    if relation_urls and not normalizer_url:
        raise ModelError("extract.relations needs extract.normalizer: document-level relations hold between linked "
                         "concepts (set extract.normalizer, or extract.relations=[])")
    return Models(
        ner_url=ex.model_url(), ner=_model_manifest(ex.model_url(), so),
        normalizer_url=normalizer_url,
        normalizer=_model_manifest(normalizer_url, so, "extract.normalizer", "normalizer") if normalizer_url else None,
        relation_urls=relation_urls,
        relations=tuple(_model_manifest(u, so, "extract.relations", "re") for u in relation_urls))


# -- 1 plan, 2 parse, 3 resolve


def plan(config: RunConfig) -> tuple[list[InputFile], list[ShardSpec]]:
    """The input files (globs expanded) and one shard per file, in file order."""
    files = list_inputs(config.inputs, config.storage_options)
    return files, plan_shards(files, config.storage_options, config.parse.max_inflate_ratio)


def _parse_task(shards: list[ShardSpec], store_url: str, storage_options: dict, reuse: bool) -> list[dict]:
    """One Beam run over a group of input files; a file that cannot be parsed fails alone."""
    return parse_shards(shards, Store(store_url, storage_options), reuse=reuse)


def gather(refs: list, stage: str, run_id: str | None, unit: str = "task", count=None) -> list:
    """``ray.get(refs)`` in their order, with progress as they finish (``count(result)``: the counts
    shown). A task's error is raised as soon as it arrives."""
    import ray

    index = {ref: i for i, ref in enumerate(refs)}
    out: list = [None] * len(refs)
    pending = list(refs)
    with Progress(stage, total=len(refs), unit=unit, run_id=run_id) as bar:
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
            for ref, result in zip(ready, ray.get(ready)):
                out[index[ref]] = result
                bar.update(1, **(count(result) if count else {}))
    return out


def _parsed(results: list[dict]) -> dict:
    ok = [r for r in results if r["ok"]]
    return {"documents": sum((r.get("rows") or {}).get("documents", 0) for r in ok),
            "reused": sum(1 for r in ok if r.get("reused")), "failed": len(results) - len(ok)}


def parse(config: RunConfig, files: list[InputFile], shards: list[ShardSpec], run_id: str | None = None) -> list[dict]:
    """Stage 2: one Ray task per group of input files (a big file alone, small ones packed together).
    Returns one result per shard: its ``_SUCCESS`` marker with ``ok`` True, or ``ok`` False and why."""
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
    return results


def parsed_ok(results: list[dict]) -> list[int]:
    """Indices of the shards that parsed."""
    return [i for i, r in enumerate(results) if r and r["ok"]]


@dataclass
class Resolved:
    """What resolution decided, as counts: the live documents themselves are in the store
    (``state/runs/<run_id>/live/`` by shard, ``resolved/`` by partition), never in the driver."""

    run_id: str
    groups: list[list[int]]      # the partitions each resolution task took
    counts: Counter              # live, superseded, deleted, reused, added, revised, unchanged, night_deleted

    @property
    def live_files(self) -> list[str]:
        return [f"{g:04d}.parquet" for g in range(len(self.groups))]

    superseded = property(lambda self: self.counts["superseded"])
    deleted = property(lambda self: self.counts["deleted"])
    live_count = property(lambda self: self.counts["live"])
    reused = property(lambda self: self.counts["reused"])


def _index(config: RunConfig, run_id: str, xfp: str, parts: list[str], name: str, per_task: int = 256) -> None:
    """Index ``parts`` by partition for this run (Ray tasks of ``per_task`` parts; ``pipeline.resolve``)."""
    import ray

    task = ray.remote(resolve.index_parts).options(max_retries=config.parse.max_retries)
    gather([task.remote(config.store, config.storage_options, run_id, xfp, parts[k : k + per_task], f"{name}-{k // per_task:05d}.parquet")
            for k in range(0, len(parts), per_task)], f"index {name} parts", run_id)


def resolve_live(config: RunConfig, run_id: str, xfp: str, shards: list[ShardSpec], results: list[dict], ok: list[int],
                 previous: dict | None = None) -> Resolved:
    """Stage 3 (Ray tasks; ``pipeline.resolve``): each parsed shard's id columns by partition (once per
    shard), then one task per group of partitions: last file wins per PMID, DeleteCitation removes,
    each live text looked up in the extraction state of ``xfp`` (the previous run's served table, and
    the parts it does not know: a killed run's), the night's changes against ``previous`` (its manifest).
    Groups are sized by ``resolve.group_documents``; the driver holds counts and part keys only."""
    import ray

    url, so = config.store, config.storage_options
    store = Store(url, so)
    keys = ray.remote(resolve.write_keys).options(max_retries=config.parse.max_retries)
    gather([keys.remote(url, so, shards[i].fingerprint) for i in ok], "resolve: keys", run_id, "shard")
    previous_id = (previous or {}).get("run_id")
    same = bool(previous) and (previous.get("extraction") or {}).get("fingerprint") == xfp
    known = set()
    if same and store.exists(*run_state(previous_id, PARTS)):
        known = set(store.read_table(*run_state(previous_id, PARTS)).column("part").to_pylist())
    _index(config, run_id, xfp, [p for p in reuse.finished_parts(store, xfp) if p not in known], "found")
    records = sum((results[i].get("rows") or {}).get("documents", 0) for i in ok)
    groups = partition_groups(-(-records // config.resolve.group_documents))
    task = ray.remote(resolve.resolve_group).options(max_retries=config.parse.max_retries)
    listed = [(i, shards[i].fingerprint) for i in ok]
    counts = Counter()
    for c in gather([task.remote(url, so, run_id, g, parts, listed, previous_id, same) for g, parts in enumerate(groups)],
                    "resolve", run_id, "group", lambda c: {k: c[k] for k in ("live", "reused") if k in c}):
        counts.update(c)
    return Resolved(run_id, groups, counts)


# -- extraction reuse: what the models must see this run


def ner_precision(config: RunConfig) -> str:
    """The precision ``extract.precision`` means where the NER actors run (a GPU when they ask for one)."""
    from workers.inference.device import describe_precision

    ex = config.extract
    return describe_precision(ex.precision, "cuda" if ex.num_gpus_per_actor > 0 else "cpu")


def extraction_fingerprint(config: RunConfig, models: Models) -> tuple[str, dict]:
    """The fingerprint of everything that decides extraction output (``pipeline.reuse``)."""
    ex = config.extract
    return reuse.fingerprint(
        {"ner": {"model_id": models.ner["model_id"], "calibration": models.ner.get("calibration"),
                 "case_features": models.ner.get("case_features")},
         "normalizer": None if models.normalizer is None else
         {"model_id": models.normalizer["model_id"], "threshold": models.normalizer.get("threshold"),
          "thresholds": models.normalizer.get("thresholds")},
         "relations": [{"model_id": m["model_id"], "window": (m.get("training") or {}).get("window"),
                        "max_length": (m.get("training") or {}).get("max_length")} for m in models.relations]},
        {"precision": ner_precision(config), "max_length": ex.max_length, "stride": ex.stride, "parser": SENTENCES_VERSION,
         "entities": "letter-or-digit"})  # sentences are its input


# -- publish the text tables, 4 extract


def publish_text(config: RunConfig, run_id: str, shards: list[ShardSpec], results: list[dict], ok: list[int],
                 resolved: Resolved) -> tuple[Counter, list[str]]:
    """The live rows of each parsed shard into the snapshot (a Ray task per shard; a shard whose
    documents are all live is copied inside the store), and the rejects of files that failed.
    Returns the row counts and the names of the blocks to extract (sentences of whole documents that
    no finished part serves, written under ``state/runs/<run>/extract/``; never an empty one)."""
    import ray

    store = Store(config.store, config.storage_options)
    pub = ray.remote(publish.publish_parsed_shard).options(max_retries=config.parse.max_retries)
    refs = [pub.remote(config.store, config.storage_options, run_id, i, shards[i].fingerprint, resolved.live_files,
                       config.extract.batch_size) for i in ok]
    totals, blocks = Counter(), []
    for counts in gather(refs, "publish text", run_id, "shard",
                         lambda c: {"documents": c.get("documents", 0), "blocks": len(c["blocks"])}):
        blocks.extend(name for name, _ in counts.pop("blocks"))
        totals.update(counts)
    failed = [r for r in results if r and not r["ok"]]
    if failed:
        store.write_table(
            pa.Table.from_pylist([{"source_file": r["source_file"], "position": -1, "pmid": None,
                                   "reason": "unreadable file", "detail": r["detail"]} for r in failed],
                                 schema=schemas.REJECTS),
            *snapshot_key(run_id, "rejects", part_name(run_id, "failed-files")))
    totals["rejects"] += len(failed)
    return totals, blocks


def extract(config: RunConfig, run_id: str, models: Models, xfp: str, blocks: list[str]) -> tuple[str, Counter, list[str]]:
    """Three Ray Data stages over the blocks (whole documents each, one batch each): tokenizer actors
    (CPU) that read each block from the store as they reach it, NER actors (the accelerator),
    document actors (linking and relations), which write each block's rows as an extracted part of
    ``xfp``. Streaming: the dataset is the list of block names, so the object store holds only the
    blocks in flight, whatever the corpus. Returns the NER precision, the summed per-block counts and
    the parts written."""
    import ray
    import ray.data

    from workers.inference.stages import DocumentStage, NerPredictor, StageResources, Tokenize

    ex = config.extract
    precision = ner_precision(config)
    if not blocks:
        return precision, Counter(), []
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the run's own bar (pipeline.progress) shows blocks and counts
    ner = StageResources(ex.num_cpus_per_actor, ex.num_gpus_per_actor)
    doc = StageResources(ex.doc_num_cpus, ex.doc_num_gpus)
    common = dict(batch_size=None, batch_format="pyarrow")  # a batch is a block: documents stay whole
    ds = ray.data.from_items([{"block": b} for b in blocks], override_num_blocks=len(blocks))  # a block a batch
    ds = ds.map_batches(Tokenize, fn_constructor_kwargs=dict(model_url=models.ner_url, storage_options=config.storage_options,
                                                             store_url=config.store, run_id=run_id),
                        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=ex.tokenize_actors),
                        num_cpus=ex.tokenize_num_cpus, **common)
    ds = ds.map_batches(
        NerPredictor,
        fn_constructor_kwargs=dict(
            model_url=models.ner_url, storage_options=config.storage_options, max_length=ex.max_length,
            stride=ex.stride, max_tokens_per_batch=ex.max_tokens_per_batch, precision=ex.precision,
            num_threads=ner.threads),
        compute=ray.data.ActorPoolStrategy(size=ex.num_actors), num_cpus=ner.num_cpus, num_gpus=ner.num_gpus, **common)
    ds = ds.map_batches(
        DocumentStage,
        fn_constructor_kwargs=dict(
            store_url=config.store, run_id=run_id, ner_model_id=models.ner["model_id"], xfp=xfp,
            storage_options=config.storage_options, normalizer_url=models.normalizer_url,
            relation_urls=models.relation_urls, precision=ex.precision, num_threads=doc.threads),
        compute=ray.data.ActorPoolStrategy(size=ex.doc_actors), num_cpus=doc.num_cpus, num_gpus=doc.num_gpus,
        memory=int(ex.doc_memory_gb * 2**30), **common)
    counts, parts = Counter(), []
    with Progress("extract", total=len(blocks), unit="block", run_id=run_id) as bar:
        # COUNTS rows, one per block (no empty block is sent), streamed back as the blocks finish
        for table in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
            for row in table.to_pylist():
                done = {k: row[k] for k in ("documents", "entities", "linked", "relations")}
                counts.update(done)
                parts.append(row["part"])
                bar.update(1, **done)
    return precision, counts, sorted(set(parts))


def carry(config: RunConfig, run_id: str, xfp: str, resolved: Resolved, new_parts: list[str],
          documents_with_sentences: int) -> tuple[Counter, set[str]]:
    """The snapshot's entities and relations from the extracted parts that serve its live documents.
    The new parts are indexed, each resolution group writes its served table (``served/``: the next
    night's lookup) and counts what each part serves; parts whose every document is served are
    copied inside the store, the others filtered (Ray tasks, 64 parts each). Fails, publishing
    nothing, when a live document with sentences has no finished part: its entities would be missing.
    Returns the counts and the parts served."""
    import ray

    url, so = config.store, config.storage_options
    store = Store(url, so)
    _index(config, run_id, xfp, new_parts, "new")
    serve = ray.remote(resolve.serve_group).options(max_retries=config.parse.max_retries)
    counts = pa.concat_tables(gather([serve.remote(url, so, run_id, g, parts) for g, parts in enumerate(resolved.groups)],
                                     "serve", run_id, "group"))
    served = int(pc.sum(counts.column("served")).as_py() or 0)
    if served != documents_with_sentences:
        raise PublishError(
            f"extraction covers {served} of the {documents_with_sentences} live documents with sentences "
            f"(state/extracted/{xfp}): a block's part is missing, so its entities would be too. Not publishing; "
            "run again (finished blocks are kept), and report it with the run's log if it repeats.")
    whole, filtered = reuse.carry_plan(counts)
    task = ray.remote(reuse.carry_parts).options(max_retries=config.parse.max_retries)
    carried = Counter()
    for result in gather([task.remote(url, so, run_id, xfp, whole[k : k + 64], []) for k in range(0, len(whole), 64)] +
                         [task.remote(url, so, run_id, xfp, [], filtered[k : k + 256]) for k in range(0, len(filtered), 256)],
                         "publish entities", run_id, "task", dict):
        carried.update(result)
    parts = sorted(whole + filtered)
    store.write_table(pa.table({"part": pa.array(parts, pa.string())}), *run_state(run_id, PARTS))
    return carried, set(parts)


def knowledge_tables(config: RunConfig, run_id: str, models: Models, previous_id: str | None) -> dict:
    """concepts, concept_relations, cooccurrences from the snapshot's tables (a Ray task running
    DuckDB; ``pipeline.knowledge``). Returns rows per table and the report's top lists."""
    import ray

    task = ray.remote(knowledge.build).options(max_retries=config.parse.max_retries, num_cpus=1)
    return gather([task.remote(config.store, config.storage_options, run_id, models.normalizer_url,
                               config.report.top_concepts, previous_id)], "knowledge tables", run_id, "task")[0]


def start_spotcheck(config: RunConfig, run_id: str, models: Models):
    """The gold spot-check as a Ray task (``pipeline.spotcheck``), or None when ``report.gold`` is none."""
    import ray

    gold = config.report.gold_url()
    if not gold:
        return None
    ex = config.extract
    task = ray.remote(spotcheck.run).options(max_retries=config.parse.max_retries, num_cpus=1)
    return task.remote(gold, config.report.gold_documents, config.storage_options, config.store, run_id, models.ner_url,
                       models.ner["model_id"], models.normalizer_url, models.relation_urls, ex.max_length, ex.stride,
                       ex.max_tokens_per_batch, ex.precision)


def finish_spotcheck(ref, run_id: str) -> dict | None:
    """The spot-check's scores; a spot-check that failed is reported in the report and the log, and
    never costs the night its snapshot (the gold set is a monitor, not data)."""
    if ref is None:
        return None
    try:
        return gather([ref], "spot-check", run_id, "task")[0]
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        if is_store_outage(exc):
            raise
        log.warning("the gold spot-check failed: %s", exc)
        return {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"}


# -- 5 commit


def snapshot_counts(config: RunConfig, run_id: str, per_task: int = 64) -> dict:
    """What the snapshot holds, read from its own tables by Ray tasks (``publish.count_files``, a
    batch of files each), so the driver never reads a table whole. Every table exists, if empty,
    from here on."""
    import ray

    store = Store(config.store, config.storage_options)
    task = ray.remote(publish.count_files).options(max_retries=config.parse.max_retries)
    refs = []
    for name in schemas.SNAPSHOT_TABLES:
        publish.ensure_table(store, run_id, name)
        files = [f.rsplit("/", 1)[1] for f in store.parquet_files(*snapshot_key(run_id, name))]
        refs += [task.remote(config.store, config.storage_options, run_id, name, files[k : k + per_task])
                 for k in range(0, len(files), per_task)]
    totals: dict = {"entities_by_type": Counter(), "relations_by_type": Counter(), "rejects_by_reason": Counter(),
                    "entities_linked": 0, "rows": Counter({name: 0 for name in schemas.SNAPSHOT_TABLES})}
    for part in gather(refs, "count snapshot", run_id):
        for key in ("entities_by_type", "relations_by_type", "rejects_by_reason", "rows"):
            totals[key].update(part.get(key, {}))
        totals["entities_linked"] += part.get("entities_linked", 0)
    return {"entities_by_type": dict(sorted(totals["entities_by_type"].items())),
            "relations_by_type": dict(sorted(totals["relations_by_type"].items())),
            "entities_linked": totals["entities_linked"],
            "rejects_by_reason": dict(sorted(totals["rejects_by_reason"].items())), "rows": dict(totals["rows"])}


def night_changes(previous_id: str | None, resolved: Resolved) -> dict:
    """Documents added / revised / unchanged / deleted against the previous snapshot (resolution's counts)."""
    c = resolved.counts
    return {"previous": previous_id, "added": c["added"], "revised": c["revised"], "unchanged": c["unchanged"],
            "deleted": c["night_deleted"]}


def _delta(now: dict, before: dict) -> dict:
    return {k: now.get(k, 0) - before.get(k, 0) for k in sorted(set(now) | set(before)) if now.get(k, 0) != before.get(k, 0)}


def build_manifest(config: RunConfig, run_id: str, models: Models, shards: list[ShardSpec], results: list[dict],
                   resolution: Resolved, text: Counter, extracted: Counter, precision: str | None,
                   held: dict, timings: dict[str, float], extraction: dict | None = None,
                   night: dict | None = None, previous: dict | None = None, knowledge_lists: dict | None = None,
                   spot: dict | None = None) -> dict:
    """The snapshot's ``_manifest.json``, from the stages' own counters and what the snapshot holds
    (``held``: ``snapshot_counts``): what the night did, against the previous manifest; the report's
    lists (``knowledge_lists``), the gold spot-check (``spot``) and the nights before (``history``)."""
    failed = sum(1 for r in results if r and not r["ok"])
    by_type = held["entities_by_type"]
    before = (previous or {}).get("counts", {})
    seconds = lambda stage: max(timings.get(stage, 0.0), 1e-9)
    return {
        "run_id": run_id,
        "published_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "config": to_dict(config),
        "models": models.manifest_entry(precision),
        "extraction": extraction or {},
        "inputs": [
            {"url": s.url, "source_file": s.source_file, "source_seq": s.source_seq, "fingerprint": s.fingerprint,
             "status": ("ok" if r and r["ok"] else "failed"),
             "reused": bool(r and r.get("reused")), "detail": (r or {}).get("detail")}
            for s, r in zip(shards, results)
        ],
        "counts": {
            "documents": text["documents"], "passages": text["passages"], "sentences": text["sentences"],
            "entities": sum(by_type.values()), "entities_by_type": by_type,
            "entities_linked": held["entities_linked"], "relations": sum(held["relations_by_type"].values()),
            "relations_by_type": held["relations_by_type"],
            "rejects": text["rejects"], "rejects_by_reason": held["rejects_by_reason"], "failed_files": failed,
            "deleted": resolution.deleted, "superseded": resolution.superseded,
        },
        "rows": held["rows"],
        "night": {**(night or {}), "documents_extracted": extracted["documents"],
                  "documents_reused": (extraction or {}).get("documents_reused", 0),
                  "text_tables_copied": text["copied_tables"]},
        "changes": {"previous": (previous or {}).get("run_id"),
                    "entities_by_type": _delta(by_type, before.get("entities_by_type", {})),
                    "relations_by_type": _delta(held["relations_by_type"], before.get("relations_by_type", {}))},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "throughput": {"parse_documents_per_s": round(text["documents"] / seconds("parse"), 1),
                       "extract_documents_per_s": round(extracted["documents"] / seconds("extract"), 1),
                       "extract_sentences_per_s": round(text["extract_sentences"] / seconds("extract"), 1)},
        "knowledge": knowledge_lists or {},
        "spotcheck": spot,
        "report": runpage.REPORT if config.report.enabled else None,
    }


def write_report(config: RunConfig, store: Store, manifest: dict, previous: dict | None) -> None:
    """The nights before into ``manifest["history"]`` (the previous manifest's, and this one), then
    ``report.html`` into the snapshot, before the manifest: a committed snapshot always has its page."""
    before = (previous.get("history") or [runpage.history_entry(previous)]) if previous else []
    manifest["history"] = [*before, runpage.history_entry(manifest)][-config.report.history:]
    if manifest.get("report"):
        store.write_text(runpage.render(manifest), *snapshot_key(manifest["run_id"], manifest["report"]))


def commit(store: Store, run_id: str, manifest: dict, keep_snapshots: int, served_parts: set[str] | None = None) -> None:
    """The manifest, then LATEST; then retention, and the extraction state no retained snapshot uses."""
    publish.commit(store, run_id, manifest)
    removed = publish.apply_retention(store, keep_snapshots)
    if removed:
        log.info("retention removed snapshots %s", removed)
    xfp = manifest.get("extraction", {}).get("fingerprint")
    if xfp and served_parts is not None:
        keep = {store.read_json(*snapshot_key(r, MANIFEST)).get("extraction", {}).get("fingerprint")
                for r in publish.complete_snapshots(store)}
        gone = reuse.collect_garbage(store, xfp, served_parts, keep, run_id)
        if any(gone.values()):
            log.info("extraction state removed: %s", gone)
    for folder in ("extract", "live", "resolved", "index"):  # done with: served/ and parts.parquet serve the next night
        store.remove(*run_state(run_id, folder))


def clean_stale_snapshots(store: Store, run_id: str) -> list[str]:
    """Snapshot folders without a manifest (a killed run's) are removed; LATEST never named them. One
    run at a time per store (the nightly schedule) is assumed."""
    stale = [r for r in store.iter_dirs("snapshots") if r != run_id and not store.exists(*snapshot_key(r, MANIFEST))]
    for r in stale:
        store.remove(*snapshot_key(r))
    return stale


def store_unavailable(config: RunConfig, store: Store, exc: BaseException) -> StoreUnavailable:
    """The one message of a run stopped by a store outage: which store, what failed, what to do."""
    from pipeline.storage import S3_RETRIES, options_for

    options = options_for(store.uri(), config.storage_options) if "://" in store.uri() else {}
    endpoint = options.get("endpoint_url") or (options.get("client_kwargs") or {}).get("endpoint_url")
    retries = ((config.storage_options or {}).get("s3") or {}).get("retries", S3_RETRIES)
    cause = next((line for line in str(exc).splitlines() if "connect" in line.lower()), str(exc).splitlines()[0]
                 if str(exc) else type(exc).__name__)
    return StoreUnavailable(
        f"the store {store.uri()}" + (f" (endpoint {endpoint})" if endpoint else "") +
        f" stopped answering: {cause.strip()[:300]}. Each request was tried {retries} times with backoff; the run "
        "stopped without publishing and LATEST is untouched. Parsed files and extracted parts already written are "
        "kept: run the same command again once the store answers (raise storage_options.s3.retries to ride out "
        "longer outages).")


@contextlib.contextmanager
def _timed(timings: dict[str, float], stage: str):
    mark = time.time()
    try:
        yield
    finally:
        timings[stage] = time.time() - mark


def access_denied(config: RunConfig, exc: BaseException) -> AccessDenied:
    """The one message of a run whose credentials were refused: where it reads and writes, where
    credentials come from, never the credentials themselves."""
    first = (str(exc).splitlines() or [type(exc).__name__])[0].strip()[:200] or type(exc).__name__
    models = [u for u in (config.extract.model, config.extract.normalizer) if u and "://" in u]
    return AccessDenied(
        f"access was refused ({type(exc).__name__}: {first}) while the run read its inputs "
        f"({', '.join(config.inputs)[:200]}){', its models (' + ', '.join(models) + ')' if models else ''} or wrote "
        f"the store {config.store}. Check the credentials pubmine finds for them and that they may read and write "
        "there: for S3 the standard chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE and "
        "~/.aws/credentials, an instance or pod role) or storage_options.s3.key / secret. Nothing was published; "
        "LATEST is untouched.")


def run(config: RunConfig) -> RunSummary:
    """Every stage, in order; on any failure the partial snapshot folder is removed and LATEST still
    names the previous snapshot. Documents extracted before under the same fingerprint are reused. A
    refused credential stops the run with ``AccessDenied``."""
    try:
        return _run(config)
    except PubmineError:
        raise
    except BaseException as exc:
        if is_access_denied(exc):
            raise access_denied(config, exc) from exc
        raise


def _run(config: RunConfig) -> RunSummary:
    t0 = time.time()
    timings: dict[str, float] = {}
    run_id = config.run_id or new_run_id()
    store = Store(config.store, config.storage_options)
    models = check_models(config)
    if config.report.gold_url():
        spotcheck.check_gold(config.report.gold_url(), config.storage_options)
    xfp, xkey = extraction_fingerprint(config, models)
    with _timed(timings, "plan"):
        files, shards = plan(config)
    log.info("run %s: %d input files -> %s", run_id, len(shards), store.uri())

    started_ray = connect_ray(config)
    try:
        stale = clean_stale_snapshots(store, run_id)
        if stale:
            log.warning("removed unfinished snapshot folders of killed runs: %s", stale)
        previous_id = publish.latest(store)
        if previous_id == run_id:
            raise ConfigError(f"run_id {run_id} is the snapshot LATEST names in {store.uri()}: re-running it would "
                              "delete what readers open now. Leave run_id unset (a new dated id) or choose another.")
        store.remove(*snapshot_key(run_id))  # a re-run of an unpublished run_id starts clean
        store.remove(*run_state(run_id))
        previous = store.read_json(*snapshot_key(previous_id, MANIFEST)) if previous_id else None
        with _timed(timings, "parse"):
            results = parse(config, files, shards, run_id)
        ok = parsed_ok(results)
        with _timed(timings, "resolve"):
            resolution = resolve_live(config, run_id, xfp, shards, results, ok, previous)
        with _timed(timings, "publish_text"):
            text, blocks = publish_text(config, run_id, shards, results, ok, resolution)
        with _timed(timings, "extract"):
            precision, extracted, new_parts = extract(config, run_id, models, xfp, blocks)
        with _timed(timings, "carry"):
            spot_ref = start_spotcheck(config, run_id, models)  # beside the carry: a task of its own
            carried, served_parts = carry(config, run_id, xfp, resolution, new_parts, text["sentence_docs"])
        with _timed(timings, "knowledge"):
            lists = knowledge_tables(config, run_id, models, previous_id)
        with _timed(timings, "spotcheck"):
            spot = finish_spotcheck(spot_ref, run_id)
        with _timed(timings, "commit"):
            held = snapshot_counts(config, run_id)
            night = night_changes(previous_id, resolution)
            timings["total"] = time.time() - t0
            extraction = {"fingerprint": xfp, "key": xkey, "documents_reused": resolution.reused,
                          "parts_copied": carried["copied"], "parts_filtered": carried["filtered"]}
            manifest = build_manifest(config, run_id, models, shards, results, resolution, text, extracted,
                                      precision, held, timings, extraction, night, previous, lists, spot)
            write_report(config, store, manifest, previous)
            commit(store, run_id, manifest, config.keep_snapshots, served_parts)
        timings["total"] = time.time() - t0
    except BaseException as exc:
        if is_store_outage(exc):  # nothing to clean up with: the next start removes the unfinished folder
            raise store_unavailable(config, store, exc) from exc
        # the snapshot is not committed: remove what was written, LATEST still names the previous one
        try:
            if not store.exists(*snapshot_key(run_id, MANIFEST)):
                store.remove(*snapshot_key(run_id))
        except Exception:  # pragma: no cover - best effort on the way out
            pass
        raise
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    return RunSummary.from_manifest(manifest, store.uri(*snapshot_key(run_id)), {k: round(v, 3) for k, v in timings.items()})


__all__ = ["run", "RunSummary", "connect_ray", "PublishError"]
