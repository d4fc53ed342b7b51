"""Ray Data stages that hold a model. Each is a callable class: Ray Data makes it an actor pool, and
the model loads once per actor in ``__init__`` (never on the driver, never at import)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from pipeline import schemas


@dataclass(frozen=True)
class StageResources:
    """What one actor of a stage asks Ray for; configs override, the stage declares."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0


class NerPredictor:
    """sentences batch (doc_id, sent_idx, start, text) -> entities batch (ENTITIES schema)."""

    def __init__(self, model_url: str, run_id: str, storage_options: dict | None = None,
                 max_length: int = 256, stride: int = 64, max_tokens_per_batch: int = 8192,
                 precision: str = "auto", num_threads: int | None = None):
        import torch

        from workers.artifacts import stage_artifact
        from workers.ner import NerTagger

        if num_threads:
            torch.set_num_threads(max(1, int(num_threads)))
        folder = stage_artifact(model_url, storage_options)
        self.tagger = NerTagger.load(folder, max_length=max_length, stride=stride,
                                max_tokens_per_batch=max_tokens_per_batch, precision=precision)
        self.run_id = run_id

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch.column("text").to_pylist()
        doc_ids = batch.column("doc_id").to_pylist()
        sent_idx = batch.column("sent_idx").to_pylist()
        starts = batch.column("start").to_pylist()
        cols: dict[str, list] = {name: [] for name in schemas.ENTITIES.names}
        for text, doc_id, s_idx, base, spans in zip(texts, doc_ids, sent_idx, starts, self.tagger.tag(texts)):
            for sp in spans:
                cols["doc_id"].append(doc_id)
                cols["start"].append(base + sp.start)
                cols["end"].append(base + sp.end)
                cols["text"].append(text[sp.start:sp.end])
                cols["type"].append(sp.type)
                cols["score"].append(sp.score)
                cols["sent_idx"].append(s_idx)
                cols["concept_id"].append(None)
                cols["model_id"].append(self.tagger.model_id)
                cols["run_id"].append(self.run_id)
        return pa.table(cols, schema=schemas.ENTITIES)
