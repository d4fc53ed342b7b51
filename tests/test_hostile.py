"""The hostile corpus (tests/data/hostile, its README's tables): every file alone, every model
artifact case, and one `pubmine run` over all of it with the network guard on, a memory limit on
the parse workers, a listener that must hear nothing and a sentinel secret that must leak nowhere."""

from __future__ import annotations

import collections
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from pipeline.errors import ModelError, ShardError
from pipeline.parse.sources import iter_records, open_input
from tests import netguard
from tests.conftest import ROOT
from tests.faults.cluster import actor_pids

HOSTILE = ROOT / "tests" / "data" / "hostile"
sys.path.insert(0, str(HOSTILE))
import build  # noqa: E402  (tests/data/hostile/build.py: the corpus's author)

# a parse worker over this is killed by the test (and the test fails); measured peak 333 MB (a worker
# with Beam, pyarrow and lxml loaded is ~300 MB); the gzip bomb and the 5 MB abstract must not move it far
PARSE_WORKER_LIMIT_MB = 768


def _table(heading: str) -> list[dict]:
    """The rows of the README table under ``## heading``, as dicts by column name."""
    text = (HOSTILE / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    cols = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(cols, (c.strip().strip("`") for c in ln.strip("|").split("|")))) for ln in lines[2:]]


INPUTS = _table("Inputs")
MODELS = _table("Model artifacts")


def _expected_rejects(cell: str) -> collections.Counter:
    out = collections.Counter()
    for part in filter(None, (p.strip() for p in cell.split(","))):
        if part == "-":
            continue
        reason, n = re.fullmatch(r"(.+?) ×(\d+)", part).groups()
        out[reason] += int(n)
    return out


def _published(cell: str) -> set[str]:
    return set() if cell == "-" else set(cell.split())


def _doc_key(doc) -> str:
    return doc.pmcid if doc.source == "pmc" else str(doc.pmid)


@pytest.fixture(scope="module")
def secret():
    """The sentinel the XXE files point at; it must appear in no output."""
    token = f"PUBMINE-HOSTILE-SECRET-{uuid.uuid4().hex}"
    Path(build.SECRET).write_text(token)
    yield token
    Path(build.SECRET).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def listener():
    """The loopback HTTP server the external entities and DTDs name: it counts every request."""
    hits: list[str] = []

    class Count(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'<!ENTITY web "FETCHED">')

        def log_message(self, *args):
            pass

    port = int(build.LISTENER.rsplit(":", 1)[1])
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Count)
    except OSError as exc:
        pytest.fail(f"the hostile corpus's listener port {port} is taken ({exc}); free it and rerun")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield hits
    server.shutdown()
    server.server_close()


def test_hostile_corpus_is_what_build_py_writes_and_has_every_case():
    written = {**build.cases(), **build.model_cases()}
    for name, data in written.items():
        assert (HOSTILE / name).read_bytes() == data, f"{name} differs from build.py's; rerun it"
    assert sorted(r["file"] for r in INPUTS) == sorted(build.cases())
    assert sorted(r["case"] for r in MODELS) == sorted({n.split("/")[0] for n in build.model_cases()})
    assert len(INPUTS) + len(MODELS) >= 30


@pytest.mark.parametrize("row", INPUTS, ids=[r["file"] for r in INPUTS])
def test_hostile_file_alone_gives_what_the_table_says(row, secret, listener):
    path = HOSTILE / row["file"]
    docs, rejects = [], []
    try:
        with open_input(str(path), None, path.name) as stream:
            for kind, payload in iter_records(stream, path.name):
                if kind == "document":
                    docs.append(payload)
                elif kind == "reject":
                    rejects.append(payload)
    except ShardError as err:  # the pipeline records a failed file as one "unreadable file" reject
        docs = []  # a file that fails whole publishes nothing, not even what came before the damage
        rejects = [{"reason": "unreadable file", "detail": err.detail}]
    assert {_doc_key(d) for d in docs} == _published(row["published"])
    assert collections.Counter(r["reason"] for r in rejects) == _expected_rejects(row["rejects"])
    if row["says"]:
        assert any(row["says"] in r["detail"] for r in rejects), [r["detail"] for r in rejects]
    everything = repr([d.passages for d in docs]) + repr(rejects)
    assert secret not in everything and "root:x:0:0" not in everything and "FETCHED" not in everything
    assert listener == []


# -- model artifacts

def _copy_artifact(model: Path, to: Path) -> Path:
    shutil.copytree(model, to)
    return to


