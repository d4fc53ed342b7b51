"""The end of a run: what the snapshot holds (counted by Ray tasks from its own tables), the
invariants checked against the stages' results, the typed manifest built from them, the report page,
and the commit (manifest, then LATEST; retention; the extraction state no retained snapshot uses)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from collections import Counter
from dataclasses import dataclass, field

from pipeline import publish, reuse, runpage, schemas
from pipeline.config import RunConfig, to_dict
from pipeline.driver.extraction import Carried, Extracted
from pipeline.driver.models import Models
from pipeline.driver.session import gather
from pipeline.driver.text import Parsed, Resolved, TextTables
from pipeline.errors import PublishError
from pipeline.layout import MANIFEST, RUN_SCRATCH, SNAPSHOTS, run_state, snapshot_key
from pipeline.manifest import Counts, InputEntry, Manifest
from pipeline.storage import Store

log = logging.getLogger("pubmine")


@dataclass
class RunSummary:
    """What a run published, read from its manifest (``from_manifest``): the snapshot's counts as the
    manifest holds them, and what a person reads next to them."""

    run_id: str
    snapshot: str
    counts: Counts = field(default_factory=Counts)
    failed_files: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    model_id: str | None = None
    precision: str | None = None
    normalizer_version: str | None = None
    report: str | None = None          # the run report's URL (report.html in the snapshot)
    spotcheck_f1: float | None = None  # mention F1 on the gold spot-check set
    retrieval: dict = field(default_factory=dict)  # the retrieval index's counts (empty: index off)

    @property
    def wall_seconds(self) -> float:
        return self.timings.get("total", 0.0)

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "wall_seconds": self.wall_seconds}

    @classmethod
    def from_manifest(cls, m: Manifest, snapshot: str, timings: dict[str, float] | None = None) -> "RunSummary":
        return cls(
            run_id=m.run_id, snapshot=snapshot, counts=m.counts, failed_files=[i.source_file for i in m.failed_inputs],
            timings=timings if timings is not None else m.timings_s,
            model_id=m.models["ner"]["model_id"], precision=m.models["ner"]["precision"],
            normalizer_version=(m.models["normalizer"] or {}).get("dictionary_version"),
            report=f"{snapshot.rstrip('/')}/{m.report}" if m.report else None,
            spotcheck_f1=((m.spotcheck or {}).get("mentions") or {}).get("f1"), retrieval=dict(m.retrieval or {}))


def code_version() -> str:
    try:
        from importlib.metadata import version

        v = version("pubmine")
    except Exception:
        v = "unknown"
    head = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".git", "HEAD")
    try:
        ref = open(head).read().strip()
        if ref.startswith("ref:"):
            ref = open(os.path.join(os.path.dirname(head), ref.split(" ", 1)[1])).read().strip()
        return f"{v}+g{ref[:10]}"
    except OSError:
        return v


@dataclass(frozen=True)
class Held:
    """What the snapshot's own tables hold (``snapshot_counts``)."""

    entities_by_type: dict
    relations_by_type: dict
    entities_linked: int
    rejects_by_reason: dict
    rows: dict
    linked_by_type: dict = field(default_factory=dict)


def snapshot_counts(config: RunConfig, run_id: str, per_task: int = 64) -> Held:
    """What the snapshot holds, read from its own tables by Ray tasks (``publish.count_files``, a
    batch of files each), so the driver never reads a table whole. Every table exists, if empty,
    from here on."""
    import ray

    store = Store(config.store, config.storage_options)
    task = ray.remote(publish.count_files).options(max_retries=config.retries.publish)
    refs = []
    for name in schemas.SNAPSHOT_TABLES:
        publish.ensure_table(store, run_id, name)
        files = [f.rsplit("/", 1)[1] for f in store.parquet_files(*snapshot_key(run_id, name))]
        refs += [task.remote(config.store, config.storage_options, run_id, name, files[k : k + per_task])
                 for k in range(0, len(files), per_task)]
    totals = {"entities_by_type": Counter(), "relations_by_type": Counter(), "rejects_by_reason": Counter(),
              "linked_by_type": Counter(), "rows": Counter({name: 0 for name in schemas.SNAPSHOT_TABLES})}
    for part in gather(refs, "count snapshot", run_id):
        for key in totals:
            totals[key].update(part.get(key, {}))
    return Held(dict(sorted(totals["entities_by_type"].items())), dict(sorted(totals["relations_by_type"].items())),
                sum(totals["linked_by_type"].values()), dict(sorted(totals["rejects_by_reason"].items())),
                dict(totals["rows"]), dict(sorted(totals["linked_by_type"].items())))


def check_invariants(resolved: Resolved, text: TextTables, extracted: Extracted, carried: Carried, held: Held) -> None:
    """What every run must hold before it may commit; a PublishError naming the numbers otherwise
    (nothing is published, LATEST is untouched)."""
    broken = []
    live, published = resolved.counts.live, held.rows.get("documents", 0)
    if published != live or text.documents != live:
        broken.append(f"the snapshot holds {published} documents (publish wrote {text.documents}) but {live} are live")
    if extracted.documents + resolved.counts.reused != text.sentence_docs:
        broken.append(f"{extracted.documents} documents were extracted and {resolved.counts.reused} reused, but "
                      f"{text.sentence_docs} live documents have sentences (each must be one or the other, once)")
    if carried.served != text.sentence_docs:
        broken.append(f"extraction covers {carried.served} of the {text.sentence_docs} live documents with sentences "
                      "(a block's part is missing, so its entities would be too)")
    if broken:
        raise PublishError("the run's own counts disagree, so it is not published (LATEST is untouched): "
                           + "; ".join(broken) + ". Run again (finished parsing and extraction are kept); if it "
                           "repeats, report it with the run's log.")


