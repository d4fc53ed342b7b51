"""The snapshot manifest (``_manifest.json``), typed: what a run published, written last by the driver,
read by the run summary, the report page, ``pubmine snapshots``, the next night's resolution, commit's
garbage collection and the report's history. ``Manifest.from_json`` reads any earlier manifest
(sections it lacks are empty); ``to_json`` writes the same keys the store has always held, plus
``schema_version``. A mistyped field is an AttributeError, not a silent 0.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from pipeline.schemas import SCHEMA_VERSION


@dataclass(frozen=True)
class InputEntry:
    """One input file of the run: where it came from, whether it parsed, whether its shard was reused."""

    url: str
    source_file: str
    source_seq: int
    fingerprint: str
    status: str                  # ok | failed
    reused: bool = False
    detail: str | None = None    # why it failed


@dataclass(frozen=True)
class TextRows:
    """Rows of the text tables: what publishing them wrote (the driver's ``TextTables``) is what the
    snapshot counts (``Counts``), and the invariants compare the two."""

    documents: int = 0
    passages: int = 0
    sentences: int = 0
    rejects: int = 0


@dataclass(frozen=True)
class Counts(TextRows):
    """What the snapshot holds (entities, relations and rejects by kind are read from its own tables)."""

    entities: int = 0
    entities_by_type: dict = field(default_factory=dict)
    entities_linked: int = 0
    linked_by_type: dict = field(default_factory=dict)
    relations: int = 0
    relations_by_type: dict = field(default_factory=dict)
    rejects_by_reason: dict = field(default_factory=dict)
    failed_files: int = 0
    deleted: int = 0
    superseded: int = 0


@dataclass(frozen=True)
class Manifest:
    run_id: str
    published_at: str | None = None
    code_version: str | None = None
    schema_version: int = SCHEMA_VERSION
    config: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)        # ner / normalizer / relations: url, model_id, precision
    extraction: dict = field(default_factory=dict)    # fingerprint, key, documents_reused, parts_copied/filtered
    inputs: tuple[InputEntry, ...] = ()
    counts: Counts = field(default_factory=Counts)
    rows: dict = field(default_factory=dict)          # table -> rows
    night: dict = field(default_factory=dict)         # added / revised / unchanged / deleted, extracted, reused
    changes: dict = field(default_factory=dict)       # against the previous snapshot
    timings_s: dict = field(default_factory=dict)     # every stage's seconds, and total
    throughput: dict = field(default_factory=dict)
    knowledge: dict = field(default_factory=dict)     # the report's top lists
    retrieval: dict = field(default_factory=dict)     # the retrieval index: documents, passages, embedded, reused, bytes, threads
    spotcheck: dict | None = None
    report: str | None = None                         # report.html's name in the snapshot
    history: tuple[dict, ...] = ()                    # the report's nights, this one last

    @property
    def fingerprint(self) -> str | None:
        """The extraction fingerprint the snapshot's entities and relations were made under."""
        return self.extraction.get("fingerprint")

    @property
    def failed_inputs(self) -> list[InputEntry]:
        return [i for i in self.inputs if i.status == "failed"]

    def with_history(self, history: list[dict]) -> "Manifest":
        return dataclasses.replace(self, history=tuple(history))

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["inputs"] = [dataclasses.asdict(i) for i in self.inputs]
        out["history"] = list(self.history)
        return out

    @classmethod
    def from_json(cls, data: dict) -> "Manifest":
        names = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in data.items() if k in names}
        counts = {k: v for k, v in (data.get("counts") or {}).items() if k in {f.name for f in dataclasses.fields(Counts)}}
        inputs = tuple(InputEntry(**{k: i.get(k) for k in ("url", "source_file", "source_seq", "fingerprint", "status",
                                                          "reused", "detail")}) for i in data.get("inputs") or [])
        return cls(**{**kept, "schema_version": data.get("schema_version", 0), "counts": Counts(**counts),
                      "inputs": inputs, "history": tuple(data.get("history") or ()),
                      **{k: data.get(k) or {} for k in ("config", "models", "extraction", "rows", "night", "changes",
                                                        "timings_s", "throughput", "knowledge")}})


__all__ = ["Manifest", "Counts", "TextRows", "InputEntry"]
