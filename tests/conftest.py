"""Shared fixtures. Every service a test needs is started here and stopped by PID; nothing touches
the network beyond loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pipeline.config import shared_data_dir
from tests import netguard

ROOT = Path(__file__).resolve().parent.parent
DATA = shared_data_dir()

# The network guard (tests/netguard): this process and every Python process the session starts (Ray
# workers, CLIs, servers' clients) may connect to loopback and this machine's own addresses only.
_GUARD_DIR = Path(__file__).resolve().parent / "netguard"
os.environ["PUBMINE_NETWORK_GUARD"] = "1"
_GUARD_LOG_DIR = None if os.environ.get("PUBMINE_NETWORK_GUARD_LOG") else tempfile.mkdtemp(prefix="pubmine-netguard-")
if _GUARD_LOG_DIR:  # ours: removed when the session ends
    os.environ["PUBMINE_NETWORK_GUARD_LOG"] = os.path.join(_GUARD_LOG_DIR, "attempts")
os.environ["PYTHONPATH"] = os.pathsep.join([str(_GUARD_DIR), *filter(None, [os.environ.get("PYTHONPATH")])])
netguard.install()
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage reports home from the session's Ray
S3_ENV = {"AWS_ACCESS_KEY_ID": "pubmine", "AWS_SECRET_ACCESS_KEY": "pubmine-secret", "AWS_DEFAULT_REGION": "us-east-1",
          "S3_BUCKET": "pubmine"}


def pytest_sessionfinish(session, exitstatus):
    refused = netguard.attempts()
    if refused:  # a connection beyond this machine was tried somewhere, even if its error was swallowed
        print(f"\nnetwork guard: {len(refused)} connection(s) beyond this machine were attempted: {refused[:10]}")
        session.exitstatus = 1
    if _GUARD_LOG_DIR:
        shutil.rmtree(_GUARD_LOG_DIR, ignore_errors=True)


# The tiers (`make test-fast` runs `-m "not slow and not gpu"`): a test is slow when it takes one of
# these fixtures (a real Ray, the S3 server) or is marked so (it runs pubmine in another
# process, or trains); gpu when it takes ``cuda``. Marked here, by fixture, so a new test that asks
# for Ray is slow without anyone remembering to say so.
SLOW_FIXTURES = {"ray_local", "s3_server",  # and every fixture built on them
                 "base_store", "clean_rerun"}  # test_nightly: whole pubmine runs in other processes


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
        if "cuda" in names:
            item.add_marker(pytest.mark.gpu)


@pytest.fixture(autouse=True)
def _corpora(request):
    """Only the tests whose module reads the corpora (it imports DATA) need them; they fail with where
    the corpora are expected, the others run without."""
    if "DATA" in vars(request.module) and not (DATA / "bc5cdr").is_dir():
        pytest.fail(f"the corpora are expected at {DATA} (../shared/data beside the repo, or $PUBMINE_DATA)")


@pytest.fixture(scope="session")
def cuda():
    """A CUDA device: gpu tests run where there is one (`make test` deselects them where there is not)."""
    import torch

    if not torch.cuda.is_available():
        pytest.fail("this test needs a CUDA device; run it on a GPU machine, or deselect it with -m 'not gpu'")
    return "cuda"


def free_port(span: int = 1) -> int:
    """A port p such that p..p+span-1 (and p+10001..p+10005 for gRPC) are free on loopback."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + 10010 > 65000:
            continue
        ports = list(range(base, base + span)) + list(range(base + 10001, base + 10006))
        ok = True
        for p in ports:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range found")


