"""The driver's stages, each called alone on a real local Ray, and the summary read back from the
manifest they build (what `pubmine run` prints and what `_manifest.json` says are the same counters)."""

import dataclasses
from collections import Counter

import pyarrow as pa
import pytest

from pipeline import driver
from pipeline.config import load_config
from pipeline.errors import ModelError
from pipeline.layout import LATEST, MANIFEST, run_state, snapshot_key
from pipeline.manifest import Manifest
from pipeline.schemas import SCHEMA_VERSION
from pipeline.storage import Store
from tests.conftest import DATA, ROOT

FILES = [str(DATA / "pubmed_xml/ncbiutils/pubmed22n1115_excerpt.xml"),
         str(DATA / "pubmed_xml/ncbiutils/pubmed22n1313_excerpt.xml")]


def _config(tmp_path, model, **sets):
    return load_config(ROOT / "configs" / "local.yaml",
                       [f"extract.model={model}", "extract.normalizer=none", "extract.relations=[]", "run_id=stages",
                        "extract.precision=fp32", "report.gold=none", "index.enabled=false",
                        *(f"{k}={v}" for k, v in sets.items())],
                       inputs=[*FILES, str(tmp_path / "broken.xml")], store=str(tmp_path / "store"))


def test_check_models_fails_before_any_work(tmp_path):
    cfg = load_config(ROOT / "configs" / "local.yaml", ["extract.model=" + str(tmp_path / "nowhere")],
                      inputs=FILES, store=str(tmp_path / "store"))
    with pytest.raises(ModelError, match="no artifact for extract.model"):
        driver.check_models(cfg)
    assert not (tmp_path / "store").exists()


def test_each_stage_alone_then_the_summary_from_the_manifest(ray_local, tiny_model, tmp_path):
    (tmp_path / "broken.xml").write_text("<PubmedArticleSet><PubmedArticle>")  # cut short: fails alone
    cfg = _config(tmp_path, tiny_model, **{"resolve.group_documents": 3, "extract.batch_size": 64})
    store = Store(cfg.store)
    models = driver.check_models(cfg)
    assert models.ner["task"] == "ner" and models.normalizer is None

    files, shards = driver.plan(cfg)
    assert [s.source_file for s in shards] == ["broken.xml", "pubmed22n1115_excerpt.xml", "pubmed22n1313_excerpt.xml"]

    parsed = driver.parse(cfg, files, shards)
    assert parsed.ok == [1, 2] and not parsed.results[0]["ok"] and "broken.xml" in parsed.results[0]["error"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.results = ()  # what a stage hands the next is frozen

    precision = driver.ner_precision(cfg)
    assert precision == "fp32"  # asked of a task with the NER actors' resources
    xfp, key = driver.extraction_fingerprint(cfg, models, precision)
    assert key["models"]["ner"]["model_id"] == models.ner["model_id"] and key["settings"]["precision"] == "fp32"
    # what the artifact's manifest says beside its weights changes output too: a re-fitted score
    # calibration or new per-type link thresholds must not reuse yesterday's extraction
    recalibrated = dataclasses.replace(models, ner={**models.ner, "calibration": {"method": "platt-logit",
                                                                                  "params": {"Gene": [1.0, 0.5]}}})
    relinked = dataclasses.replace(models, normalizer={"model_id": "n", "thresholds": {"Gene": 0.8}})
    relinked_again = dataclasses.replace(models, normalizer={"model_id": "n", "thresholds": {"Gene": 0.9}})
    assert len({xfp, *(driver.extraction_fingerprint(cfg, m, precision)[0] for m in (recalibrated, relinked,
                                                                                   relinked_again)),
                driver.extraction_fingerprint(cfg, models, "bf16")[0]}) == 5
    resolution = driver.resolve_live(cfg, "stages", xfp, parsed)
    assert len(resolution.groups) == 3  # resolve.group_documents=3, 7 documents: the partitions in groups, a task each
    rc = resolution.counts
    assert rc.live > 0 and rc.reused == 0  # nothing extracted yet
    assert rc.added == rc.live and rc.superseded + rc.live == parsed.records

    text = driver.publish_text(cfg, "stages", parsed, resolution)
    assert text.documents == rc.live and text.rejects >= 1  # the broken file
    sentences = pa.concat_tables([store.read_table(*run_state("stages", "extract", b)) for b in text.blocks])
    assert sentences.num_rows == text.sentences and all(isinstance(b, str) for b in text.blocks)  # names, not rows
    assert len(set(sentences.column("doc_id").to_pylist())) == text.sentence_docs

    extracted = driver.extract(cfg, "stages", models, xfp, precision, text.blocks)
    assert extracted.documents == text.sentence_docs and extracted.precision == "fp32"
    assert len(extracted.parts) == len(text.blocks)
    carried = driver.carry(cfg, "stages", xfp, resolution, extracted.parts)
    assert carried.copied == len(carried.parts) == len(extracted.parts) and carried.filtered == 0
    assert carried.served == text.sentence_docs
    previous = Manifest(run_id="stages", extraction={"fingerprint": xfp})
    again = driver.resolve_live(cfg, "stages-2", xfp, parsed, previous)
    assert again.counts.reused == text.sentence_docs and again.counts.unchanged == rc.live  # nothing to extract

    held = driver.snapshot_counts(cfg, "stages", per_task=1)
    assert sum(held.entities_by_type.values()) == extracted.entities == held.rows["entities"]
    driver.check_invariants(resolution, text, extracted, carried, held)
    timings = {"parse": 1.0, "extract": 1.0, "total": 2.0}
    stages = driver.Stages(models, precision, xfp, key, parsed, resolution, text, extracted, carried, held, {}, None)
    manifest = driver.build_manifest(cfg, "stages", stages, timings, None)
    assert not store.exists(LATEST)
    driver.commit(store, manifest, cfg.keep_snapshots)
    assert store.read_text(LATEST).strip() == "stages"
    written = store.read_json(*snapshot_key("stages", MANIFEST))
    assert Manifest.from_json(written) == manifest and written["schema_version"] == SCHEMA_VERSION

    summary = driver.RunSummary.from_manifest(Manifest.from_json(written), store.uri(*snapshot_key("stages")))
    counts = written["counts"]
    assert (summary.counts.documents, summary.counts.sentences, summary.counts.rejects, summary.counts.relations, summary.counts.entities_linked) == (
        counts["documents"], counts["sentences"], counts["rejects"], counts["relations"], counts["entities_linked"])
    assert summary.counts.entities_by_type == counts["entities_by_type"] == held.entities_by_type
    assert summary.failed_files == ["broken.xml"] and counts["failed_files"] == 1
    assert summary.model_id == models.ner["model_id"] and summary.timings == written["timings_s"]
    assert Counter(i["status"] for i in written["inputs"]) == {"ok": 2, "failed": 1}
