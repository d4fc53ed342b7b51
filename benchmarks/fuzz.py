"""Coverage-guided fuzzing of the MEDLINE and JATS parsers (PyPI atheris: libFuzzer over Python).

Each target runs in a fresh process under libFuzzer for ``--runs`` executions, its Python code in
pipeline.parse instrumented for coverage. The seed corpus is built here from real inputs: every
record of the MEDLINE files in ../shared/data/pubmed_xml as a one-record file, the PMC articles of
../shared/data/pmc_jats trimmed to their front matter and first sections (libFuzzer's inputs stay
small, so executions stay fast), and the small files of the hostile corpus (tests/data/hostile).

What counts as a crash: any exception but the ``ShardError`` a bad file is meant to raise, and any
document that breaks the text contract (passages out of order, a sentence not at its offsets). A
crash stops its target, its input is kept under benchmarks/results/fuzz-crashes/ (add it to
tests/test_fuzz_regressions.py once fixed), and the run ends with crashes=1 or more.

    python -m benchmarks.fuzz [--runs 60000] [--max-len 16384]

The last line: ``RESULT fuzz executions=<n> crashes=<n>``. Needs the bench extras
(``pip install -e '.[bench]'``: atheris).
"""

from __future__ import annotations

import argparse
import gzip
import io
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRASHES = ROOT / "benchmarks" / "results" / "fuzz-crashes"
TARGETS = ("medline", "jats")


# -- the targets (run in the child process)

def check_document(doc) -> None:
    """The text contract every parsed document keeps, whatever its input was."""
    from pipeline.parse.document import document_text
    from pipeline.parse.sentences import split_spans

    text = document_text(doc.passages)  # raises on overlapping passages
    for p in doc.passages:
        if text[p.offset:p.offset + len(p.text)] != p.text:
            raise AssertionError(f"passage {p.kind} is not at its offset {p.offset}")
        for s, e in split_spans(p.text):
            if not (0 <= s < e <= len(p.text)) or p.text[s:e] != p.text[s:e].strip():
                raise AssertionError(f"sentence {s}:{e} of a {p.kind} passage is out of place")
    if doc.pmid is not None and not (isinstance(doc.pmid, int) and doc.pmid > 0):
        raise AssertionError(f"PMID {doc.pmid!r}")


def one_input(target: str, data: bytes) -> None:
    from pipeline.errors import ShardError
    from pipeline.parse.medline import iter_medline
    from pipeline.parse.sources import iter_records

    events = iter_medline(io.BytesIO(data), "fuzz.xml") if target == "medline" else \
        iter_records(io.BytesIO(data), "fuzz.nxml")
    try:
        for kind, payload in events:
            if kind == "document":
                check_document(payload)
            elif kind == "reject" and not payload.get("reason"):
                raise AssertionError(f"a reject without a reason: {payload}")
    except ShardError:
        pass  # a file that cannot be parsed fails alone: the designed outcome


def child(target: str, libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["pipeline.parse"]):
        import pipeline.parse.jats  # noqa: F401
        import pipeline.parse.medline  # noqa: F401
        import pipeline.parse.records  # noqa: F401
        import pipeline.parse.sentences  # noqa: F401
        import pipeline.parse.sources  # noqa: F401
    atheris.Setup([sys.argv[0], *libfuzzer_args], lambda data: one_input(target, data))
    atheris.Fuzz()


# -- seeds and the driver (the parent process)

def _medline_seeds(out: Path) -> int:
    from benchmarks.parse import _records, real_files

    n = 0
    for path in real_files():
        for record in _records(path, ("PubmedArticle", "MedlineCitation", "DeleteCitation", "PubmedBookArticle")):
            root = b"MedlineCitationSet" if record.startswith(b"<MedlineCitation") else b"PubmedArticleSet"
            if len(record) < 16000:
                (out / f"medline-{n:05d}.xml").write_bytes(b'<?xml version="1.0"?>\n<%s>%s</%s>\n' % (root, record, root))
                n += 1
            if n >= 400:
                return n
    return n