@pytest.fixture(scope="session", autouse=True)
def pubmine_home(tmp_path_factory):
    """Caches (staged models, checkpoints) go to a temporary folder, never the user's."""
    home = tmp_path_factory.mktemp("pubmine-home")
    old = os.environ.get("PUBMINE_HOME")
    os.environ["PUBMINE_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("PUBMINE_HOME", None)
    else:
        os.environ["PUBMINE_HOME"] = old


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny real BERT: random weights, the real MiniLM WordPiece tokenizer, a real artifact."""
    from workers.training.tiny import tiny_bert

    folder = tmp_path_factory.mktemp("tiny-model")
    tiny_bert(folder)
    return folder


# a few real dictionary entries: what the tiny normalizer knows (MeSH IDs as in MeSH 2024)
TINY_DICTIONARY = [("Chemical", "MESH:D009270", "naloxone", 1), ("Chemical", "MESH:D003000", "clonidine", 1),
                   ("Chemical", "MESH:D015738", "famotidine", 1), ("Disease", "MESH:D003693", "delirium", 1),
                   ("Disease", "MESH:D006973", "hypertension", 1), ("Disease", "MESH:D006973", "high blood pressure", 2)]


@pytest.fixture(scope="session")
def tiny_normalizer(tmp_path_factory, tiny_model) -> Path:
    """A real normalizer artifact over a six-name dictionary, with the tiny model's encoder; threshold
    -1, so every mention that the dictionary misses links to its nearest name (plumbing tests)."""
    from workers.inference.normalize import Dictionary
    from workers.training.normalizer import build_normalizer

    d = Dictionary()
    for kind, cid, name, rank in TINY_DICTIONARY:
        d.add(kind, cid, name, rank, preferred=rank == 1)
    d.sources.append("tiny")
    folder = tmp_path_factory.mktemp("tiny-normalizer")
    build_normalizer(str(folder), encoder=str(tiny_model), threshold=-1.0, progress=False, log=lambda *_: None,
                     dictionary=d, with_lexicon=False)
    return folder


@pytest.fixture(scope="session")
def tiny_relation(tmp_path_factory) -> Path:
    """A tiny document-level relation artifact (BC5CDR CID form) that calls every candidate CID."""
    from workers.training.tiny import tiny_relation_bert

    folder = tmp_path_factory.mktemp("tiny-relation")
    tiny_relation_bert(folder, always="CID")
    return folder


@pytest.fixture(scope="session")
def tiny_docre(tmp_path_factory) -> Path:
    """A tiny one-pass document-level relation artifact (task re-doc) that relates every candidate
    Chemical/Disease/Gene concept pair as Positive_Correlation, Novel."""
    from workers.training.tiny import tiny_docre as build

    folder = tmp_path_factory.mktemp("tiny-redoc")
    build(folder, always="Positive_Correlation")
    return folder


@pytest.fixture(scope="session")
def tiny_reader(tmp_path_factory, tiny_model) -> Path:
    """A small question-answering reader (task qa) trained for a few steps from the tiny BERT: every
    code path of the real one, answers of no quality."""
    from pipeline.config import load_dataclass
    from workers.training.qa import QaTrainConfig, train_qa

    folder = tmp_path_factory.mktemp("tiny-qa")
    cfg = load_dataclass(QaTrainConfig, ROOT / "configs/models/default-qa.yaml", [
        f"base_model={tiny_model}", "limit_examples=24", "general_limit=16", "max_length=128", "stride=32",
        "batch_size=8", "score_test=false", "epochs=1", "name=tiny-qa"])
    train_qa(cfg, str(folder), progress=False, log=lambda *_: None)
    return folder


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray, in-process, for the whole session."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


class S3Server:
    """A SeaweedFS server of our own (infra/local/s3.sh) on a free loopback port; ``stop`` and ``start``
    again keep its data (the state folder), so a test can take the store away mid-run."""

    def __init__(self, state: Path):
        self.state, self.port = state, free_port(6)
        self.env = {**os.environ, **S3_ENV, "PUBMINE_S3_PORT": str(self.port),
                    "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def _script(self, verb: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(ROOT / "infra" / "local" / "s3.sh"), verb, str(self.state)], env=self.env,
                              capture_output=True, text=True, timeout=60)

    def start(self) -> "S3Server":
        out = self._script("start")
        if out.returncode != 0:
            raise RuntimeError(f"S3 server did not start: {out.stderr}")
        return self

    def stop(self) -> None:
        self._script("stop")

    def storage_options(self, **extra) -> dict:
        # credentials travel in storage_options: Ray workers started before a fixture lack the env
        return {"s3": {"endpoint_url": self.endpoint, "key": S3_ENV["AWS_ACCESS_KEY_ID"],
                       "secret": S3_ENV["AWS_SECRET_ACCESS_KEY"], **extra}}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server (SeaweedFS `weed mini`) on loopback, started by infra/local/s3.sh."""
    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    try:
        yield {"endpoint": server.endpoint, "bucket": "pubmine", "storage_options": server.storage_options()}
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def calibrated_copy(artifact: Path, folder: Path):
    """``pubmine calibrate`` on a copy of ``artifact`` at ``folder`` (the session's fixture stays as it
    is): (the manifest before, the manifest after, the command's output)."""
    from typer.testing import CliRunner

    from pipeline.cli import app
    from workers.inference.artifacts import read_manifest

    shutil.copytree(artifact, folder)
    before = read_manifest(folder)
    result = CliRunner().invoke(app, ["calibrate", "-m", str(folder), "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    return before, read_manifest(folder), result.output


def write_medline(path: Path, articles: list[tuple[int, str, str]], deleted: tuple[int, ...] = ()) -> Path:
    """A small MEDLINE update file written by us: (pmid, title, abstract) records, then a DeleteCitation."""
    from lxml import etree

    root = etree.Element("PubmedArticleSet")
    for pmid, title, abstract in articles:
        cit = etree.SubElement(etree.SubElement(root, "PubmedArticle"), "MedlineCitation", Status="MEDLINE", Owner="NLM")
        etree.SubElement(cit, "PMID", Version="1").text = str(pmid)
        article = etree.SubElement(cit, "Article", PubModel="Print")
        etree.SubElement(article, "ArticleTitle").text = title
        if abstract:
            etree.SubElement(etree.SubElement(article, "Abstract"), "AbstractText").text = abstract
    if deleted:
        dc = etree.SubElement(root, "DeleteCitation")
        for pmid in deleted:
            etree.SubElement(dc, "PMID", Version="1").text = str(pmid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return path
