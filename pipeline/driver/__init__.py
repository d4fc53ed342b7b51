"""The driver: ``run`` calls the stages in order on Ray, each in its own module.

    check_models → lease → plan → parse → resolve → publish_text → extract → carry → knowledge → commit

- ``session``: join the cluster or start Ray in-process (reaping a killed driver's leftovers); ``gather``.
- ``models``: the artifacts' manifests, the NER precision (resolved where the actors run), the
  extraction fingerprint.
- ``text``: plan, parse (Beam in Ray tasks), resolve the live documents, publish the text tables.
- ``extraction``: the Ray Data actor pools, the carry of extracted parts, knowledge tables, spot-check.
- ``commit``: what the snapshot holds, the invariants, the typed manifest, the report, the commit.
- ``lease``: one run per store at a time. ``failures``: the messages of a run stopped from outside.

This is what ``pubmine run`` (and so ``ray job submit ... -- pubmine run``) executes. It starts Ray
in-process when no cluster is given and joins one when RAY_ADDRESS (or ray.address) is set. Nothing is
visible to readers until LATEST moves, which happens last. Each stage returns a frozen result; the
manifest is built from them and the run summary is read back from the manifest, so the two never
disagree.
"""

from __future__ import annotations

import contextlib
import logging
import time

from pipeline import publish, spotcheck
from pipeline.config import RunConfig
from pipeline.driver.commit import (RunSummary, Stages, build_manifest, check_invariants, clean_stale_snapshots,
                                    commit, snapshot_counts, write_report)
from pipeline.driver.extraction import (carry, extract, finish_spotcheck, knowledge_tables, retrieval_index, spotcheck_key,
                                        start_spotcheck)
from pipeline.driver.failures import access_denied, store_unavailable
from pipeline.driver.lease import Lease
from pipeline.driver.models import Models, check_models, extraction_fingerprint, ner_precision
from pipeline.driver.session import RAY_MARKER, connect_ray, gather, reap_orphaned_ray
from pipeline.driver.text import parse, plan, publish_text, resolve_live
from pipeline.errors import ConfigError, PublishError, PubmineError, is_access_denied, is_store_outage
from pipeline.layout import MANIFEST, new_run_id, run_state, snapshot_key
from pipeline.storage import Store

log = logging.getLogger("pubmine")


@contextlib.contextmanager
def _timed(timings: dict[str, float], stage: str):
    mark = time.time()
    try:
        yield
    finally:
        timings[stage] = time.time() - mark


def run(config: RunConfig) -> RunSummary:
    """Every stage, in order; on any failure the partial snapshot folder is removed and LATEST still
    names the previous snapshot. Documents extracted before under the same fingerprint are reused. A
    refused credential stops the run with ``AccessDenied``; another run in the store, ``RunInProgress``."""
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
    with _timed(timings, "plan"):
        files, shards = plan(config)
    log.info("run %s: %d input files -> %s", run_id, len(shards), store.uri())
    with _timed(timings, "lease"):
        try:
            lease = Lease(store, run_id, config.lease.ttl_s).acquire(config.lease.wait, config.lease.wait_timeout_s)
        except BaseException as exc:  # the lease is the run's first access to the store
            if is_store_outage(exc):
                raise store_unavailable(config, store, exc) from exc
            raise
    started_ray = False
    try:
        started_ray = connect_ray(config)
        with _timed(timings, "models"):
            precision = ner_precision(config, models.ner)
            xfp, xkey = extraction_fingerprint(config, models, precision)
        stale = clean_stale_snapshots(store, run_id)
        if stale:
            log.warning("removed unfinished snapshot folders of killed runs: %s", stale)
        previous_id = publish.latest(store)
        if previous_id == run_id:
            raise ConfigError(f"run_id {run_id} is the snapshot LATEST names in {store.uri()}: re-running it would "
                              "delete what readers open now. Leave run_id unset (a new dated id) or choose another.")
        store.remove(*snapshot_key(run_id))  # a re-run of an unpublished run_id starts clean
        store.remove(*run_state(run_id))
        previous = publish.read_manifest(store, previous_id) if previous_id else None
        with _timed(timings, "parse"):
            parsed = parse(config, files, shards, run_id)
        with _timed(timings, "resolve"):
            resolved = resolve_live(config, run_id, xfp, parsed, previous)
        with _timed(timings, "publish_text"):
            text = publish_text(config, run_id, parsed, resolved)
        with _timed(timings, "extract"):
            extracted = extract(config, run_id, models, xfp, precision, text.blocks)
        with _timed(timings, "carry"):
            key = spotcheck_key(config, xfp)
            spot_ref = start_spotcheck(config, run_id, models, precision, key, previous)  # a task beside the carry
            carried = carry(config, run_id, xfp, resolved, extracted.parts)
        with _timed(timings, "knowledge"):
            lists = knowledge_tables(config, run_id, models, previous_id)
        with _timed(timings, "index"):
            retrieval = retrieval_index(config, run_id, previous_id)
        with _timed(timings, "spotcheck"):
            spot = finish_spotcheck(spot_ref, run_id, key)
        with _timed(timings, "commit"):
            held = snapshot_counts(config, run_id)
            check_invariants(resolved, text, extracted, carried, held)
            stages = Stages(models, precision, xfp, xkey, parsed, resolved, text, extracted, carried, held, lists, spot,
                            retrieval)
            timings["total"] = time.time() - t0
            manifest = write_report(config, store, build_manifest(config, run_id, stages, timings, previous), previous)
            lease.check()
            commit(store, manifest, config.keep_snapshots, carried.parts)
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
        lease.release()
        if started_ray:
            import ray

            ray.shutdown()
    return RunSummary.from_manifest(manifest, store.uri(*snapshot_key(run_id)), {k: round(v, 3) for k, v in timings.items()})


__all__ = ["run", "RunSummary", "Models", "Lease", "connect_ray", "gather", "reap_orphaned_ray", "RAY_MARKER",
           "check_models", "plan", "parse", "resolve_live", "publish_text", "extract", "carry", "snapshot_counts",
           "check_invariants", "build_manifest", "commit", "extraction_fingerprint", "ner_precision", "PublishError"]
