"""The run report (report.html in every snapshot) and the nightly gold spot-check.

Two nights on the tiny models: the first publishes 20 BC5CDR test abstracts (written as MEDLINE), the
same 20 that the spot-check scores, so the spot-check's scores must equal the snapshot's own entities
scored against the gold; the second adds a file. The second night's page is opened in headless
Chromium (Debian's package, driven by Playwright): no console error, nothing fetched, every plot drawn,
every number shown equal to the manifest's. The screenshot is kept in .cache/test-artifacts/."""

import re
from collections import defaultdict
from pathlib import Path

import pyarrow.dataset as pads
import pytest

from pipeline.driver import run
from pipeline.errors import ConfigError
from pipeline.manifest import Manifest
from pipeline.parse.pubtator import read_pubtator, write_medline_xml
from pipeline.runpage import REGRESSION, render
from pipeline.scores import score
from pipeline.storage import Store
from tests.conftest import DATA, ROOT, write_medline
from tests.test_nightly import ABSTRACT, _cfg

GOLD = DATA / "bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz"
N_GOLD = 20
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / ".cache" / "test-artifacts"


@pytest.fixture(scope="module")
def nights(ray_local, tiny_model, tiny_normalizer, tiny_relation, tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    gold_docs = []
    for doc in read_pubtator(GOLD):
        gold_docs.append(doc)
        if len(gold_docs) == N_GOLD:
            break
    first = d / "in" / "pubmed26n0001.xml"
    first.parent.mkdir(parents=True)
    write_medline_xml(gold_docs, first)
    second = write_medline(d / "in" / "pubmed26n0002.xml", [(p, f"Clonidine and hypertension, case {p}.", ABSTRACT)
                                                            for p in range(1, 5)])
    store = d / "store"
    sets = (f"extract.normalizer={tiny_normalizer}", f"extract.relations=[{tiny_relation}]", "extract.batch_size=64",
            f"report.gold={GOLD}", f"report.gold_documents={N_GOLD}", "report.top_concepts=5", "index.enabled=true")
    one = run(_cfg(store, [first], tiny_model, "r1", *sets))
    two = run(_cfg(store, [first, second], tiny_model, "r2", *sets))
    return store, gold_docs, one, two


def _manifest(store, run_id):
    return Store(str(store)).read_json("snapshots", run_id, "_manifest.json")


def test_the_spot_check_scores_what_the_pipeline_publishes(nights):
    store, gold_docs, _, _ = nights
    m = _manifest(store, "r1")
    spot = m["spotcheck"]
    assert spot["documents"] == N_GOLD and spot["gold_mentions"] == sum(len(d.mentions) for d in gold_docs)
    ents = pads.dataset(f"{store}/snapshots/r1/entities", format="parquet").to_table().to_pylist()
    predicted = defaultdict(set)
    for e in ents:
        pmid = int(e["doc_id"].split(":")[1])
        predicted[pmid].add((pmid, e["start"], e["end"], e["type"]))
    types = tuple(sorted({m.type for d in gold_docs for m in d.mentions}))
    mine = score(gold_docs, predicted, types)
    assert spot["predicted_mentions"] == len(ents) > 0
    p, r, f = mine.overall()
    assert (spot["mentions"]["precision"], spot["mentions"]["recall"], spot["mentions"]["f1"]) == \
        (round(p, 4), round(r, 4), round(f, 4))
    assert set(spot["mentions"]["by_type"]) <= set(types) and "concepts" in spot and "cid" in spot


def test_every_snapshot_has_its_report_named_by_the_manifest(nights):
    store, _, one, two = nights
    for summary, run_id in ((one, "r1"), (two, "r2")):
        m = _manifest(store, run_id)
        assert m["report"] == "report.html"
        page = (store / "snapshots" / run_id / "report.html").read_text()
        assert summary.report.endswith(f"snapshots/{run_id}/report.html")
        assert page == render(Manifest.from_json(m))  # the page is the manifest's: re-rendering it gives the same bytes
        assert not re.search(r"<script|<link|@import|url\(|src=\"http", page)  # nothing to fetch, nothing to run
    m2 = _manifest(store, "r2")
    assert [h["run_id"] for h in m2["history"]] == ["r1", "r2"]
    assert m2["history"][0]["spotcheck"]["mentions"]["f1"] == _manifest(store, "r1")["spotcheck"]["mentions"]["f1"]
    assert m2["knowledge"]["top_concepts"] and all(c["name"] for c in m2["knowledge"]["top_concepts"])
    assert m2["changes"]["previous"] == "r1" and m2["night"]["added"] == 4


def _number(text: str) -> float:
    return float(text.replace(",", "").strip())


def test_the_page_in_chromium_draws_and_shows_the_manifests_numbers(nights):
    if not CHROMIUM.exists():
        pytest.fail(f"no {CHROMIUM}: `make test` installs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    store, _, _, _ = nights
    m = _manifest(store, "r2")
    page_file = store / "snapshots" / "r2" / "report.html"
    errors, fetched = [], []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report-r2.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda req: fetched.append(req.url) if not req.url.startswith("file:") else None)
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(shot), full_page=True)
            plots = page.query_selector_all("svg.plot")
            drawn = []
            for svg in plots:
                box = svg.bounding_box()
                marks = svg.query_selector_all("rect.bar, polyline")
                sizes = [mk.bounding_box() for mk in marks]
                drawn.append(bool(box and box["width"] > 100 and box["height"] > 40 and
                                  any(s and (s["width"] > 0.5 or s["height"] > 0.5) for s in sizes)))
            shown = [(el.get_attribute("data-key"), el.inner_text()) for el in page.query_selector_all("[data-key]")]
            title = page.title()
        finally:
            browser.close()
    assert errors == [] and fetched == []
    assert len(plots) >= 7 and all(drawn), drawn  # stages, night, types (2), concepts, trend lines...
    assert shot.stat().st_size > 20_000
    assert title == "pubmine run r2"
    keys = {k for k, _ in shown}
    for must in ("counts.documents", "counts.entities", "counts.relations", "timings_s.extract", "spotcheck.mentions.f1",
                 "knowledge.top_concepts.0.documents", "night.added", "counts.entities_by_type.Chemical",
                 "retrieval.documents", "retrieval.reused"):
        assert must in keys, must
    for key, text in shown:
        value = m
        for part in key.split("."):
            value = value[int(part)] if isinstance(value, list) else value[part]
        if isinstance(value, str):
            assert text == value, key
        else:
            tolerance = 1e-4 if abs(value) < 1 else 0.05 + 1e-9  # half the page's last digit (1.55 shows as 1.6)
            assert _number(text) == pytest.approx(value, abs=tolerance), (key, text, value)


