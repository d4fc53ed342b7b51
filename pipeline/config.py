"""Configuration, a shared contract: the typed, frozen, validated ``RunConfig`` of a run, the loader
that turns YAML + ``--set a.b=value`` into it or into any config dataclass (the trainers' too), and the
local paths pubmine uses (``PUBMINE_HOME`` caches and default models, ``PUBMINE_DATA`` corpora).

An unknown key or a value of the wrong type is a ``ConfigError`` naming the full key path; secrets in
``storage_options`` are masked wherever a config is printed or recorded (``to_dict``).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")  # int8: the NER encoder quantized (CPU)


# the least calibrated NER score an entity that no dictionary links needs to be kept, per type (None:
# such spans are never kept; a type not named keeps them all). Chosen on dev by `python -m
# benchmarks.unlinked` (BioRED train's first 40 abstracts, which the NER model does not train on,
# linked by a normalizer without BioRED train's strings): the strictest cut within half a point of
# the best span F1. Unlinked spans of the full-budget NER were right there 0% of the time for
# chemicals, 8% for diseases, 26% for genes and 22% for variants. History: Gene and Variant 0.7 ->
# 0.85 at stop 36, when the gene and variant rules linked more of the right ones; on 2026-12-08, for
# the full-budget NER, Variant 0.85 -> 0.7 and Disease 0.95 -> none (benchmarks/results/entities.md)
KEEP_UNLINKED_FROM: dict[str, float | None] = {"Chemical": None, "Disease": None, "Gene": 0.85, "Variant": 0.7}


def pubmine_home() -> Path:
    """Where pubmine keeps its local caches (default model, staged model weights)."""
    return Path(os.environ.get("PUBMINE_HOME", Path.home() / ".cache" / "pubmine"))


def shared_data_dir() -> Path:
    """The benchmark corpora (BC5CDR, NCBI-disease, ...): $PUBMINE_DATA or ../shared/data beside the repo."""
    env = os.environ.get("PUBMINE_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "shared" / "data"


# the default artifacts (`make model` builds them, `pubmine models pull` fetches them), by kind
DEFAULT_ARTIFACTS = {"ner": "default-ner", "normalizer": "normalizer", "relation": "default-cid",
                     "redoc": "default-redoc", "qa": "default-qa"}


def default_artifact_dir(kind: str) -> Path:
    """Where the default artifact of ``kind`` lives: ~/.cache/pubmine/models/<name> (ner | normalizer |
    relation: BC5CDR CID per pair | redoc: BioRED's types, one pass per document | qa: the reader)."""
    return pubmine_home() / "models" / DEFAULT_ARTIFACTS[kind]


def artifact_url(value: str, kind: str) -> str:
    """An artifact setting as a URL: "default" is the default artifact of ``kind``, a default's own name
    ("default-redoc", "default-cid") is that default; anything else is itself. The one place defaults
    are resolved (run config, evaluate, train and build-normalizer outputs)."""
    if value == "default":
        return str(default_artifact_dir(kind))
    named = {name: k for k, name in DEFAULT_ARTIFACTS.items() if name.startswith("default-")}
    return str(default_artifact_dir(named[value])) if value in named else value


@dataclass(frozen=True)
class RayConfig:
    # None: use RAY_ADDRESS when set (as under `ray job submit`), else start Ray inside this process.
    address: str | None = None
    # CPUs for an in-process Ray; None lets Ray count the machine's cores.
    num_cpus: int | None = None

    def __post_init__(self) -> None:
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ConfigError(f"ray.num_cpus must be >= 1 (got {self.num_cpus})")


@dataclass(frozen=True)
class ParseConfig:
    num_cpus: float = 1.0        # per parse task (one Beam run over a group of input files)
    max_retries: int = 2         # Ray retries of a parse task lost to a dead worker or node
    reuse: bool = True           # reuse parsed shards in state/ whose input fingerprint is unchanged
    group_mb: float = 64.0       # small input files are packed into one parse task up to this much input
    # a gzip input that inflates to more than this many times its compressed size (past its first
    # 64 MB) is refused as a decompression bomb; MEDLINE and PMC files inflate 5-10x
    max_inflate_ratio: float = 100.0

    def __post_init__(self) -> None:
        if self.num_cpus <= 0:
            raise ConfigError(f"parse.num_cpus must be > 0 (got {self.num_cpus})")
        if self.max_retries < 0:
            raise ConfigError(f"parse.max_retries must be >= 0 (got {self.max_retries})")
        if self.group_mb <= 0:
            raise ConfigError(f"parse.group_mb must be > 0 (got {self.group_mb})")
        if self.max_inflate_ratio < 1:
            raise ConfigError(f"parse.max_inflate_ratio must be >= 1 (got {self.max_inflate_ratio})")


@dataclass(frozen=True)
class ResolveConfig:
    # documents per resolution task: the live set is resolved in groups of doc_id hash partitions
    # (pipeline.resolve), each task holding at most about this many records; the driver holds none
    group_documents: int = 2_000_000

    def __post_init__(self) -> None:
        if self.group_documents < 1:
            raise ConfigError(f"resolve.group_documents must be >= 1 (got {self.group_documents})")


@dataclass(frozen=True)
class RetryConfig:
    # Ray retries of a task lost with its worker or node, by stage kind (a parse task's are
    # parse.max_retries). Every task is idempotent: a retry overwrites the same files.
    state: int = 3          # resolution, indexing, serving: small reads and writes of the run's state
    publish: int = 3        # the snapshot's text tables and entities written or copied, and counted
    knowledge: int = 1      # the knowledge tables: one DuckDB task over the whole snapshot
    spotcheck: int = 0      # the gold spot-check: a monitor; a failure is reported, never costs the night

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 0:
                raise ConfigError(f"retries.{f.name} must be >= 0 (got {getattr(self, f.name)})")


@dataclass(frozen=True)
class ExtractConfig:
    model: str = "default"             # NER model artifact URL (file://, s3://, local path) or "default"
    normalizer: str = "default"        # normalizer artifact URL, "default", or "none" (concept_id stays null)
    relations: tuple[str, ...] = ()    # relation model URLs: "default-redoc" (BioRED's types, one pass per document), "default" = "default-cid" (BC5CDR CID, per pair)
    num_actors: int = 1                # NER actor pool size
    num_cpus_per_actor: float = 1.0    # torch threads = this rounded up
    num_gpus_per_actor: float = 0.0    # set to 1 on GPU nodes; the same config otherwise
    tokenize_actors: int = 1           # tokenizer actors (CPU): the model actors never wait on tokenization
    tokenize_num_cpus: float = 0.25
    doc_actors: int = 1                # document stage actors: normalizer + relation classifiers
    doc_num_cpus: float = 1.0
    doc_num_gpus: float = 0.0          # relation classifiers on a GPU when > 0
    doc_memory_gb: float = 4.0         # memory Ray reserves per document actor (normalizer, lexicon and the relation model: 3.3 GiB at peak over 3,000 abstracts; Ray Data warns under 1.25x that)
    batch_size: int = 2048             # sentences per extraction block (whole documents; one batch per block)
    max_tokens_per_batch: int = 8192   # token budget of one forward pass (dynamic padding)
    max_length: int = 256              # window length in word pieces; longer sentences are windowed
    stride: int = 64                   # overlap between windows, in word pieces
    precision: str = "auto"            # auto: bf16 on CPUs with AMX/AVX512-BF16 and on GPUs, else fp32
    # per type, the least NER score an unlinked entity needs to be kept (null: none kept; 0: all kept),
    # over KEEP_UNLINKED_FROM's; without a normalizer nothing is linked and every entity is kept
    keep_unlinked_from: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"extract.precision must be one of {PRECISIONS} (got {self.precision!r})")
        object.__setattr__(self, "keep_unlinked_from", {**KEEP_UNLINKED_FROM, **(self.keep_unlinked_from or {})})
        for kind, least in self.keep_unlinked_from.items():
            if least is not None and not (isinstance(least, (int, float)) and 0 <= least <= 1):
                raise ConfigError(f"extract.keep_unlinked_from.{kind} must be a score in 0..1 or null (no unlinked "
                                  f"{kind} entity kept), got {least!r}")
        if self.num_actors < 1:
            raise ConfigError(f"extract.num_actors must be >= 1 (got {self.num_actors})")
        if self.num_cpus_per_actor <= 0:
            raise ConfigError(f"extract.num_cpus_per_actor must be > 0 (got {self.num_cpus_per_actor})")
        if self.num_gpus_per_actor < 0 or self.doc_num_gpus < 0:
            raise ConfigError("extract.num_gpus_per_actor and extract.doc_num_gpus must be >= 0")
        if min(self.tokenize_actors, self.doc_actors) < 1 or min(self.tokenize_num_cpus, self.doc_num_cpus) <= 0:
            raise ConfigError("extract.tokenize_actors and extract.doc_actors must be >= 1, their num_cpus > 0")
        if self.batch_size < 1 or self.max_tokens_per_batch < 16:
            raise ConfigError("extract.batch_size must be >= 1 and extract.max_tokens_per_batch >= 16")
        if not 8 <= self.max_length <= 512:
            raise ConfigError(f"extract.max_length must be in 8..512 word pieces (got {self.max_length})")
        if not 0 <= self.stride < self.max_length // 2:
            raise ConfigError(
                f"extract.stride must be >= 0 and < max_length/2 = {self.max_length // 2} (got {self.stride})"
            )

    def model_url(self) -> str:
        return artifact_url(self.model, "ner")

    def normalizer_url(self) -> str | None:
        if self.normalizer == "none":
            return None
        return artifact_url(self.normalizer, "normalizer")

    def relation_urls(self) -> tuple[str, ...]:
        return tuple(artifact_url(u, "relation") for u in self.relations)


