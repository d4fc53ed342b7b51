"""Writing a model artifact (reading, staging and loading one is ``workers.inference.artifacts``).

``write_artifact`` saves model + tokenizer (safetensors only), computes ``model_id`` = name + a short
hash of the weights, config and data files, and writes ``pubmine.json`` last: its presence marks the
artifact complete, locally or on object storage.
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
import shutil
from pathlib import Path
from typing import Any

from pipeline.config import pubmine_home
from pipeline.storage import is_local, url_to_fs
from workers.inference.artifacts import ARTIFACT_FORMAT, MANIFEST, UNSAFE, content_hash


def write_artifact(model, tokenizer, out_url: str, name: str, meta: dict[str, Any],
                   storage_options: dict | None = None, extra=None) -> dict:
    """Save a trained model as an artifact at ``out_url`` (local path or any fsspec URL). ``extra``,
    if given, writes further files (the normalizer's dictionary and names) into the folder before it
    is hashed."""
    fs, out_path = url_to_fs(out_url, storage_options)
    local = is_local(fs)
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
        "format": ARTIFACT_FORMAT,
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
