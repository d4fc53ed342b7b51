"""Nightly runs into one store: update files one per run, revisions, deletions, reruns. Each run's
entities and relations are compared, as whole sorted tables, with a clean run's over the same inputs."""

import pyarrow.dataset as pads
import pytest

from pipeline.config import load_config
from pipeline.driver import run
from pipeline.layout import LATEST
from pipeline.storage import Store
from tests.conftest import ROOT, write_medline

ABSTRACT = ("Naloxone reverses the antihypertensive effect of clonidine in patients with hypertension. "
            "Famotidine was associated with delirium in one case.")


def _cfg(store, inputs, model, run_id, *sets):
    return load_config(ROOT / "configs" / "local.yaml",
                       [f"extract.model={model}", "extract.normalizer=none", "extract.relations=[]",
                        "extract.precision=fp32", "extract.batch_size=2", f"run_id={run_id}", "report.gold=none",
                        "index.enabled=false", *sets],
                       inputs=[str(p) for p in inputs], store=str(store))


def table(store, run_id, name, drop=("run_id",)):
    """A snapshot table as sorted rows; scores to 1e-5 (blocks of other sizes batch the same sentences
    differently, which may move a float's last bits)."""
    t = pads.dataset(f"{store}/snapshots/{run_id}/{name}", format="parquet").to_table()
    t = t.drop_columns([c for c in drop if c in t.column_names])
    rows = [{k: round(v, 5) if isinstance(v, float) else v for k, v in r.items()} for r in t.to_pylist()]
    return sorted(map(repr, rows))


def test_a_later_file_that_supersedes_every_record_of_an_earlier_one(ray_local, tiny_model, tmp_path):
    """Update files one per run into one store; the second supersedes all of the first's records, so
    the first has no live sentence left (this crashed in the per-block counts)."""
    f1 = write_medline(tmp_path / "in" / "pubmed26n1001.xml", [(101, "Clonidine and naloxone.", ABSTRACT),
                                                              (102, "Famotidine.", ABSTRACT)])
    f2 = write_medline(tmp_path / "in" / "pubmed26n1002.xml", [(101, "Clonidine and naloxone, revised.", ABSTRACT),
                                                              (102, "Famotidine, revised.", ABSTRACT)])
    store = tmp_path / "store"
    run(_cfg(store, [f1], tiny_model, "night-1"))
    summary = run(_cfg(store, [f1, f2], tiny_model, "night-2"))
    assert summary.counts.documents == 2 and summary.counts.superseded == 2
    assert Store(str(store)).read_text(LATEST).strip() == "night-2"
    clean = run(_cfg(tmp_path / "clean", [f1, f2], tiny_model, "night-2"))
    for name in ("documents", "entities", "relations"):
        assert table(store, "night-2", name, ("run_id", "parsed_at")) == table(tmp_path / "clean", "night-2", name,
                                                                                ("run_id", "parsed_at"))
    assert clean.counts.entities_by_type == summary.counts.entities_by_type


def _same_as_clean(tmp_path, store, run_id, inputs, model, *sets):
    """The snapshot equals a clean run's over the same inputs (a fresh store, resolved in one group),
    table by table."""
    clean = tmp_path / f"clean-{run_id}"
    run(_cfg(clean, inputs, model, run_id, *(s for s in sets if not s.startswith("resolve."))))
    for name in ("documents", "passages", "sentences", "entities", "relations", "rejects"):
        assert table(store, run_id, name, ("run_id", "parsed_at")) == table(clean, run_id, name, ("run_id", "parsed_at")), name


def _night(store, run_id):
    return Store(str(store)).read_json("snapshots", run_id, "_manifest.json")


