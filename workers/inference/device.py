"""Where a model runs and at what precision, decided in one place for training and inference alike."""

from __future__ import annotations

from functools import lru_cache

import torch


def pick_device(device: str | None = None) -> str:
    """``device`` when given, else the first CUDA device when there is one, else the CPU."""
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def use_threads(num_threads: int | None) -> None:
    """Run torch's CPU kernels on ``num_threads`` threads (None or 0: leave them as they are). A Ray
    worker process keeps the thread count of the first task it ran (OMP_NUM_THREADS is read once, at
    import), so a task or actor given several CPUs says so itself: measured, an index task of
    ``num_cpus: 2`` ran torch on one thread."""
    if num_threads:
        torch.set_num_threads(max(1, int(num_threads)))


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


INT8 = "int8"  # the NER encoder's linear layers dynamically quantized (CPU); every other model runs fp32


def resolve_precision(precision: str, device: str) -> torch.dtype | None:
    """The autocast dtype for a precision setting; None means full fp32 (``int8`` too: the quantized
    layers compute in int8 whatever the autocast, the rest stays fp32). ``auto`` is bf16 on GPUs that
    have it (else fp16) and on CPUs with fast bf16 (AVX512-BF16 or AMX); on other CPUs fp32 (bf16
    matmuls measured ~300x slower there, bf16 autocast training ~20x)."""
    if precision in ("fp32", INT8):
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else None


def describe_precision(precision: str, device: str) -> str:
    """The precision a setting means on a device kind, for reports ("auto" resolved on CPUs)."""
    if precision != "auto" or device != "cpu":
        return precision
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def ner_precision_name(precision: str, device: str, manifest: dict | None = None) -> str:
    """What a setting means for the NER encoder: ``int8`` when asked for (CPUs only), otherwise the
    autocast precision. ``auto`` chooses int8 on a CPU without fast bf16 only for a model whose
    ``calibration_int8`` says it pays (``auto``: its dev F1 at int8, with thresholds fitted on int8
    scores, within half a point of fp32's; ``pubmine calibrate --precision int8`` measures it). With
    the thresholds of full-precision scores int8 cost the stop-29 default a point on BC5CDR-chem and
    3.2 on BC2GM (benchmarks/results/extraction.md), over the half point we accept for a silent
    choice."""
    if precision == INT8:
        if device != "cpu":
            raise ValueError(f"precision {INT8!r} runs on CPUs only (got device {device!r}); use bf16 or fp16 on GPUs")
        return INT8
    dtype = resolve_precision(precision, device)
    if (precision == "auto" and dtype is None and device == "cpu"
            and ((manifest or {}).get("calibration_int8") or {}).get("auto")):
        return INT8
    return precision_name(dtype)


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with the ``nn.Linear`` layers of its encoder (``base_model_prefix``: ``bert`` for a
    BERT with a head) replaced by their dynamically quantized int8 forms: weights int8 per output
    channel, activations quantized per batch. The task head stays fp32 (it is small and its logits
    decide). CPU inference only."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig

    prefix = getattr(model, "base_model_prefix", "")
    inside = (lambda name: name.startswith(prefix + ".")) if prefix and hasattr(model, prefix) else (lambda name: True)
    spec = {name: per_channel_dynamic_qconfig for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and inside(name)}
    with warnings.catch_warnings():  # torch.ao's eager quantization announces its move to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def autocast(device: str, dtype: torch.dtype | None):
    """The autocast context for ``dtype`` on ``device`` (a no-op context for fp32)."""
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype or torch.bfloat16, enabled=dtype is not None)