@dataclass(frozen=True)
class ReportConfig:
    # the run report (report.html in every snapshot, linked from _manifest.json)
    enabled: bool = True
    # PubTator file of gold abstracts scored with the night's models (fsspec URL; "none": no spot-check),
    # e.g. BC5CDR's test set: zip://CDR_Data/CDR.Corpus.v010516/CDR_TestSet.PubTator.txt::https://...
    gold: str = "none"
    gold_documents: int = 50           # the first N documents of it, the same every night
    top_concepts: int = 20             # concepts and relations listed in the report
    history: int = 30                  # nights of history carried from manifest to manifest (trend plots)

    def __post_init__(self) -> None:
        if self.gold_documents < 1 or self.top_concepts < 1 or self.history < 1:
            raise ConfigError("report.gold_documents, report.top_concepts and report.history must be >= 1")

    def gold_url(self) -> str | None:
        """The gold set to spot-check, None when there is none or no report to show it in."""
        return None if not self.enabled or self.gold in ("none", "") else self.gold


@dataclass(frozen=True)
class IndexConfig:
    # the passage retrieval index in every snapshot (pubmine ask): BM25 and dense embeddings; a
    # document whose text and encoder are unchanged since the previous snapshot is not embedded again
    enabled: bool = True
    encoder: str = "minilm"            # the dense retrieval encoder (a folder or hub name)
    num_cpus: float = 1.0              # the index task's CPUs (it embeds the new and revised documents)
    num_gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.num_cpus <= 0 or self.num_gpus < 0:
            raise ConfigError("index.num_cpus must be > 0 and index.num_gpus >= 0")