def _apply(case: str, folder: Path) -> None:
    src = HOSTILE / case
    if case == "model-pickle-only":
        (folder / "model.safetensors").unlink()
        shutil.copy(src / "pytorch_model.bin", folder / "pytorch_model.bin")
    elif case == "model-remote-code":
        config = json.loads((folder / "config.json").read_text())
        config.update(json.loads((src / "config.patch.json").read_text()))
        (folder / "config.json").write_text(json.dumps(config))
        shutil.copy(src / "modeling_evil.py", folder / "modeling_evil.py")
    elif case == "model-tampered-weights":
        spec = json.loads((src / "tamper.json").read_text())
        with open(folder / spec["file"], "r+b") as f:
            f.seek(-spec["from_end"], os.SEEK_END)
            data = f.read(spec["bytes"])
            f.seek(-spec["from_end"], os.SEEK_END)
            f.write(bytes(b ^ spec["xor"] for b in data))
    elif case == "model-oversized-tokenizer":
        spec = json.loads((src / "oversize.json").read_text())
        with open(folder / spec["file"], "r+b") as f:
            f.truncate(spec["size_mb"] << 20)  # sparse: no disk, and it must never be read
    else:
        raise AssertionError(f"no recipe for {case}")


@pytest.mark.parametrize("row", MODELS, ids=[r["case"] for r in MODELS])
def test_hostile_model_artifact_is_refused_and_runs_nothing(row, tiny_model, tmp_path):
    from workers.inference.artifacts import stage_artifact

    markers = [Path("/tmp/pubmine-hostile-pickle-ran"), Path("/tmp/pubmine-hostile-remote-code-ran")]
    for m in markers:
        m.unlink(missing_ok=True)
    folder = _copy_artifact(tiny_model, tmp_path / row["case"])
    _apply(row["case"], folder)
    with pytest.raises(ModelError, match=re.escape(row["refused because"])):
        stage_artifact(str(folder))
    if row["case"] == "model-tampered-weights":  # and from a remote store, staged into the cache
        import fsspec

        mem = fsspec.filesystem("memory")
        for p in folder.iterdir():
            mem.pipe_file(f"/hostile-{os.getpid()}/{p.name}", p.read_bytes())
        with pytest.raises(ModelError, match="its weights hash to"):
            stage_artifact(f"memory:///hostile-{os.getpid()}", cache_dir=tmp_path / "cache")
        assert not any((tmp_path / "cache").glob("*/pubmine.json"))  # nothing half-staged is left as good
    assert not any(m.exists() for m in markers)


# -- one run over all of it