def test_a_fall_in_spot_check_f1_is_flagged_and_a_rise_is_not():
    def manifest(f1_before, f1_now):
        night = lambda run_id, f1: {"run_id": run_id, "spotcheck": {"mentions": {"f1": f1, "by_type": {}}}}
        spot = {"gold": "gold.txt", "documents": 50, "sentences": 500, "gold_mentions": 900, "predicted_mentions": 800,
                "seconds": 3.0, "mentions": {"precision": f1_now, "recall": f1_now, "f1": f1_now, "by_type": {}}}
        return {"run_id": "b", "counts": {}, "spotcheck": spot, "history": [night("a", f1_before), night("b", f1_now)]}

    fell = render(Manifest.from_json(manifest(0.80, 0.80 - 2 * REGRESSION)))
    assert "Regression: mentions overall F1 fell 0.8000" in fell
    assert "Regression" not in render(Manifest.from_json(manifest(0.80, 0.81)))
    assert "No spot-check this night" in render(Manifest.from_json({"run_id": "c", "counts": {}}))


def test_a_gold_set_that_is_not_there_stops_the_run_before_any_work(tmp_path, tiny_model):
    cfg = _cfg(tmp_path / "store", [DATA / "pubmed_xml/ncbiutils/efetch_5_articles.xml"], tiny_model, "g1",
               f"report.gold={tmp_path / 'missing.txt'}")
    with pytest.raises(ConfigError, match="report.gold: no gold PubTator file at .*missing.txt.*report.gold=none"):
        run(cfg)
    assert not (tmp_path / "store").exists()


def test_the_spot_check_is_reused_while_the_gold_set_and_the_models_are_unchanged(nights, tiny_model, tiny_normalizer,
                                                                                   tiny_relation, tmp_path):
    import shutil

    store, *_ = nights
    m1, m2 = _manifest(store, "r1"), _manifest(store, "r2")
    assert m1["spotcheck"]["reused"] is False and m2["spotcheck"]["reused"] is True  # same gold, same fingerprint
    assert m2["spotcheck"]["mentions"] == m1["spotcheck"]["mentions"] and m2["spotcheck"]["key"] == m1["spotcheck"]["key"]
    # the first night's task did the work (its own clock: the driver may find it finished, as it runs
    # beside the knowledge and index stages); the second ran none and waited for nothing
    assert m1["spotcheck"]["seconds"] > 1.0 > m2["timings_s"]["spotcheck"]
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    first = store.parent / "in" / "pubmed26n0001.xml"
    m3 = run(_cfg(copy, [first], tiny_model, "r3", f"extract.normalizer={tiny_normalizer}",
                  f"extract.relations=[{tiny_relation}]", "extract.batch_size=64", f"report.gold={GOLD}",
                  f"report.gold_documents={N_GOLD - 5}"))
    spot = _manifest(copy, "r3")["spotcheck"]
    assert m3.spotcheck_f1 is not None and spot["reused"] is False and spot["documents"] == N_GOLD - 5  # scored anew
