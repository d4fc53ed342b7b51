"""Model releases: the default artifacts (NER, normalizer, relation model) published together at any
fsspec URL (a bucket, a folder, https) with an index, and fetched from one, so a first run needs no
training.

    <release>/release.json                  the index: format, model contract, and per model its id,
                                            task and every file's name, size and sha256 (written last)
    <release>/<kind>/<file>                 the artifact's files, pubmine.json of each last

A normalizer whose encoder is an unchanged base encoder (``minilm``, a hub name or folder) does not
carry a copy of its weights: the index says ``base`` for that file and ``pull`` regenerates it from the
installed base encoder (byte for byte: the same weights saved the same way), checked by its sha256
like every downloaded file. ``pull`` writes into a temporary folder, checks every file against the
index and the artifact against its ``model_id`` (``verify_hash``), and only then puts it in place: a
release that does not match is refused with the reason and nothing is installed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import posixpath
import shutil
import tempfile
import uuid
from pathlib import Path

from pipeline.config import DEFAULT_ARTIFACTS, artifact_url, default_artifact_dir
from pipeline.errors import ModelError
from pipeline.storage import url_to_fs

log = logging.getLogger("pubmine")

RELEASE_FORMAT = "pubmine-release/1"
INDEX = "release.json"
TASKS = {"ner": "ner", "normalizer": "normalizer", "relation": "re", "redoc": "re-doc"}


def model_contract() -> str:
    """What this code loads: the artifact format (a release of another format is refused on pull)."""
    from workers.inference.artifacts import ARTIFACT_FORMAT

    return ARTIFACT_FORMAT


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _base_weights(encoder: str, into: Path) -> Path | None:
    """The base encoder's weights saved as an artifact saves them (``model.safetensors`` in ``into``),
    or None when ``encoder`` names no base encoder that can be loaded here."""
    from workers.inference.artifacts import WEIGHTS
    from workers.training.loop import load_base_model

    try:
        load_base_model(encoder, "AutoModel").save_pretrained(into, safe_serialization=True)
    except Exception as exc:  # noqa: BLE001 - a fine-tuned or unknown encoder: its weights travel
        log.debug("no base encoder %r here: %s", encoder, exc)
        return None
    return into / WEIGHTS


def push(dest: str, storage_options: dict | None = None, sources: dict[str, str] | None = None) -> dict:
    """Publish the artifacts ``sources`` (kind -> URL; the three defaults when None) as a release at
    ``dest``. Returns the index."""
    from workers.inference.artifacts import MANIFEST, WEIGHTS, read_manifest, stage_artifact

    sources = sources or {kind: "default" for kind in DEFAULT_ARTIFACTS}
    fs, root = url_to_fs(dest, storage_options)
    models = {}
    for kind, url in sources.items():
        folder = stage_artifact(artifact_url(url, kind), storage_options)
        manifest = read_manifest(folder)
        if manifest.get("task") != TASKS[kind]:
            raise ModelError(f"{url} is a {manifest.get('task')!r} artifact; the release's {kind} must be task {TASKS[kind]!r}")
        base = None
        if kind == "normalizer" and "+" not in str(manifest.get("encoder", "+")):  # an unchanged base encoder
            with tempfile.TemporaryDirectory() as tmp:
                weights = _base_weights(manifest["encoder"], Path(tmp))
                if weights is not None and _sha256(weights) == _sha256(folder / WEIGHTS):
                    base = manifest["encoder"]
        files = []
        fs.makedirs(posixpath.join(root, kind), exist_ok=True)
        for f in sorted(folder.iterdir(), key=lambda p: (p.name == MANIFEST, p.name)):  # pubmine.json last
            entry = {"name": f.name, "size": f.stat().st_size, "sha256": _sha256(f)}
            if base and f.name == WEIGHTS:
                entry["base"] = base
            else:
                fs.put_file(str(f), posixpath.join(root, kind, f.name))
            files.append(entry)
        models[kind] = {"model_id": manifest["model_id"], "task": manifest["task"], "files": files}
        log.info("release %s: %s %s (%d files)", dest, kind, manifest["model_id"], len(files))
    index = {"format": RELEASE_FORMAT, "contract": model_contract(),
             "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "models": models}
    fs.pipe_file(posixpath.join(root, INDEX), (json.dumps(index, indent=2, sort_keys=True) + "\n").encode())
    return index


def read_index(src: str, storage_options: dict | None = None) -> dict:
    """A release's index; a ModelError saying why when there is none or it is not one this code loads."""
    fs, root = url_to_fs(src, storage_options)
    try:
        index = json.loads(fs.cat_file(posixpath.join(root, INDEX)))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"no model release at {src} ({INDEX} not found)") from exc
    if index.get("format") != RELEASE_FORMAT:
        raise ModelError(f"{src} is a release of format {index.get('format')!r}; this pubmine reads {RELEASE_FORMAT!r}")
    if index.get("contract") != model_contract():
        raise ModelError(f"the release at {src} holds models of contract {index.get('contract')!r}, this code loads "
                         f"{model_contract()!r}: refused (build the models with `make model`, or pull a release "
                         "made for this version)")
    return index