def test_update_files_one_per_run_revise_delete_readd_and_a_no_op_rerun(ray_local, tiny_model, tmp_path):
    """Resolved in several groups (two documents each), each night compared with a clean run resolved
    in one: the one-group path is every other run's in the suite."""
    groups = "resolve.group_documents=2"
    d = tmp_path / "in"
    f1 = write_medline(d / "pubmed26n1001.xml", [(p, f"Title {p} on clonidine.", ABSTRACT) for p in (1, 2, 3, 4)])
    f2 = write_medline(d / "pubmed26n1002.xml", [(2, "Title 2 on famotidine, revised.", ABSTRACT),
                                                 (5, "Title 5 on naloxone.", ABSTRACT)], deleted=(3,))
    f3 = write_medline(d / "pubmed26n1003.xml", [(3, "Title 3 re-added with new text on delirium.", ABSTRACT)])
    store = tmp_path / "store"
    big = "extract.batch_size=64"  # one block, so one part, per run: the next night filters it
    sets = (big, groups, "index.enabled=true")  # this test follows the retrieval index across the nights

    run(_cfg(store, [f1], tiny_model, "n1", *sets))
    m = _night(store, "n1")
    assert m["night"]["documents_extracted"] == 4 and m["night"]["added"] == 4
    assert (m["retrieval"]["documents"], m["retrieval"]["embedded"], m["retrieval"]["reused"]) == (4, 4, 0)

    run(_cfg(store, [f1, f2], tiny_model, "n2", *sets))  # 2 revised, 3 deleted, 5 new
    m = _night(store, "n2")
    assert (m["night"]["documents_extracted"], m["night"]["documents_reused"]) == (2, 2)
    # the retrieval index embeds what extraction extracted, and keeps the unchanged documents' vectors
    assert (m["retrieval"]["documents"], m["retrieval"]["embedded"], m["retrieval"]["reused"]) == (4, 2, 2)
    assert {k: m["night"][k] for k in ("added", "revised", "deleted", "unchanged")} == {
        "added": 1, "revised": 1, "deleted": 1, "unchanged": 2}
    assert m["extraction"]["parts_filtered"] >= 1  # n1's part also holds the revised and the deleted document
    _same_as_clean(tmp_path, store, "n2", [f1, f2], tiny_model, *sets)

    run(_cfg(store, [f1, f2, f3], tiny_model, "n3", *sets))  # 3 deleted, then re-added with a new text
    m = _night(store, "n3")
    assert (m["night"]["documents_extracted"], m["night"]["added"]) == (1, 1)
    _same_as_clean(tmp_path, store, "n3", [f1, f2, f3], tiny_model, *sets)

    run(_cfg(store, [f1, f2, f3], tiny_model, "n4", *sets))  # nothing new: nothing extracted, the same content
    m = _night(store, "n4")
    assert m["night"]["documents_extracted"] == 0 and m["night"]["unchanged"] == 5
    assert m["retrieval"]["embedded"] == 0 and m["retrieval"]["copied"] and m["retrieval"]["reused"] == 5
    assert Store(str(store)).exists("snapshots", "n4", "retrieval", "index.json")
    n3 = _night(store, "n3")["extraction"]
    assert m["changes"]["entities_by_type"] == {} and m["changes"]["relations_by_type"] == {}
    assert (m["extraction"]["parts_copied"], m["extraction"]["parts_filtered"]) == (n3["parts_copied"], n3["parts_filtered"])
    for name in ("entities", "relations", "documents"):
        assert table(store, "n4", name, ("run_id", "parsed_at")) == table(store, "n3", name, ("run_id", "parsed_at"))
    # extraction state: only the parts serving the live documents are left
    parts = list(Store(str(store)).iter_dirs("state", f"extracted/{m['extraction']['fingerprint']}/parts"))
    assert len(parts) == m["extraction"]["parts_copied"] + m["extraction"]["parts_filtered"]
    # run state: only the committed run's, and of it only what the next night reads
    assert list(Store(str(store)).iter_dirs("state", "runs")) == ["n4"]
    assert sorted(p.name for p in (store / "state" / "runs" / "n4").iterdir()) == ["parts.parquet", "served"]


def test_the_same_records_under_new_file_names_are_not_extracted_again(ray_local, tiny_model, tmp_path):
    """The yearly baseline re-release: the same citations, other file names (so other parse shards)."""
    old = write_medline(tmp_path / "in" / "pubmed25n0001.xml", [(p, f"Title {p}.", ABSTRACT) for p in (7, 8, 9)])
    store = tmp_path / "store"
    run(_cfg(store, [old], tiny_model, "y1"))
    new = tmp_path / "in2" / "pubmed26n0001.xml"
    new.parent.mkdir()
    new.write_bytes(old.read_bytes())
    run(_cfg(store, [new], tiny_model, "y2"))
    m = _night(store, "y2")
    assert m["night"]["documents_extracted"] == 0 and m["night"]["documents_reused"] == 3
    assert [i["reused"] for i in m["inputs"]] == [False]  # parsed anew (another file), extraction reused
    _same_as_clean(tmp_path, store, "y2", [new], tiny_model)