def _delta(now: dict, before: dict) -> dict:
    return {k: now.get(k, 0) - before.get(k, 0) for k in sorted(set(now) | set(before)) if now.get(k, 0) != before.get(k, 0)}


@dataclass(frozen=True)
class Stages:
    """Every stage's result, as ``run`` collected them: what the manifest is built from."""

    models: Models
    precision: str
    xfp: str
    xkey: dict
    parsed: Parsed
    resolved: Resolved
    text: TextTables
    extracted: Extracted
    carried: Carried
    held: Held
    knowledge: dict
    spotcheck: dict | None
    retrieval: dict = dataclasses.field(default_factory=dict)


def build_manifest(config: RunConfig, run_id: str, s: Stages, timings: dict[str, float],
                   previous: Manifest | None) -> Manifest:
    """The snapshot's manifest, from the stages' results and what the snapshot holds: what the night
    did, against the previous manifest."""
    held, text, rc = s.held, s.text, s.resolved.counts
    by_type = held.entities_by_type
    before = previous.counts if previous else Counts()
    seconds = lambda stage: max(timings.get(stage, 0.0), 1e-9)
    return Manifest(
        run_id=run_id,
        published_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        code_version=code_version(),
        config=to_dict(config),
        models=s.models.manifest_entry(s.precision),
        extraction={"fingerprint": s.xfp, "key": s.xkey, "documents_reused": rc.reused,
                    "parts_copied": s.carried.copied, "parts_filtered": s.carried.filtered},
        inputs=tuple(InputEntry(sh.url, sh.source_file, sh.source_seq, sh.fingerprint,
                                "ok" if r and r["ok"] else "failed", bool(r and r.get("reused")), (r or {}).get("detail"))
                     for sh, r in zip(s.parsed.shards, s.parsed.results)),
        counts=Counts(documents=text.documents, passages=text.passages, sentences=text.sentences,
                      entities=sum(by_type.values()), entities_by_type=by_type, entities_linked=held.entities_linked,
                      linked_by_type=held.linked_by_type,
                      relations=sum(held.relations_by_type.values()), relations_by_type=held.relations_by_type,
                      rejects=text.rejects, rejects_by_reason=held.rejects_by_reason, failed_files=len(s.parsed.failed),
                      deleted=rc.deleted, superseded=rc.superseded),
        rows=held.rows,
        night={"previous": previous.run_id if previous else None, "added": rc.added, "revised": rc.revised,
               "unchanged": rc.unchanged, "deleted": rc.night_deleted, "documents_extracted": s.extracted.documents,
               "documents_reused": rc.reused, "text_tables_copied": text.copied_tables},
        changes={"previous": previous.run_id if previous else None,
                 "entities_by_type": _delta(by_type, before.entities_by_type),
                 "relations_by_type": _delta(held.relations_by_type, before.relations_by_type)},
        timings_s={k: round(v, 3) for k, v in timings.items()},
        throughput={"parse_documents_per_s": round(text.documents / seconds("parse"), 1),
                    "extract_documents_per_s": round(s.extracted.documents / seconds("extract"), 1),
                    "extract_sentences_per_s": round(text.extract_sentences / seconds("extract"), 1)},
        knowledge=s.knowledge or {},
        retrieval=s.retrieval or {},
        spotcheck=s.spotcheck,
        report=runpage.REPORT if config.report.enabled else None,
    )


def write_report(config: RunConfig, store: Store, manifest: Manifest, previous: Manifest | None) -> Manifest:
    """The nights before into the manifest's history (the previous manifest's, and this one), then
    ``report.html`` into the snapshot, before the manifest: a committed snapshot always has its page."""
    before = (list(previous.history) or [runpage.history_entry(previous)]) if previous else []
    manifest = manifest.with_history([*before, runpage.history_entry(manifest)][-config.report.history:])
    if manifest.report:
        store.write_text(runpage.render(manifest), *snapshot_key(manifest.run_id, manifest.report))
    return manifest


def commit(store: Store, manifest: Manifest, keep_snapshots: int, served_parts: frozenset[str] | None = None) -> None:
    """The manifest, then LATEST; then retention, and the extraction state no retained snapshot uses."""
    run_id = manifest.run_id
    publish.commit(store, run_id, manifest.to_json())
    removed = publish.apply_retention(store, keep_snapshots)
    if removed:
        log.info("retention removed snapshots %s", removed)
    xfp = manifest.fingerprint
    if xfp and served_parts is not None:
        keep = {publish.read_manifest(store, r).fingerprint for r in publish.complete_snapshots(store)}
        gone = reuse.collect_garbage(store, xfp, set(served_parts), keep, run_id)
        if any(gone.values()):
            log.info("extraction state removed: %s", gone)
    for folder in RUN_SCRATCH:  # done with: served/ and parts.parquet serve the next night
        store.remove(*run_state(run_id, folder))


def clean_stale_snapshots(store: Store, run_id: str) -> list[str]:
    """Snapshot folders without a manifest (a killed run's) are removed; LATEST never named them. The
    run lease (``pipeline.driver.lease``) makes sure no other run is writing one."""
    stale = [r for r in store.iter_dirs(SNAPSHOTS) if r != run_id and not store.exists(*snapshot_key(r, MANIFEST))]
    for r in stale:
        store.remove(*snapshot_key(r))
    return stale