@dataclass(frozen=True)
class LeaseConfig:
    # one run per store at a time: a run holds <store>/state/LEASE while it works, renewed every
    # ttl_s/3 seconds; a second run refuses at once (wait: false) or waits for it (wait: true)
    ttl_s: float = 600.0          # a lease not renewed for this long is a killed run's: taken over
    wait: bool = False            # wait for the running run to finish instead of refusing
    wait_timeout_s: float = 86400.0  # how long to wait at most

    def __post_init__(self) -> None:
        if self.ttl_s < 3 or self.wait_timeout_s < 0:
            raise ConfigError(f"lease.ttl_s must be >= 3 and lease.wait_timeout_s >= 0 (got {self.ttl_s}, "
                              f"{self.wait_timeout_s})")


@dataclass(frozen=True)
class RunConfig:
    inputs: tuple[str, ...] = ()       # fsspec URLs or globs of MEDLINE XML (.xml, .xml.gz)
    store: str = "store"               # fsspec URL of the store root (local path, file://, s3://)
    run_id: str | None = None          # None: a UTC timestamp; set it to re-run a run idempotently
    keep_snapshots: int = 0            # 0 keeps every snapshot; n > 0 keeps the newest n
    # fsspec options per protocol, for the store, inputs and models: {s3: {endpoint_url: ...}}
    storage_options: dict = field(default_factory=dict)
    parse: ParseConfig = field(default_factory=ParseConfig)
    resolve: ResolveConfig = field(default_factory=ResolveConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    retries: RetryConfig = field(default_factory=RetryConfig)
    lease: LeaseConfig = field(default_factory=LeaseConfig)

    def __post_init__(self) -> None:
        if self.keep_snapshots < 0:
            raise ConfigError(f"keep_snapshots must be >= 0 (got {self.keep_snapshots})")
        if self.run_id is not None and not _is_safe_name(self.run_id):
            raise ConfigError(
                f"run_id {self.run_id!r} may hold only letters, digits, '-', '_', '.' (it names a folder)"
            )


def _is_safe_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "-_." for c in name) and name not in (".", "..")