def _parse_workers() -> dict[int, int]:
    """pid -> RSS MB of every process now running a parse task (Ray titles it ray::_parse_task)."""
    out = {}
    for pid in actor_pids("_parse_task"):
        try:
            rss = next(ln for ln in open(f"/proc/{pid}/status") if ln.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
        out[pid] = int(rss.split()[1]) // 1024
    return out


class MemoryLimit:
    """Polls the parse workers' RSS; kills one over the limit (the run then fails) and remembers it."""

    def __init__(self, limit_mb: int):
        self.limit_mb, self.peak_mb, self.over, self.seen = limit_mb, 0, [], set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self._stop.is_set():
            for pid, mb in _parse_workers().items():
                self.seen.add(pid)
                self.peak_mb = max(self.peak_mb, mb)
                if mb > self.limit_mb:
                    self.over.append((pid, mb))
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            self._stop.wait(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _holds(table: pa.Table, needles) -> list[str]:
    """The needles found in any string value of the table (nested columns included)."""
    found = []

    def walk(arr):
        if pa.types.is_struct(arr.type):
            for i in range(arr.type.num_fields):
                walk(pc.struct_field(arr, i))
        elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
            walk(pc.list_flatten(arr))
        elif pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            found.extend(n for n in needles if pc.any(pc.match_substring(arr, n)).as_py())

    for column in table.columns:
        walk(column.combine_chunks() if column.num_chunks else pa.array([], column.type))
    return found


_CONFINE = ('for d; do [ "$d" = -- ] && break; mount --bind "$d" "$d" || exit 97; done; '
            'mount -o remount,bind,ro / || exit 97; '
            'while [ "$1" != -- ]; do shift; done; shift; exec "$@"')


def confined(argv: list[str], writable: list[Path]) -> list[str]:
    """``argv`` in a mount namespace of its own where the file system is read-only except ``writable``
    (and the kernel's own: /dev/shm for Ray's object store, /proc, /sys). A write anywhere else fails
    with EROFS in the run itself, whatever else happens on the machine at the same time: what the run
    may write is enforced, not looked for afterwards (a scan for changed files also saw other work)."""
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]  # unprivileged: a user namespace
    return ["unshare", *user, "--mount", "--propagation", "private", "sh", "-c", _CONFINE, "confine",
            *map(str, writable), "--", *argv]


def test_the_confinement_refuses_a_write_outside_and_allows_the_writable_folders(tmp_path):
    allowed, elsewhere = tmp_path / "allowed", tmp_path / "elsewhere"
    allowed.mkdir()
    elsewhere.mkdir()
    code = ("import pathlib, sys; pathlib.Path(sys.argv[1], 'ok').write_text('x');"
            "pathlib.Path('/dev/shm', 'pubmine-confine-test').write_text('x');"
            "pathlib.Path('/dev/shm', 'pubmine-confine-test').unlink();"
            "pathlib.Path(sys.argv[2], 'escaped').write_text('x')")
    out = subprocess.run(confined([sys.executable, "-c", code, str(allowed), str(elsewhere)], [allowed]),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "Read-only file system" in out.stderr, (out.returncode, out.stderr[-2000:])
    assert (allowed / "ok").read_text() == "x" and not (elsewhere / "escaped").exists()


@pytest.mark.slow  # a whole pubmine run in another process
def test_hostile_one_run_over_the_whole_corpus(tiny_model, tmp_path, secret, listener, request):
    store, home, cwd = (tmp_path / n for n in ("store", "home", "cwd"))
    for d in (home, cwd):
        d.mkdir()
    tmp = Path(tempfile.mkdtemp(prefix="pm-", dir="/tmp"))  # short: Ray's socket paths live below it
    request.addfinalizer(lambda: shutil.rmtree(tmp, ignore_errors=True))
    refused_before = netguard.attempts()
    env = {**os.environ, "RAY_ADDRESS": "", "HOME": str(home), "TMPDIR": str(tmp), "PYTHONDONTWRITEBYTECODE": "1"}
    assert env["PUBMINE_NETWORK_GUARD"] == "1" and str(ROOT / "tests" / "netguard") in env["PYTHONPATH"]
    argv = [sys.executable, "-m", "pipeline.cli", "run", "-c", str(ROOT / "configs" / "local.yaml"),
            "--store", str(store), "--set", "run_id=hostile", "--set", f"extract.model={tiny_model}",
            "--set", "extract.normalizer=none", "--set", "extract.relations=[]", "--set", "extract.precision=fp32",
            "--set", "report.gold=none", "--set", "index.enabled=false", "--set", "ray.num_cpus=2", str(HOSTILE)]
    # the run may write its store, its temp folder, its home and cwd (both empty), the network
    # guard's log, and nothing else: everything else is read-only to it
    guard_log = Path(os.environ["PUBMINE_NETWORK_GUARD_LOG"]).parent
    store.mkdir()
    with MemoryLimit(PARSE_WORKER_LIMIT_MB) as memory:
        out = subprocess.run(confined(argv, [store, tmp, home, cwd, guard_log]), cwd=cwd,
                             env={**env, "PYTHONPATH": f"{ROOT}{os.pathsep}{env['PYTHONPATH']}"},
                             capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "Read-only file system" not in out.stdout + out.stderr  # it never even tried to write elsewhere
    assert memory.seen, "no parse worker was seen: the memory limit enforced nothing"
    assert memory.over == [] and memory.peak_mb < PARSE_WORKER_LIMIT_MB, (memory.over, memory.peak_mb)

    snap = store / "snapshots" / "hostile"
    docs = pads.dataset(snap / "documents", format="parquet").to_table(columns=["pmid", "pmcid", "source", "source_file"])
    published, rows = collections.defaultdict(set), collections.Counter()
    for r in docs.to_pylist():
        key = r["pmcid"] if r["source"] == "pmc" else str(r["pmid"])
        published[r["source_file"]].add(key)
        rows[r["source_file"], key] += 1
    assert [k for k, n in rows.items() if n != 1] == []  # each document once: a set would hide a second row
    rejects = collections.defaultdict(list)
    for r in pads.dataset(snap / "rejects", format="parquet").to_table().to_pylist():
        rejects[r["source_file"]].append(r)
    for row in INPUTS:
        name = row["file"]
        assert published.get(name, set()) == _published(row["published"]), name
        assert collections.Counter(r["reason"] for r in rejects.get(name, [])) == _expected_rejects(row["rejects"]), name
        if row["says"]:
            assert any(row["says"] in (r["detail"] or "") for r in rejects[name]), name
    assert set(published) | set(rejects) <= {r["file"] for r in INPUTS}
    big = pads.dataset(snap / "sentences", format="parquet").to_table(columns=["doc_id"]).num_rows
    assert big > 2_500  # the 5 MB abstract (~2,000-character sentences) was split and published, not dropped

    # nothing leaked into any output, nothing was fetched, nothing left the machine
    needles = (secret, "root:x:0:0", "FETCHED")
    for path in store.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert not [n for n in needles if n.encode() in blob], path
            if path.suffix == ".parquet":  # compressed pages hide strings from a byte scan: the values too
                assert not _holds(pq.read_table(path), needles), path
    assert secret not in out.stdout + out.stderr
    assert listener == [], listener
    assert netguard.attempts() == refused_before  # the 203.0.113.9 entity was never even tried


def test_hostile_the_pickle_and_the_remote_code_do_run_when_loaded_naively(tmp_path):
    """The model cases are live: unpickling the checkpoint or importing the module writes its marker
    (so the refusal test above, which finds no marker, can fail)."""
    markers = [Path("/tmp/pubmine-hostile-pickle-ran"), Path("/tmp/pubmine-hostile-remote-code-ran")]
    code = ("import pickle, runpy, sys; pickle.loads(open(sys.argv[1], 'rb').read()); runpy.run_path(sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, str(HOSTILE / "model-pickle-only" / "pytorch_model.bin"),
                    str(HOSTILE / "model-remote-code" / "modeling_evil.py")], check=True, cwd=tmp_path)
    assert all(m.exists() for m in markers)
    for m in markers:
        m.unlink()
