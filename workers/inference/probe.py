"""What a setting means on the hardware of the process that asks: run as a Ray task with an actor's
resources, it tells the driver (which never imports torch) the precision that actor will run at."""

from __future__ import annotations


def precision_here(setting: str, gpu: bool, manifest: dict | None = None) -> str:
    """``setting`` (auto | fp32 | bf16 | fp16 | int8) resolved for the NER encoder on this process's
    CPU, or its GPU when ``gpu``, for the model whose ``manifest`` is given (auto may choose int8
    for one that carries a paying int8 calibration)."""
    from workers.inference.device import ner_precision_name

    return ner_precision_name(setting, "cuda" if gpu else "cpu", manifest)