def test_a_changed_model_re_extracts_and_drops_the_old_models_state(ray_local, tiny_model, tmp_path):
    from workers.training.tiny import tiny_bert

    other = tmp_path / "other-model"
    tiny_bert(other, seed=1, name="tiny-bert-ner-b")
    f = write_medline(tmp_path / "in" / "pubmed26n0001.xml", [(p, f"Title {p} on clonidine.", ABSTRACT) for p in (1, 2)])
    store = tmp_path / "store"
    run(_cfg(store, [f], tiny_model, "m1", "keep_snapshots=1"))
    first = _night(store, "m1")["extraction"]["fingerprint"]
    run(_cfg(store, [f], other, "m2", "keep_snapshots=1"))
    m = _night(store, "m2")
    assert m["night"]["documents_extracted"] == 2 and m["extraction"]["fingerprint"] != first
    assert m["inputs"][0]["reused"]  # nothing re-parsed
    assert list(Store(str(store)).iter_dirs("state", "extracted")) == [m["extraction"]["fingerprint"]]
    _same_as_clean(tmp_path, store, "m2", [f], other)


KILL_INPUTS = ["pubmed_xml/nlm_medsamp2006/medsamp2006.xml.gz", "pubmed_xml/ncbiutils/pubmed22n1313_excerpt.xml"]


def _pubmine(model, store, run_id, *files):
    """`pubmine run` in its own process (its own in-process Ray), as the nightly job runs it."""
    import os
    import subprocess
    import sys

    sets = [f"extract.model={model}", "extract.normalizer=none", "extract.relations=[]",
            "extract.precision=fp32", "extract.batch_size=24", "ray.num_cpus=2", "index.enabled=false"]
    argv = [sys.executable, "-m", "pipeline.cli", "run", "-c", str(ROOT / "configs" / "local.yaml"),
            "--store", str(store), "--set", f"run_id={run_id}", *(x for s in sets for x in ("--set", s)), *files]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RAY_ADDRESS": ""})


@pytest.fixture(scope="module")
def clean_rerun(tiny_model, tmp_path_factory):
    """The clean run every killed-and-resumed run is compared with (one for the three stages)."""
    from tests.conftest import DATA

    store = tmp_path_factory.mktemp("clean-rerun")
    clean = _pubmine(tiny_model, store, "rerun", *(str(DATA / f) for f in KILL_INPUTS))
    assert clean.wait(timeout=600) == 0, clean.stderr.read()[-3000:]
    return store


@pytest.fixture(scope="module")
def base_store(tiny_model, tmp_path_factory):
    """The store after the base night (the second input alone), which every killed run starts from:
    run once, copied per test (the store is a plain folder of relative keys)."""
    from tests.conftest import DATA

    store = tmp_path_factory.mktemp("killed-base") / "store"
    first = _pubmine(tiny_model, store, "base", str(DATA / KILL_INPUTS[1]))
    assert first.wait(timeout=600) == 0, first.stderr.read()[-3000:]
    return store


@pytest.mark.parametrize("stage", ["parse", "extract", "publish"])
def test_a_killed_driver_resumes_and_publishes_what_a_clean_run_publishes(tiny_model, tmp_path, stage, clean_rerun,
                                                                          base_store):
    """SIGKILL of `pubmine run` during the parse (the new file's parse has begun), the extraction
    (the first new part exists) or the publish (the snapshot's entity files are being carried); a
    reader opening LATEST meanwhile reads the earlier complete snapshot; the rerun reuses what was
    finished, removes the killed run's folder and publishes what a clean run publishes."""
    import signal
    import time

    from tests.conftest import DATA

    inputs = [str(DATA / f) for f in KILL_INPUTS]
    store = tmp_path / "store"

    def pubmine(run_id, *files):
        return _pubmine(tiny_model, store, run_id, *files)

    import shutil

    shutil.copytree(base_store, store)
    s = Store(str(store))
    parts = lambda: len(s.glob("state", "extracted", "*", "parts", "*", "docs.parquet"))
    before = parts()  # the base run's: the killed run reuses them
    parsed = len(s.glob("state", "parsed", "*"))
    reached = {"parse": lambda: len(s.glob("state", "parsed", "*")) > parsed,
               "extract": lambda: parts() > before,
               "publish": lambda: bool(s.glob("snapshots", "killed", "entities", "*.parquet"))}[stage]
    killed = pubmine("killed", *inputs)
    deadline = time.time() + 600
    while not reached():
        assert killed.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        # a reader during the run: LATEST names the earlier, complete snapshot
        assert s.read_text(LATEST).strip() == "base" and s.exists("snapshots", "base", "_manifest.json")
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert s.read_text(LATEST).strip() == "base"
    finished_parts = parts() - before
    session = _session_of(killed.pid)  # the killed driver marked its in-process Ray's session

    rerun = pubmine("rerun", *inputs)
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read()[-3000:]
    assert _processes_of(session) == []  # the rerun's start stopped what the killed driver left running
    m = _night(store, "rerun")
    assert m["night"]["documents_reused"] >= 1  # the base run's parts at least
    if stage != "parse":
        assert finished_parts >= 1  # parts the killed run finished: the rerun reused them, not re-extracted
    assert m["night"]["documents_extracted"] + m["night"]["documents_reused"] == m["counts"]["documents"] - _no_sentences(store, "rerun")
    assert not s.exists("snapshots", "killed")  # the unfinished folder is gone
    for name in ("documents", "sentences", "entities", "relations", "rejects"):
        assert table(store, "rerun", name, ("run_id", "parsed_at")) == table(clean_rerun, "rerun", name,
                                                                              ("run_id", "parsed_at")), name


