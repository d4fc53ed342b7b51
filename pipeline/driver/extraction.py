"""Extraction and what follows it: the three Ray Data actor pools over the blocks, the carry of the
extracted parts that serve the live documents into the snapshot, the knowledge tables, and the gold
spot-check (a Ray task beside the carry; its scores are reused while the gold set and the extraction
fingerprint are unchanged)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from pipeline import knowledge, resolve, reuse, spotcheck
from pipeline.config import RunConfig
from pipeline.driver.models import Models
from pipeline.driver.session import gather, without_harmless_ray_lines
from pipeline.driver.text import Resolved, index_parts
from pipeline.errors import is_store_outage, remote_pubmine_error
from pipeline.layout import PARTS, run_state
from pipeline.manifest import Manifest
from pipeline.progress import Progress
from pipeline.storage import Store, url_to_fs

log = logging.getLogger("pubmine")


@dataclass(frozen=True)
class Extracted:
    """What the models produced this run (the blocks' COUNTS rows, summed), and the parts written."""

    precision: str
    documents: int = 0
    entities: int = 0
    linked: int = 0
    relations: int = 0
    parts: tuple[str, ...] = ()


def extract(config: RunConfig, run_id: str, models: Models, xfp: str, precision: str, blocks: tuple[str, ...]) -> Extracted:
    """Three Ray Data stages over the blocks (whole documents each, one batch each): tokenizer actors
    (CPU) that read each block from the store as they reach it, NER actors (the accelerator) at
    ``precision`` (resolved where they run: ``ner_precision``), document actors (linking and
    relations), which write each block's rows as an extracted part of ``xfp``. Streaming: the dataset
    is the list of block names, so the object store holds only the blocks in flight."""
    import ray
    import ray.data

    from workers.inference.stages import DocumentStage, NerPredictor, StageResources, Tokenize

    ex = config.extract
    if not blocks:
        return Extracted(precision)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the run's own bar (pipeline.progress) shows blocks and counts
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "Progress bars disabled": we did
    ctx.print_on_execution_start = False  # the plan line is for Ray Data's developers; progress says where it is
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
            stride=ex.stride, max_tokens_per_batch=ex.max_tokens_per_batch, precision=precision,
            num_threads=ner.threads),
        compute=ray.data.ActorPoolStrategy(size=ex.num_actors), num_cpus=ner.num_cpus, num_gpus=ner.num_gpus, **common)
    ds = ds.map_batches(
        DocumentStage,
        fn_constructor_kwargs=dict(
            store_url=config.store, run_id=run_id, ner_model_id=models.ner["model_id"], xfp=xfp,
            storage_options=config.storage_options, normalizer_url=models.normalizer_url,
            relation_urls=models.relation_urls, precision=ex.precision, num_threads=doc.threads,
            keep_unlinked_from=ex.keep_unlinked_from),
        compute=ray.data.ActorPoolStrategy(size=ex.doc_actors), num_cpus=doc.num_cpus, num_gpus=doc.num_gpus,
        memory=int(ex.doc_memory_gb * 2**30), **common)
    counts, parts = Counter(), []
    with without_harmless_ray_lines(), Progress("extract", total=len(blocks), unit="block", run_id=run_id) as bar:
        # COUNTS rows, one per block (no empty block is sent), streamed back as the blocks finish
        try:
            for table in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
                for row in table.to_pylist():
                    done = {k: row[k] for k in ("documents", "entities", "linked", "relations")}
                    counts.update(done)
                    parts.append(row["part"])
                    bar.update(1, **done)
        except Exception as exc:
            err = remote_pubmine_error(exc)  # a model an actor refused: its ModelError, not Ray's traceback
            if err is None:
                raise
            raise err from exc
    return Extracted(precision, **counts, parts=tuple(sorted(set(parts))))


@dataclass(frozen=True)
class Carried:
    """The snapshot's entities and relations, carried from the parts that serve its live documents."""

    served: int                  # live documents a part serves
    copied: int = 0              # parts copied whole
    filtered: int = 0            # parts filtered to their live documents
    parts: frozenset[str] = frozenset()