def _jats_seeds(out: Path) -> int:
    from lxml import etree

    from pipeline.config import shared_data_dir

    n = 0
    for path in sorted((shared_data_dir() / "pmc_jats").rglob("*")):
        if not path.name.endswith((".nxml", ".xml", ".xml.gz")):
            continue
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as f:
            root = etree.parse(f, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)).getroot()
        articles = [root] if root.tag == "article" else list(root.iterfind("article"))
        for art in articles[:5]:
            for el in art.iterfind("back"):
                art.remove(el)
            body = art.find("body")
            if body is not None:
                for sec in list(body)[2:]:
                    body.remove(sec)
            data = etree.tostring(art)
            (out / f"jats-{n:04d}.nxml").write_bytes(b'<?xml version="1.0"?>\n' + data[:12000])
            n += 1
    return n


def _hostile_seeds(out: Path) -> int:
    n = 0
    for path in sorted((ROOT / "tests" / "data" / "hostile").iterdir()):
        if path.is_file() and path.suffix in (".xml", ".nxml") and 0 < path.stat().st_size < 8192:
            shutil.copy(path, out / f"hostile-{path.name}")
            n += 1
    return n


_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_STAT = re.compile(r"^#(\d+)\s", re.M)


def fuzz(target: str, runs: int, max_len: int, work: Path) -> dict:
    corpus = work / f"corpus-{target}"
    corpus.mkdir()
    seeds = (_medline_seeds(corpus) if target == "medline" else _jats_seeds(corpus)) + _hostile_seeds(corpus)
    artifacts = work / f"artifacts-{target}"
    artifacts.mkdir()
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.fuzz", "--child", target, f"-runs={runs}", f"-max_len={max_len}",
         "-timeout=20", "-rss_limit_mb=3072", f"-artifact_prefix={artifacts}/", "-print_final_stats=1", str(corpus)],
        cwd=ROOT, capture_output=True, text=True)
    seconds = time.time() - t0
    log = proc.stderr
    done = _DONE.search(log)
    executions = int(done.group(1)) if done else max((int(x) for x in _STAT.findall(log)), default=0)
    crashes = sorted(p for p in artifacts.iterdir() if p.is_file())
    if crashes:
        CRASHES.mkdir(parents=True, exist_ok=True)
        for p in crashes:
            shutil.copy(p, CRASHES / f"{target}-{p.name}")
        print(log[-4000:], file=sys.stderr)
    elif proc.returncode != 0:
        print(log[-4000:], file=sys.stderr)
    return {"target": target, "seeds": seeds, "executions": executions, "seconds": seconds,
            "crashes": len(crashes) or int(proc.returncode != 0)}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=60_000, help="executions per target")
    ap.add_argument("--max-len", type=int, default=16384, help="libFuzzer's largest input, in bytes")
    args = ap.parse_args()
    try:
        import atheris  # noqa: F401
    except ImportError:
        sys.exit("benchmarks.fuzz needs atheris: pip install -e '.[bench]'")
    with tempfile.TemporaryDirectory(prefix="pubmine-fuzz-") as tmp:
        results = [fuzz(t, args.runs, args.max_len, Path(tmp)) for t in TARGETS]
    print(f"{'target':<8} {'seeds':>6} {'executions':>11} {'seconds':>8} {'exec/s':>8} {'crashes':>8}")
    for r in results:
        print(f"{r['target']:<8} {r['seeds']:>6} {r['executions']:>11,} {r['seconds']:>8.1f} "
              f"{r['executions'] / max(r['seconds'], 1e-9):>8.0f} {r['crashes']:>8}")
    total = sum(r["executions"] for r in results)
    crashes = sum(r["crashes"] for r in results)
    print(f"RESULT fuzz executions={total} crashes={crashes}")


if __name__ == "__main__":
    main()