def _session_of(pid: int) -> str:
    import glob
    import os

    from pipeline.driver.session import RAY_MARKER, _ray_temp_root

    marked = [m for m in glob.glob(os.path.join(_ray_temp_root(), "session_*", RAY_MARKER))
              if not os.path.islink(os.path.dirname(m)) and open(m).read().strip() == str(pid)]
    assert len(marked) == 1, marked
    return os.path.basename(os.path.dirname(marked[0]))


def _processes_of(session: str) -> list[int]:
    import os

    out = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if session.encode() in open(f"/proc/{entry}/cmdline", "rb").read():
                out.append(int(entry))
        except OSError:
            pass
    return out


def _no_sentences(store, run_id):
    """Live documents without any sentence (no title, no abstract): nothing to extract."""
    docs = set(pads.dataset(f"{store}/snapshots/{run_id}/documents").to_table(columns=["doc_id"]).column("doc_id").to_pylist())
    with_sentences = set(pads.dataset(f"{store}/snapshots/{run_id}/sentences").to_table(columns=["doc_id"]).column("doc_id").to_pylist())
    return len(docs - with_sentences)


def test_a_document_actor_killed_after_writing_part_of_its_output(ray_local, tiny_model, tmp_path):
    """SIGKILL of a document-stage actor once the first part is written: Ray restarts it and retries the
    block, the retried block rewrites its own part, and the run publishes what a clean run publishes."""
    import os
    import signal
    import threading
    import time

    from tests.conftest import DATA
    from tests.faults.cluster import actor_pids

    inputs = [DATA / "pubmed_xml/nlm_medsamp2006/medsamp2006.xml.gz", DATA / "pubmed_xml/ncbiutils/pubmed22n1313_excerpt.xml"]
    store, killed = tmp_path / "store", []

    def kill_after_first_part():
        s = Store(str(store))
        deadline = time.time() + 300
        while time.time() < deadline and not killed:
            if s.glob("state", "extracted", "*", "parts", "*", "docs.parquet"):
                for pid in actor_pids("DocumentStage")[:1]:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_after_first_part, daemon=True)
    killer.start()
    run(_cfg(store, inputs, tiny_model, "fault", "extract.batch_size=24"))
    killer.join(timeout=5)
    assert killed, "no document actor was killed"
    m = _night(store, "fault")
    assert m["night"]["documents_extracted"] == m["counts"]["documents"] - _no_sentences(store, "fault")
    _same_as_clean(tmp_path, store, "fault", inputs, tiny_model, "extract.batch_size=24")


def test_the_reaper_stops_only_what_a_dead_pubmine_driver_left(tmp_path):
    """Sessions marked by a dead driver are reaped; one marked by a live driver, and one nobody marked
    (a cluster from `ray start`), are left alone."""
    import os
    import subprocess
    import sys

    from pipeline.driver import RAY_MARKER, reap_orphaned_ray

    dead_driver = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_driver.wait()
    sessions = {"dead": dead_driver.pid, "alive": os.getpid(), "unmarked": None}
    procs = {}
    for name, driver_pid in sessions.items():
        folder = tmp_path / "ray" / f"session_2026-11-30_00-00-00_000000_{name}"
        folder.mkdir(parents=True)
        if driver_pid is not None:
            (folder / RAY_MARKER).write_text(str(driver_pid))
        procs[name] = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", f"--session-dir={folder}"])
    try:
        killed = reap_orphaned_ray(str(tmp_path / "ray"))
        assert killed == [procs["dead"].pid]
        assert procs["dead"].wait(timeout=10) == -9
        assert procs["alive"].poll() is None and procs["unmarked"].poll() is None
        assert not (tmp_path / "ray" / "session_2026-11-30_00-00-00_000000_dead" / RAY_MARKER).exists()
    finally:
        for p in procs.values():
            p.kill()
