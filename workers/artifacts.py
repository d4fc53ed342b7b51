"""Model artifacts: a folder at any fsspec URL with Hugging Face files plus ``pubmine.json``.

- ``write_artifact`` saves model + tokenizer (safetensors only), computes ``model_id`` = name + a
  short hash of the weights and config, and writes ``pubmine.json`` last (its presence marks the
  artifact complete).
- ``stage_artifact`` copies a remote artifact once per node into the local cache (under a file lock,
  so the actors of one node share one copy) and returns the local folder.
- ``load_token_classifier`` loads with ``local_files_only=True`` and never ``trust_remote_code``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import posixpath
import shutil
from pathlib import Path
from typing import Any

from pipeline.config import pubmine_home
from pipeline.errors import ModelError
from pipeline.storage import url_to_fs

MANIFEST = "pubmine.json"
REQUIRED = ("config.json", "model.safetensors", MANIFEST)
UNSAFE = ("pytorch_model.bin", "model.pt", "model.pkl")


# data files some artifacts carry beside the weights (a normalizer's dictionary and embedded names)
DATA_FILES = ("dictionary.parquet", "names.npz")


def content_hash(folder: str | os.PathLike) -> str:
    h = hashlib.sha256()
    names = ["config.json", "model.safetensors"] + [n for n in DATA_FILES if os.path.exists(os.path.join(folder, n))]
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:12]


def write_artifact(model, tokenizer, out_url: str, name: str, meta: dict[str, Any],
                   storage_options: dict | None = None, extra=None) -> dict:
    """Save a trained model as an artifact at ``out_url`` (local path or any fsspec URL). ``extra``,
    if given, writes further files (DATA_FILES) into the folder before it is hashed."""
    fs, out_path = url_to_fs(out_url, storage_options)
    local = "file" in (fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,))
    stage = Path(out_path) if local else Path(pubmine_home()) / "tmp" / f"write-{name}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    model.save_pretrained(stage, safe_serialization=True)
    tokenizer.save_pretrained(stage)
    for bad in UNSAFE:
        (stage / bad).unlink(missing_ok=True)
    if extra is not None:
        extra(stage)
    manifest = {
        "format": "pubmine-model/1",
        "name": name,
        "model_id": f"{name}-{content_hash(stage)}",
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **meta,
    }
    (stage / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if not local:
        for f in sorted(stage.iterdir()):
            if f.name != MANIFEST:
                fs.put_file(str(f), posixpath.join(out_path, f.name))
        fs.put_file(str(stage / MANIFEST), posixpath.join(out_path, MANIFEST))  # last: marks completion
        shutil.rmtree(stage)
    return manifest


def artifact_exists(url: str, storage_options: dict | None = None) -> bool:
    """Is there a complete artifact at ``url``? (pubmine.json is written last.)"""
    fs, path = url_to_fs(url, storage_options)
    return fs.exists(posixpath.join(path, MANIFEST))


def read_manifest(folder: str | os.PathLike) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise ModelError(
            f"{folder} is not a pubmine model artifact: {MANIFEST} is missing. Train one with "
            "`pubmine train --output DIR`, or point extract.model at an artifact folder."
        )
    return json.loads(path.read_text())


def _check_files(folder: Path, url: str) -> None:
    missing = [n for n in REQUIRED if not (folder / n).exists()]
    if missing:
        raise ModelError(
            f"model artifact {url} is incomplete: missing {', '.join(missing)}. pubmine loads "
            "safetensors weights only; re-export with save_pretrained(safe_serialization=True)."
        )


def stage_artifact(url: str, storage_options: dict | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return a local folder holding the artifact at ``url``; remote ones are copied once per node."""
    fs, path = url_to_fs(url, storage_options)
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if "file" in protocols:
        folder = Path(path)
        if not folder.is_dir():
            raise ModelError(f"model folder {url} does not exist; train it with `pubmine train` or fix extract.model")
        _check_files(folder, url)
        return folder
    try:
        manifest = json.loads(fs.cat_file(posixpath.join(path, MANIFEST)))
    except FileNotFoundError as exc:
        raise ModelError(f"no {MANIFEST} at {url}: not a pubmine model artifact (or not fully uploaded)") from exc
    cache = Path(cache_dir or pubmine_home() / "staged")
    target = cache / manifest["model_id"]
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{manifest['model_id']}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / MANIFEST).exists():
            tmp = cache / f"{manifest['model_id']}.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            for entry in fs.ls(path, detail=False):
                name = posixpath.basename(entry.rstrip("/"))
                if name in UNSAFE:
                    continue
                if fs.isfile(entry):
                    fs.get_file(entry, str(tmp / name))
            _check_files(tmp, url)
            digest = content_hash(tmp)
            if not manifest["model_id"].endswith(digest):
                shutil.rmtree(tmp, ignore_errors=True)
                raise ModelError(
                    f"model artifact {url} is corrupt or was changed after it was written: its weights hash to "
                    f"{digest} but pubmine.json names {manifest['model_id']}. Re-upload the artifact."
                )
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
    return target


def load_token_classifier(folder: str | os.PathLike, device: str = "cpu"):
    """(tokenizer, model, manifest) from a local artifact folder."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("task") != "ner":
        raise ModelError(f"model {folder} has task {manifest.get('task')!r}; the NER stage needs task 'ner'")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    if not tokenizer.is_fast:
        raise ModelError(f"model {folder} has no fast tokenizer (tokenizer.json); offsets need one")
    model = AutoModelForTokenClassification.from_pretrained(
        folder, local_files_only=True, trust_remote_code=False, use_safetensors=True)
    model.eval().to(device)
    return tokenizer, model, manifest