def carry(config: RunConfig, run_id: str, xfp: str, resolved: Resolved, new_parts: tuple[str, ...]) -> Carried:
    """The new parts are indexed, each resolution group writes its served table (``served/``: the next
    night's lookup) and counts what each part serves; parts whose every document is served are copied
    inside the store, the others filtered (Ray tasks, 64 parts each)."""
    import ray

    url, so = config.store, config.storage_options
    store = Store(url, so)
    index_parts(config, run_id, xfp, list(new_parts), "new")
    serve = ray.remote(resolve.serve_group).options(max_retries=config.retries.state)
    counts = pa.concat_tables(gather([serve.remote(url, so, run_id, g, list(parts)) for g, parts in enumerate(resolved.groups)],
                                     "serve", run_id, "group"))
    served = int(pc.sum(counts.column("served")).as_py() or 0)
    whole, filtered = reuse.carry_plan(counts)
    task = ray.remote(reuse.carry_parts).options(max_retries=config.retries.publish)
    carried = Counter()
    for result in gather([task.remote(url, so, run_id, xfp, whole[k : k + 64], []) for k in range(0, len(whole), 64)] +
                         [task.remote(url, so, run_id, xfp, [], filtered[k : k + 256]) for k in range(0, len(filtered), 256)],
                         "publish entities", run_id, "task", dict):
        carried.update(result)
    parts = sorted(whole + filtered)
    store.write_table(pa.table({"part": pa.array(parts, pa.string())}), *run_state(run_id, PARTS))
    return Carried(served, carried["copied"], carried["filtered"], frozenset(parts))


def knowledge_tables(config: RunConfig, run_id: str, models: Models, previous_id: str | None) -> dict:
    """concepts, concept_relations, cooccurrences from the snapshot's tables (a Ray task running
    DuckDB; ``pipeline.knowledge``). Returns rows per table and the report's top lists."""
    import ray

    task = ray.remote(knowledge.build).options(max_retries=config.retries.knowledge, num_cpus=1)
    return gather([task.remote(config.store, config.storage_options, run_id, models.normalizer_url,
                               config.report.top_concepts, previous_id)], "knowledge tables", run_id, "task")[0]


def retrieval_index(config: RunConfig, run_id: str, previous_id: str | None) -> dict:
    """The snapshot's passage retrieval index (a Ray task: ``pipeline.ask.build_snapshot_index``),
    reusing the previous snapshot's for unchanged documents; its counts, or {} when index.enabled is off."""
    import ray

    from pipeline.ask import build_snapshot_index

    ix = config.index
    if not ix.enabled:
        return {}
    task = ray.remote(build_snapshot_index).options(max_retries=config.retries.knowledge, num_cpus=ix.num_cpus,
                                                    num_gpus=ix.num_gpus)
    precision = config.extract.precision if config.extract.precision != "int8" else "fp32"
    return gather([task.remote(config.store, config.storage_options, run_id, previous_id, ix.encoder, precision,
                               ix.num_cpus)],
                  "retrieval index", run_id, "task")[0]


def spotcheck_key(config: RunConfig, xfp: str) -> dict | None:
    """What decides the spot-check's scores: the gold file (its URL, size and modification time or
    ETag), how many of its documents, and the extraction fingerprint. None: no spot-check."""
    gold = config.report.gold_url()
    if not gold:
        return None
    fs, path = url_to_fs(gold, config.storage_options)
    info = fs.info(path)
    stamp = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    return {"gold": gold, "size": info.get("size"), "stamp": str(stamp), "documents": config.report.gold_documents,
            "fingerprint": xfp}


def start_spotcheck(config: RunConfig, run_id: str, models: Models, precision: str, key: dict | None,
                    previous: Manifest | None):
    """The gold spot-check as a Ray task (``pipeline.spotcheck``); the previous night's scores (a
    dict) when its key is this night's; None when ``report.gold`` is none."""
    import ray

    if key is None:
        return None
    before = (previous.spotcheck if previous else None) or {}
    if before.get("key") == key and "error" not in before:
        log.info("spot-check: the gold set and the extraction fingerprint are unchanged; its scores are reused")
        return {**before, "reused": True}
    ex = config.extract
    task = ray.remote(spotcheck.run).options(max_retries=config.retries.spotcheck, num_cpus=1)
    return task.remote(key["gold"], config.report.gold_documents, config.storage_options, config.store, run_id,
                       models.ner_url, models.ner["model_id"], models.normalizer_url, models.relation_urls, ex.max_length,
                       ex.stride, ex.max_tokens_per_batch, precision, ex.keep_unlinked_from)


def finish_spotcheck(ref, run_id: str, key: dict | None) -> dict | None:
    """The spot-check's scores, with its key; a spot-check that failed is reported in the report and
    the log, and never costs the night its snapshot (the gold set is a monitor, not data)."""
    if ref is None or isinstance(ref, dict):
        return ref
    try:
        return {**gather([ref], "spot-check", run_id, "task")[0], "key": key, "reused": False}
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        if is_store_outage(exc):
            raise
        log.warning("the gold spot-check failed: %s", exc)
        return {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                "key": key}
