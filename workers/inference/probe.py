"""What a setting means on the hardware of the process that asks: run as a Ray task with an actor's
resources, it tells the driver (which never imports torch) the precision that actor will run at."""

from __future__ import annotations


def precision_here(setting: str, gpu: bool) -> str:
    """``setting`` (auto | fp32 | bf16 | fp16) resolved for this process's CPU, or its GPU when ``gpu``."""
    from workers.inference.device import precision_name, resolve_precision

    return precision_name(resolve_precision(setting, "cuda" if gpu else "cpu"))
