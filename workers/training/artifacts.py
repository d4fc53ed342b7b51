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


def round_to_half(model) -> None:
    """Round the model's floating-point weights to what half-precision storage keeps (in place, still
    fp32 in memory), so that scores measured afterwards describe the weights ``write_artifact(...,
    half=True)`` stores. A fine-tuned encoder loses nothing measurable (the F1s in README's model
    releases section) and its file halves."""
    import torch

    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(torch.float16))


def manifest_text(manifest: dict) -> str:
    """``pubmine.json`` as every artifact writes it."""
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def rewrite_manifest(url: str, folder: str | Path, manifest: dict, storage_options: dict | None = None) -> None:
    """Replace an artifact's ``pubmine.json`` at ``url`` (and in its staged local copy ``folder``,
    when that is another place) by ``manifest``: what a recalibration changes; weights stay as they
    are, so their hash check still holds."""
    text = manifest_text(manifest)
    fs, path = url_to_fs(url, storage_options)
    with fs.open(posixpath.join(path, MANIFEST), "w") as f:
        f.write(text)
    if (Path(folder) / MANIFEST).read_text() != text:  # a staged copy of a remote artifact
        (Path(folder) / MANIFEST).write_text(text)


def write_artifact(model, tokenizer, out_url: str, name: str, meta: dict[str, Any],
                   storage_options: dict | None = None, extra=None, half: bool = False) -> dict:
    """Save a trained model as an artifact at ``out_url`` (local path or any fsspec URL). ``extra``,
    if given, writes further files (the normalizer's dictionary and names) into the folder before it
    is hashed. ``half`` stores the floating-point weights in fp16 (call ``round_to_half`` before
    scoring the model); the loader reads them back as fp32 and the run's precision applies as usual."""
    fs, out_path = url_to_fs(out_url, storage_options)
    local = is_local(fs)
    stage = Path(out_path) if local else Path(pubmine_home()) / "tmp" / f"write-{name}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    state = ({k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
             if half else None)
    model.save_pretrained(stage, safe_serialization=True, state_dict=state)
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
        "weights_dtype": "float16" if half else "float32",
        **meta,
    }
    (stage / MANIFEST).write_text(manifest_text(manifest))
    if not local:
        for f in sorted(stage.iterdir()):
            if f.name != MANIFEST:
                fs.put_file(str(f), posixpath.join(out_path, f.name))
        fs.put_file(str(stage / MANIFEST), posixpath.join(out_path, MANIFEST))  # last: marks completion
        shutil.rmtree(stage)
    return manifest
