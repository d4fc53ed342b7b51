"""The one training loop, its hyperparameters, and the base encoders it starts from.

NER, relation and normalizer-encoder training all run ``fit``: AdamW (no weight decay on biases and
LayerNorm weights) with linear warmup then linear decay, gradient clipping at 1.0, autocast at the
precision ``pick_device``/``resolve_precision`` choose (bf16 on GPUs and on CPUs with fast bf16), a
progress bar with the running loss, and a checkpoint after every epoch (model, optimizer, schedule,
Python and torch RNG states, and whatever the trainer keeps between epochs; written then renamed)
that a rerun of the same config resumes from exactly. What differs between trainers — how batches
are made, the loss, what happens after an epoch (dev scoring, early stopping) — is passed in.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from pipeline.config import PRECISIONS, pubmine_home
from pipeline.errors import ConfigError, ModelError
from pipeline.progress import Progress
from workers.inference.artifacts import MINILM, MINILM_NAME, resolve_base_model  # noqa: F401 (the trainers' names)
from workers.inference.device import INT8, autocast, pick_device, precision_name, resolve_precision



@dataclass(frozen=True)
class Hyperparams:
    """What every trainer takes: BioBERT's fine-tuning protocol by default. Task configs extend it."""

    max_length: int = 128              # word pieces per example
    batch_size: int = 32
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1          # share of the steps with a rising learning rate, then linear decay to 0
    epochs: int = 3
    seed: int = 1
    precision: str = "auto"            # auto: bf16 on GPUs and on CPUs with fast bf16 (AVX512-BF16/AMX), else fp32
    num_threads: int = 0               # 0: torch's default

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ConfigError("epochs and batch_size must be >= 1 and learning_rate > 0")
        if not 0 <= self.warmup_ratio <= 1 or self.weight_decay < 0 or self.max_length < 8:
            raise ConfigError("warmup_ratio must be in [0, 1], weight_decay >= 0 and max_length >= 8")
        if self.precision not in PRECISIONS or self.precision == INT8:
            raise ConfigError(f"training precision must be one of {tuple(p for p in PRECISIONS if p != INT8)} "
                              f"(got {self.precision!r}; int8 is an inference precision: extract.precision)")


def base_model_label(name: str) -> str:
    """What an artifact's manifest records as its base model."""
    return MINILM_NAME if name == MINILM else name


