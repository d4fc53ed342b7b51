"""The driver: plan -> parse -> resolve -> extract -> publish, on Ray.

This is what ``pubmine run`` (and so ``ray job submit ... -- pubmine run``) executes. It starts Ray
in-process when no cluster is given and joins one when RAY_ADDRESS (or ray.address) is set. Parsing
runs as one Ray task per input file, each running the Beam pipeline in-process; extraction runs as a
Ray Data actor pool. Nothing is visible to readers until LATEST moves, which happens last.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from pipeline import publish, schemas
from pipeline.beam.run import group_shards, parse_shards, parsed_prefix
from pipeline.beam.transforms import ShardSpec
from pipeline.config import RunConfig, to_dict
from pipeline.errors import ModelError, PublishError
from pipeline.plan import list_inputs, plan_shards
from pipeline.resolve import resolve
from pipeline.storage import Store, url_to_fs

log = logging.getLogger("pubmine")


@dataclass
class RunSummary:
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

    @property
    def wall_seconds(self) -> float:
        return self.timings.get("total", 0.0)


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


def connect_ray(config: RunConfig) -> bool:
    """Join the configured cluster or start one in-process. Returns True when we started it."""
    import ray

    if ray.is_initialized():
        return False
    address = config.ray.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return False
    ray.init(address="local", num_cpus=config.ray.num_cpus, include_dashboard=False,
             log_to_driver=True, configure_logging=False)
    return True


def _parse_task(shards: list[ShardSpec], store_url: str, storage_options: dict, reuse: bool) -> list[dict]:
    """One Beam run over a group of input files; a file that cannot be parsed fails alone."""
    return parse_shards(shards, Store(store_url, storage_options), reuse=reuse)


def _model_manifest(url: str, storage_options: dict, what: str = "extract.model", task: str = "ner") -> dict:
    """An artifact's pubmine.json, read before any work starts: a missing or wrong model fails the run
    at once instead of after the parse."""
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


def _progress(iterable, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="file", disable=total == 0 or not sys.stderr.isatty(),
                dynamic_ncols=True)


def run(config: RunConfig) -> RunSummary:
    import ray

    t0 = time.time()
    timings: dict[str, float] = {}
    run_id = config.run_id or publish.new_run_id()
    store = Store(config.store, config.storage_options)
    model_url = config.extract.model_url()
    model_manifest = _model_manifest(model_url, config.storage_options)
    normalizer_url = config.extract.normalizer_url()
    normalizer_manifest = (_model_manifest(normalizer_url, config.storage_options, "extract.normalizer", "normalizer")
                           if normalizer_url else None)
    relation_urls = config.extract.relation_urls()
    relation_manifests = [_model_manifest(u, config.storage_options, "extract.relations", "re") for u in relation_urls]
    if relation_urls and not normalizer_url:
        raise ModelError("extract.relations needs extract.normalizer: document-level relations hold between linked "
                         "concepts (set extract.normalizer, or extract.relations=[])")

    mark = time.time()
    files = list_inputs(config.inputs, config.storage_options)
    shards = plan_shards(files, config.storage_options)
    timings["plan"] = time.time() - mark
    log.info("run %s: %d input files -> %s", run_id, len(shards), store.uri())

    started_ray = connect_ray(config)
    try:
        store.remove(*publish.snapshot_key(run_id))  # a re-run of the same run_id starts clean
        # -- 2 parse: one Ray task per group of input files (a big file alone, small ones packed together)
        mark = time.time()
        task = ray.remote(_parse_task).options(num_cpus=config.parse.num_cpus, max_retries=config.parse.max_retries)
        groups = group_shards([f.size for f in files], int(config.parse.group_mb * 1024 * 1024))
        refs = {task.remote([shards[i] for i in g], config.store, config.storage_options, config.parse.reuse): g
                for g in groups}
        results: list[dict | None] = [None] * len(shards)
        pending = list(refs)

        def _done():
            nonlocal pending
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                yield ready[0]

        for ref in _progress(_done(), len(groups), "parse"):
            for i, result in zip(refs[ref], ray.get(ref)):
                results[i] = result
        timings["parse"] = time.time() - mark

        ok = [(i, r) for i, r in enumerate(results) if r and r["ok"]]
        failed = [r for r in results if r and not r["ok"]]
        for r in failed:
            log.error("%s", r["error"])

        # -- 3 resolve: last file wins per PMID, DeleteCitation removes
        mark = time.time()
        doc_tables, del_tables = [], []
        for i, _ in ok:
            prefix = parsed_prefix(shards[i].fingerprint)
            doc_tables.append(store.read_table(*prefix, "documents.parquet",
                                               columns=["doc_id", "pmid", "source", "source_seq", "position"]))
            del_tables.append(store.read_table(*prefix, "deletions.parquet", schema=schemas.DELETIONS))
        resolution = resolve(doc_tables, del_tables)
        timings["resolve"] = time.time() - mark

        # -- publish the text tables of each shard (Ray tasks), keeping sentences in the object store
        mark = time.time()
        pub = ray.remote(publish.publish_parsed_shard)
        counts_refs, sentence_refs = [], []
        for k, (i, r) in enumerate(ok):
            # extraction blocks of about extract.batch_size sentences, each holding whole documents
            n_blocks = max(1, -(-int(r.get("rows", {}).get("sentences", 0)) // config.extract.batch_size))
            c, *blocks = pub.options(num_returns=1 + n_blocks, max_retries=config.parse.max_retries).remote(
                config.store, config.storage_options, run_id, shards[i].fingerprint, resolution.live[k], n_blocks)
            counts_refs.append(c)
            sentence_refs.extend(blocks)
        totals = Counter()
        for c in ray.get(counts_refs):
            totals.update(c)
        if failed:
            store.write_table(
                pa.Table.from_pylist([{"source_file": r["source_file"], "position": -1, "pmid": None,
                                       "reason": "unreadable file", "detail": r["detail"]} for r in failed],
                                     schema=schemas.REJECTS),
                *publish.snapshot_key(run_id, "rejects", publish.part_name(run_id, "failed-files")))
        timings["publish_text"] = time.time() - mark

        # -- 4 extract: tokenize -> NER actors -> document stage (linking, relations) over the live sentences
        mark = time.time()
        precision, extracted = None, Counter()
        if totals["sentences"]:
            precision, extracted = _extract(config, run_id, model_url, model_manifest["model_id"], normalizer_url,
                                            relation_urls, sentence_refs)
            if extracted["documents"] != totals["sentence_docs"]:
                raise PublishError(
                    f"extraction saw {extracted['documents']} document blocks for {totals['sentence_docs']} documents "
                    "with sentences: a document was split between blocks, so its links and relations would be "
                    "incomplete. Not publishing; this is a bug, please report it with the run's log.")
        timings["extract"] = time.time() - mark

        # -- 5 commit: manifest, then LATEST
        mark = time.time()
        publish.ensure_table(store, run_id, "entities")
        publish.ensure_table(store, run_id, "relations")
        ent_types = store.read_table(*publish.snapshot_key(run_id, "entities"), columns=["type"])
        by_type = dict(sorted(Counter(ent_types.column("type").to_pylist()).items()))
        timings["total"] = time.time() - t0
        manifest = {
            "run_id": run_id,
            "code_version": code_version(),
            "config": to_dict(config),
            "models": {
                "ner": {"url": model_url, "model_id": model_manifest.get("model_id"), "precision": precision},
                "normalizer": (None if normalizer_manifest is None else
                               {"url": normalizer_url, "model_id": normalizer_manifest["model_id"],
                                "dictionary_version": normalizer_manifest["version"]}),
                "relations": [{"url": u, "model_id": m["model_id"], "dataset": m.get("dataset")}
                              for u, m in zip(relation_urls, relation_manifests)],
            },
            "inputs": [
                {"url": s.url, "source_file": s.source_file, "source_seq": s.source_seq, "fingerprint": s.fingerprint,
                 "status": ("ok" if r and r["ok"] else "failed"),
                 "reused": bool(r and r.get("reused")), "detail": (r or {}).get("detail")}
                for s, r in zip(shards, results)
            ],
            "counts": {
                "documents": totals["documents"], "passages": totals["passages"], "sentences": totals["sentences"],
                "entities": sum(by_type.values()), "entities_by_type": by_type,
                "entities_linked": extracted["linked"], "relations": extracted["relations"],
                "rejects": totals["rejects"] + len(failed), "failed_files": len(failed),
                "deleted": resolution.deleted, "superseded": resolution.superseded,
            },
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
        }
        publish.commit(store, run_id, manifest)
        removed = publish.apply_retention(store, config.keep_snapshots)
        if removed:
            log.info("retention removed snapshots %s", removed)
        timings["commit"] = time.time() - mark
        timings["total"] = time.time() - t0
    except BaseException:
        # the snapshot is not committed: remove what was written, LATEST still names the previous one
        try:
            if not store.exists(*publish.snapshot_key(run_id, publish.MANIFEST)):
                store.remove(*publish.snapshot_key(run_id))
        except Exception:  # pragma: no cover - best effort on the way out
            pass
        raise
    finally:
        if started_ray:
            ray.shutdown()

    return RunSummary(
        run_id=run_id, snapshot=store.uri(*publish.snapshot_key(run_id)), documents=totals["documents"],
        sentences=totals["sentences"], entities_by_type=by_type, rejects=totals["rejects"] + len(failed),
        failed_files=[r["source_file"] for r in failed], deleted=resolution.deleted,
        superseded=resolution.superseded, timings=timings, model_id=model_manifest.get("model_id"),
        precision=precision, relations=extracted["relations"], linked=extracted["linked"],
        normalizer_version=normalizer_manifest["version"] if normalizer_manifest else None,
    )


def _extract(config: RunConfig, run_id: str, model_url: str, model_id: str, normalizer_url: str | None,
             relation_urls: tuple[str, ...], sentence_refs: list) -> tuple[str, Counter]:
    """Three Ray Data stages over blocks of whole documents, each block one batch: tokenizer actors
    (CPU), NER actors (the accelerator), document actors (linking and relations, which write the
    entities and relations parts). Returns the NER precision and the summed per-block counts."""
    import ray
    import ray.data

    from workers.ner import describe_precision
    from workers.stages import DocumentStage, NerPredictor, StageResources, Tokenize

    ex = config.extract
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = sys.stderr.isatty()
    ner = StageResources(ex.num_cpus_per_actor, ex.num_gpus_per_actor)
    doc = StageResources(ex.doc_num_cpus, ex.doc_num_gpus)
    common = dict(batch_size=None, batch_format="pyarrow")  # a batch is a block: documents stay whole
    ds = ray.data.from_arrow_refs(sentence_refs)
    ds = ds.map_batches(Tokenize, fn_constructor_kwargs=dict(model_url=model_url, storage_options=config.storage_options),
                        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=ex.tokenize_actors),
                        num_cpus=ex.tokenize_num_cpus, **common)
    ds = ds.map_batches(
        NerPredictor,
        fn_constructor_kwargs=dict(
            model_url=model_url, storage_options=config.storage_options, max_length=ex.max_length,
            stride=ex.stride, max_tokens_per_batch=ex.max_tokens_per_batch, precision=ex.precision,
            num_threads=ner.threads),
        compute=ray.data.ActorPoolStrategy(size=ex.num_actors), num_cpus=ner.num_cpus, num_gpus=ner.num_gpus, **common)
    ds = ds.map_batches(
        DocumentStage,
        fn_constructor_kwargs=dict(
            store_url=config.store, run_id=run_id, ner_model_id=model_id, storage_options=config.storage_options,
            normalizer_url=normalizer_url, relation_urls=relation_urls, precision=ex.precision,
            num_threads=doc.threads),
        compute=ray.data.ActorPoolStrategy(size=ex.doc_actors), num_cpus=doc.num_cpus, num_gpus=doc.num_gpus,
        memory=int(ex.doc_memory_gb * 2**30), **common)
    counts = Counter()
    for row in pa.concat_tables(ray.get(ds.to_arrow_refs())).to_pylist():
        counts.update({k: row[k] for k in ("documents", "entities", "linked", "relations")})
    return describe_precision(ex.precision, "cuda" if ner.num_gpus > 0 else "cpu"), counts


__all__ = ["run", "RunSummary", "connect_ray", "PublishError"]
