"""The models a run loads, read and checked before any work, and the extraction fingerprint: what
decides the entities and relations, so that a document extracted under the same fingerprint is reused.
The NER precision in it is resolved where the NER actors run (a probe task with their resources), not
on the driver, and the actors are told that precision, so the fingerprint records what ran."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pipeline import reuse
from pipeline.beam.run import SENTENCES_VERSION
from pipeline.config import RunConfig
from pipeline.errors import ModelError
from pipeline.storage import url_to_fs

# the rules over spans and links that are code, not model or dictionary (workers.inference.decoding:
# a letter and two characters, one type per span, no punctuation dangling at a span's edges; lexicon:
# not an organism, no gene link from a synonym that several of the organism's genes share unless the
# document names one of them, and a gene's organism from its own sentence and the document's cell
# lines; a disease adjective linked as its noun; a species acronym through its definition; British
# spellings folded; a genus tagged Species as its proxy species; a variant written beside an rs
# number, or in a document naming one rs number, as that number; a gene name that defines its short
# form inside itself through either form numbered; "Smad1/5/8" as its first member): changing one
# re-extracts once
ENTITY_RULES = ("letter-and-two-characters+not-an-organism+one-type-per-span+dangling-punctuation-trimmed"
                "+shared-gene-synonym-by-document"
                "+gene-organism-by-sentence-and-cell-line+disease-adjective-as-noun+species-by-abbreviation"
                "+british-spelling+species-genus-proxy+variant-rs-beside+variant-only-rs+gene-inline-short-form"
                "+gene-first-member")


@dataclass(frozen=True)
class Models:
    ner_url: str
    ner: dict
    normalizer_url: str | None = None
    normalizer: dict | None = None
    relation_urls: tuple[str, ...] = ()
    relations: tuple[dict, ...] = ()

    def manifest_entry(self, precision: str | None) -> dict:
        return {
            "ner": {"url": self.ner_url, "model_id": self.ner.get("model_id"), "precision": precision},
            "normalizer": (None if self.normalizer is None else
                           {"url": self.normalizer_url, "model_id": self.normalizer["model_id"],
                            "dictionary_version": self.normalizer["version"] + (
                                f"+{self.normalizer['lexicon']['version']}" if self.normalizer.get("lexicon") else "")}),
            "relations": [{"url": u, "model_id": m["model_id"], "dataset": m.get("dataset")}
                          for u, m in zip(self.relation_urls, self.relations)],
        }


def _model_manifest(url: str, storage_options: dict, what: str = "extract.model", task: str | tuple = "ner") -> dict:
    """An artifact's pubmine.json: a missing or wrong model fails the run at once, not after the parse."""
    fs, path = url_to_fs(url, storage_options)
    try:
        manifest = json.loads(fs.cat_file(path.rstrip("/") + "/pubmine.json"))
    except FileNotFoundError as exc:
        raise ModelError(
            f"no artifact for {what} at {url} (pubmine.json not found). Run `make model` once to build the "
            "default models (or `pubmine models pull` a release), `pubmine train`/`pubmine build-normalizer "
            f"--output DIR` to make one, or set {what} to an artifact URL"
            + (" ('none' to skip linking)." if task == "normalizer" else ".")
        ) from exc
    tasks = (task,) if isinstance(task, str) else task
    if manifest.get("task") not in tasks:
        raise ModelError(f"{what} at {url} is a {manifest.get('task')!r} artifact; expected task {' or '.join(tasks)}")
    return manifest


def check_models(config: RunConfig) -> Models:
    """The NER model, the normalizer and the relation models the run will load, checked up front."""
    ex, so = config.extract, config.storage_options
    normalizer_url, relation_urls = ex.normalizer_url(), ex.relation_urls()
    if relation_urls and not normalizer_url:
        raise ModelError("extract.relations needs extract.normalizer: document-level relations hold between linked "
                         "concepts (set extract.normalizer, or extract.relations=[])")
    return Models(
        ner_url=ex.model_url(), ner=_model_manifest(ex.model_url(), so),
        normalizer_url=normalizer_url,
        normalizer=_model_manifest(normalizer_url, so, "extract.normalizer", "normalizer") if normalizer_url else None,
        relation_urls=relation_urls,
        relations=tuple(_model_manifest(u, so, "extract.relations", ("re", "re-doc")) for u in relation_urls))


def ner_precision(config: RunConfig, ner_manifest: dict | None = None) -> str:
    """The precision ``extract.precision`` means where the NER actors run: asked of a Ray task with
    their resources (a GPU when they take one), so a head node of another kind changes nothing; for
    the NER model whose manifest is given (``auto`` picks int8 on CPUs without fast bf16 for a model
    that carries a paying ``calibration_int8``)."""
    import ray

    from workers.inference.probe import precision_here

    ex = config.extract
    if ex.precision != "auto":
        return ex.precision
    gpu = ex.num_gpus_per_actor > 0
    task = ray.remote(precision_here).options(num_cpus=min(ex.num_cpus_per_actor, 1.0), num_gpus=ex.num_gpus_per_actor,
                                              max_retries=config.retries.state)
    return ray.get(task.remote(ex.precision, gpu, ner_manifest))


def extraction_fingerprint(config: RunConfig, models: Models, precision: str) -> tuple[str, dict]:
    """The fingerprint of everything that decides extraction output (``pipeline.reuse``); ``precision``
    is the NER actors' (``ner_precision``)."""
    ex = config.extract
    return reuse.fingerprint(
        {"ner": {"model_id": models.ner["model_id"], "calibration": models.ner.get("calibration"),
                 **({"calibration_int8": models.ner.get("calibration_int8")} if precision == "int8" else {}),
                 "case_features": models.ner.get("case_features")},
         "normalizer": None if models.normalizer is None else
         {"model_id": models.normalizer["model_id"], "threshold": models.normalizer.get("threshold"),
          "thresholds": models.normalizer.get("thresholds"), "ngram_thresholds": models.normalizer.get("ngram_thresholds")},
         "relations": [{"model_id": m["model_id"], "window": (m.get("training") or {}).get("window"),
                        "max_length": (m.get("training") or {}).get("max_length"),
                        "heads": m.get("heads")} for m in models.relations]},
        {"precision": precision, "max_length": ex.max_length, "stride": ex.stride, "parser": SENTENCES_VERSION,
         "entities": ENTITY_RULES,  # sentences are its input; unlinked entities are cut only where linking ran
         **({"keep_unlinked_from": ex.keep_unlinked_from} if models.normalizer else {})})