# ----------------------------------------------------------------------------------------------
# Loading: dict -> dataclass, with errors that name the key


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], key)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping of {hint.__name__} fields, got {value!r}")
        return _build(hint, value, key + ".")
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list, got {type(value).__name__} {value!r}")
        return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {value!r}")
        return dict(value)
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 3e-3 as a string; accept what float() accepts
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r} must be a number, got {type(value).__name__} {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r} must be an integer, got {type(value).__name__} {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be a string, got {type(value).__name__} {value!r}")
        return str(value)
    return value


def _build(cls: type, data: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix + unknown[0]!r}; valid keys here: {', '.join(sorted(names))}"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except TypeError as exc:  # pragma: no cover - guarded by the checks above
        raise ConfigError(f"bad config under {prefix or 'top level'}: {exc}") from exc


def _set_path(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(item: str) -> tuple[str, Any]:
    """``a.b=value`` -> ("a.b", value) with the value typed as YAML would type it."""
    if "=" not in item:
        raise ConfigError(f"--set expects key=value (e.g. extract.num_actors=2), got {item!r}")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def load_dataclass(cls: type, path: str | os.PathLike | None, overrides: list[str] | tuple[str, ...] = ()):
    """Any config dataclass from a YAML file plus ``key=value`` overrides (used by train/evaluate)."""
    data = _read_yaml(path) if path is not None else {}
    for item in overrides:
        key, value = parse_override(item)
        _set_path(data, key, value)
    return _build(cls, data)


def _read_yaml(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        loaded = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    return loaded


def load_config(
    path: str | os.PathLike | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    inputs: list[str] | tuple[str, ...] = (),
    store: str | None = None,
) -> RunConfig:
    """Read YAML, apply ``--input``/``--store``/``--set``, return a validated ``RunConfig``."""
    data = _read_yaml(path) if path is not None else {}
    for item in overrides:
        key, value = parse_override(item)
        _set_path(data, key, value)
    if inputs:
        data["inputs"] = list(inputs)
    if store is not None:
        data["store"] = store
    config = _build(RunConfig, data)
    if not config.inputs:
        raise ConfigError("no inputs: give --input URL_OR_GLOB or set 'inputs' in the config file")
    return config


_SECRET_WORDS = frozenset({"secret", "password", "token", "credential", "credentials", "key"})


def _is_secret_key(key: str) -> bool:
    """key, secret, aws_secret_access_key, session_token -- but not max_tokens_per_batch."""
    return any(part in _SECRET_WORDS for part in key.lower().replace("-", "_").split("_"))


def _redact(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v) for v in value]
    if value is not None and _is_secret_key(key):
        return "***"
    return value


def to_dict(config: Any) -> dict:
    """The resolved config as plain data (for --dryrun and the run manifest), secrets masked."""
    out = dataclasses.asdict(config)
    out["inputs"] = list(out.get("inputs", ()))
    return _redact(out)