def pull(src: str, storage_options: dict | None = None, into: Path | None = None) -> dict[str, str]:
    """Fetch the release at ``src`` into the default artifact folders (``into``: another models
    folder). Every file is checked against the index, every artifact against its model_id; one that
    differs is refused with the reason and nothing of it is installed. Returns kind -> model_id."""
    from workers.inference.artifacts import read_manifest, verify_hash

    index = read_index(src, storage_options)
    fs, root = url_to_fs(src, storage_options)
    installed = {}
    for kind, model in sorted(index["models"].items()):
        if kind not in DEFAULT_ARTIFACTS or model.get("task") != TASKS[kind]:
            raise ModelError(f"the release at {src} lists {kind!r} (task {model.get('task')!r}); pubmine's default "
                             f"models are {', '.join(f'{k} (task {TASKS[k]})' for k in DEFAULT_ARTIFACTS)}")
        target = (into / DEFAULT_ARTIFACTS[kind]) if into else default_artifact_dir(kind)
        if (target / "pubmine.json").exists() and read_manifest(target).get("model_id") == model["model_id"]:
            log.info("%s %s is already in %s", kind, model["model_id"], target)
            installed[kind] = model["model_id"]
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".pull-{kind}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            for entry in model["files"]:
                local = tmp / entry["name"]
                if entry.get("base"):
                    with tempfile.TemporaryDirectory() as base_dir:
                        weights = _base_weights(entry["base"], Path(base_dir))
                        if weights is None:
                            raise ModelError(f"the release's {kind} uses the base encoder {entry['base']!r}, which "
                                             "cannot be loaded here (install it, or pull a release that carries the weights)")
                        shutil.move(str(weights), local)
                else:
                    fs.get_file(posixpath.join(root, kind, entry["name"]), str(local))
                size, digest = local.stat().st_size, _sha256(local)
                if (size, digest) != (entry["size"], entry["sha256"]):
                    raise ModelError(
                        f"{kind} file {entry['name']} from the release at {src} is {size} bytes with sha256 {digest[:16]}, "
                        f"the index says {entry['size']} bytes, {entry['sha256'][:16]}"
                        + (" (regenerated from the base encoder: a different version of it is installed)"
                           if entry.get("base") else " (damaged or changed after the release was made)")
                        + "; refused, nothing installed")
            manifest = read_manifest(tmp)
            if manifest.get("model_id") != model["model_id"]:
                raise ModelError(f"the release's {kind} pubmine.json names {manifest.get('model_id')!r}, its index "
                                 f"{model['model_id']!r}; refused, nothing installed")
            verify_hash(tmp, manifest, f"{src}/{kind}")
            if target.exists():
                old = target.parent / f".old-{kind}-{uuid.uuid4().hex[:8]}"
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        installed[kind] = model["model_id"]
        log.info("pulled %s %s into %s", kind, model["model_id"], target)
    return installed


def release_size(index: dict) -> tuple[int, int]:
    """(bytes a release stores, bytes its artifacts hold once pulled)."""
    files = [f for m in index["models"].values() for f in m["files"]]
    return sum(f["size"] for f in files if not f.get("base")), sum(f["size"] for f in files)