def load_base_tokenizer(name: str):
    """The base model's tokenizer, from a local folder or the hub (its cache first); a clear error
    when neither has it, or when it is not a fast tokenizer (character offsets need one)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(name))
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"base model {name!r} could not be loaded ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            "Give a local folder with config.json and safetensors weights, or a hub name this machine can reach "
            "(or that is in its hub cache when HF_HUB_OFFLINE=1)") from exc
    if not tokenizer.is_fast:
        raise ModelError(f"base model {name} has no fast tokenizer; pubmine needs character offsets")
    return tokenizer


def load_base_model(name: str, auto_class: str, **kwargs):
    """A base encoder with a (new) head: safetensors weights only; a head of another size is replaced."""
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights 0%..100%" for a 90 MB file says nothing
    kwargs.setdefault("dtype", torch.float32)  # train in fp32 even from an fp16-stored artifact
    return getattr(transformers, auto_class).from_pretrained(resolve_base_model(name), use_safetensors=True, **kwargs)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare(cfg: Hyperparams) -> str:
    """Seeds, torch threads, and the device, before any model is made (its head's init draws from the
    seeded RNG). Returns the device."""
    set_seed(cfg.seed)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    return pick_device()


def length_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Length-bucketed batches in random order (less padding, still shuffled): shuffle, sort each
    chunk of 50 batches by length, cut, shuffle the batches."""
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    chunk = batch_size * 50
    batches = []
    for i in range(0, len(idx), chunk):
        part = sorted(idx[i : i + chunk], key=lambda j: lengths[j])
        batches.extend(part[k : k + batch_size] for k in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def optimizer_and_schedule(model, cfg: Hyperparams, total_steps: int,
                           learning_rates: Callable[[str], float] | None = None):
    """AdamW over the trainable parameters, no weight decay on biases and LayerNorm weights, linear
    warmup (``cfg.warmup_ratio``) then linear decay to 0. ``learning_rates(name)``, when given, is
    each parameter's rate (new heads may learn faster than the encoder); else ``cfg.learning_rate``."""
    from transformers import get_linear_schedule_with_warmup

    no_decay = ("bias", "LayerNorm.weight")
    rate = learning_rates or (lambda _: cfg.learning_rate)
    groups: dict[tuple[float, float], list] = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            decay = 0.0 if any(k in n for k in no_decay) else cfg.weight_decay
            groups.setdefault((rate(n), decay), []).append(p)
    params = [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
    optim = torch.optim.AdamW(params, lr=cfg.learning_rate)
    return optim, get_linear_schedule_with_warmup(optim, int(cfg.warmup_ratio * total_steps), total_steps)


def checkpoint_path(name: str) -> Path:
    return pubmine_home() / "checkpoints" / name / "checkpoint.pt"


def _config_key(cfg) -> str:
    """A config dataclass, or a dict of what else decides the run, as one canonical string."""
    return json.dumps(cfg if isinstance(cfg, dict) else cfg.__dict__, sort_keys=True, default=list)


@dataclass
class EpochEnd:
    """What the loop tells a trainer after each epoch."""

    epoch: int              # 1-based
    train_loss: float       # mean over the epoch's batches
    seconds: float          # since this process started training
    state: dict             # the trainer's own state: saved in the checkpoint, restored on resume


def fit(model, cfg: Hyperparams, *, name: str, device: str, steps_per_epoch: int,
        make_batches: Callable[[random.Random], list], batch_loss: Callable[[Any], torch.Tensor],
        after_epoch: Callable[[EpochEnd], bool] | None = None, key: Any = None,
        progress: bool | str = True, log=print, learning_rates: Callable[[str], float] | None = None) -> dict:
    """Train ``model`` (already on ``device``) for ``cfg.epochs`` epochs; returns the trainer state
    (``history`` and whatever ``after_epoch`` kept). ``make_batches(rng)`` gives one epoch's batches,
    ``batch_loss(batch)`` a batch's loss (run under autocast), ``after_epoch`` may score, keep state in
    ``EpochEnd.state`` and return True to stop early. The checkpoint is keyed by ``key`` (default: the
    config), so a changed config never resumes an old run; ``clear_checkpoint(name)`` once the
    artifact is written."""
    rng = random.Random(cfg.seed)
    optim, sched = optimizer_and_schedule(model, cfg, steps_per_epoch * cfg.epochs, learning_rates)
    dtype = resolve_precision(cfg.precision, device)
    ckpt, ckpt_key = checkpoint_path(name), _config_key(key if key is not None else cfg)
    state: dict = {"epoch": 0, "history": []}
    saved = _load_checkpoint(ckpt, ckpt_key, model, optim, sched, rng, device)
    if saved is not None:
        state = saved
        log(f"resuming {name} from epoch {state['epoch']} (checkpoint {ckpt})")
    started = time.time()
    for epoch in range(state["epoch"], cfg.epochs):
        model.train()
        batches = make_batches(rng)
        losses = []
        with Progress(f"train epoch {epoch + 1}/{cfg.epochs}", total=len(batches), unit="batch", run_id=name,
                      mode=progress) as bar:
            for batch in batches:
                with autocast(device, dtype):
                    loss = batch_loss(batch)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optim.step()
                sched.step()
                optim.zero_grad(set_to_none=True)
                losses.append(loss.item())
                bar.show(loss=float(np.mean(losses[-50:])))
                bar.update(1)
        state["epoch"] = epoch + 1
        end = EpochEnd(epoch + 1, float(np.mean(losses)) if losses else float("nan"), round(time.time() - started, 1), state)
        stop = after_epoch(end) if after_epoch else False
        if after_epoch is None:
            state["history"].append({"epoch": end.epoch, "train_loss": end.train_loss, "seconds": end.seconds})
            log(f"epoch {end.epoch}: train loss {end.train_loss:.4f}")
        _save_checkpoint(ckpt, ckpt_key, model, optim, sched, rng, state)
        if stop:
            break
    state["seconds"] = round(time.time() - started, 1)
    state["precision"] = precision_name(dtype)
    return state


def clear_checkpoint(name: str) -> None:
    checkpoint_path(name).unlink(missing_ok=True)


def _save_checkpoint(path: Path, key: str, model, optim, sched, rng: random.Random, state: dict) -> None:
    """Everything needed to resume after an epoch (written to a temporary name, then renamed, so a
    kill mid-write leaves the previous checkpoint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"config": key, "model": model.state_dict(), "optim": optim.state_dict(), "sched": sched.state_dict(),
                "rng": rng.getstate(), "torch_rng": torch.get_rng_state(), "state": state}, tmp)
    tmp.replace(path)


def _load_checkpoint(path: Path, key: str, model, optim, sched, rng: random.Random, device: str) -> dict | None:
    """Restore model, optimizer, schedule and shuffling state from a checkpoint of the *same* config;
    returns the trainer state saved with it, or None (no checkpoint, or one of another config)."""
    if not path.exists():
        return None
    saved = torch.load(path, map_location=device, weights_only=False)
    if saved.get("config") != key or "state" not in saved:
        return None
    model.load_state_dict(saved["model"])
    optim.load_state_dict(saved["optim"])
    sched.load_state_dict(saved["sched"])
    rng.setstate(saved["rng"])
    torch.set_rng_state(saved["torch_rng"])  # dropout draws continue as if never interrupted
    return saved["state"]
