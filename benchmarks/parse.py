"""Parse throughput and memory: pubmine's parse stage vs pubmed_parser's parse_medline_xml, one core.

Inputs (the same for both):
- a baseline-size file of 30,000 articles built from the real records in ../shared/data/pubmed_xml
  (every PubmedArticle and legacy MedlineCitation there, cycled, each copy given a new PMID, written
  as a gzip'd PubmedArticleSet like NLM's baseline files), and a 3,000-article file built the same way;
- the real files themselves (gzip'd copies where they are plain XML: pubmed_parser reads only .gz).

Ours is the whole parse stage as a Ray parse task runs it (``parse_shards``): the Beam pipeline on
FnApiRunner (ReadXml → ParseArticles → SplitSentences → ToArrow → WriteShardTables), the full field
set (authors with affiliations, MeSH with qualifiers, OtherAbstract, references, ...), sentences, and
five Parquet tables plus a completion marker per file in a store. The inputs are grouped into Beam
runs exactly as the stage groups them for its Ray parse tasks (``group_shards``, default
``parse.group_mb``); the baseline-size file is also measured alone.
pubmed_parser runs with its fullest options (year_info_only=False, nlm_category=True,
author_list=True, reference_list=True, parse_downto_mesh_subterms=True) and the generator is drained.
Each measurement is a fresh process pinned to one core; each input is timed ``--repeat`` times and
the best pass counts, for both parsers (the VM's timings wander by ±5%). Peak RSS is measured in a
separate fresh process per file size (one pass), as that process's ru_maxrss.

    python -m benchmarks.parse [--articles 30000] [--small 3000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

from pipeline.config import shared_data_dir

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"


def real_files() -> list[Path]:
    base = shared_data_dir() / "pubmed_xml"
    return sorted(p for p in base.rglob("*") if p.name.endswith((".xml", ".xml.gz")))


def _records(path: Path, tags: tuple[str, ...] = ("PubmedArticle", "MedlineCitation")):
    """The serialized records of a MEDLINE file (a MedlineCitation inside a PubmedArticle is not one)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        for _, el in etree.iterparse(f, events=("end",), tag=tags):
            if el.tag == "MedlineCitation" and el.getparent() is not None and el.getparent().tag == "PubmedArticle":
                continue
            yield etree.tostring(el)


def build_file(n: int, out: Path, first_pmid: int = 90_000_000) -> Path:
    """n articles from the real records, cycled, each with a new PMID (``first_pmid`` on); legacy
    MedlineCitation records are wrapped as PubmedArticle (with PubmedData) so both parsers see the
    current format."""
    if out.exists():
        return out
    pool = [r for p in real_files() for r in _records(p)]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with gzip.open(tmp, "wb", compresslevel=5) as f:
        f.write(b'<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
                b'1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n')
        for i in range(n):
            el = etree.fromstring(pool[i % len(pool)])
            pmid = str(first_pmid + i)
            if el.tag == "MedlineCitation":
                wrapper = etree.Element("PubmedArticle")
                wrapper.append(el)
                ids = etree.SubElement(etree.SubElement(wrapper, "PubmedData"), "ArticleIdList")
                etree.SubElement(ids, "ArticleId", IdType="pubmed").text = pmid
                el = wrapper
            el.find("MedlineCitation/PMID").text = pmid
            for aid in el.iterfind("PubmedData/ArticleIdList/ArticleId"):
                if aid.get("IdType") == "pubmed":
                    aid.text = pmid
            f.write(etree.tostring(el) + b"\n")
        f.write(b"</PubmedArticleSet>\n")
    tmp.rename(out)
    return out


def gz_copies(files: list[Path], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for p in files:
        if p.name.endswith(".gz"):
            out.append(p)
            continue
        target = folder / (p.name + ".gz")
        if not target.exists():
            target.write_bytes(gzip.compress(p.read_bytes()))
        out.append(target)
    return out


# ---------------------------------------------------------------------------------------------
# workers (run in a fresh, single-core process)


def _worker(kind: str, paths: list[str], repeat: int = 1) -> dict:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    results = []
    if kind == "pubmine":  # paths separated by "+" run as one group, as the stage packs small files
        from pipeline.beam.run import parse_shards
        from pipeline.plan import list_inputs, plan_shards
        from pipeline.storage import Store

        for group in paths:
            shards = plan_shards(list_inputs(group.split("+")))
            seconds = float("inf")
            for _ in range(repeat):
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    markers = parse_shards(shards, Store(tmp), reuse=False)
                    seconds = min(seconds, time.perf_counter() - t0)
            bad = [m["error"] for m in markers if not m["ok"]]
            if bad:
                raise SystemExit("\n".join(bad))
            results.append({"path": group, "articles": sum(m["rows"]["documents"] for m in markers),
                            "sentences": sum(m["rows"]["sentences"] for m in markers), "seconds": seconds,
                            "files": len(shards)})
    elif kind == "pubmed_parser":
        import pubmed_parser as pp

        for path in paths:
            seconds = float("inf")
            for _ in range(repeat):
                t0 = time.perf_counter()
                n = 0
                for rec in pp.parse_medline_xml(path, year_info_only=False, nlm_category=True, author_list=True,
                                                reference_list=True, parse_downto_mesh_subterms=True):
                    n += 1
                seconds = min(seconds, time.perf_counter() - t0)
            results.append({"path": path, "articles": n, "seconds": seconds})
    else:
        raise SystemExit(f"unknown worker {kind!r}; expected pubmine or pubmed_parser")
    return {"results": results, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_worker(kind: str, paths: list, repeat: int = 1) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.parse", "--worker", kind, "--repeat", str(repeat), *map(str, paths)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--articles", type=int, default=30_000)
    ap.add_argument("--small", type=int, default=3_000)
    ap.add_argument("--repeat", type=int, default=3, help="timed passes per input; the best counts (both parsers)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.paths, args.repeat)))
        return

    t0 = time.perf_counter()
    big = build_file(args.articles, CACHE / f"pubmed26n{args.articles // 1000 + 9000:04d}.xml.gz")
    small = build_file(args.small, CACHE / f"pubmed26n{args.small // 1000 + 9000:04d}.xml.gz")
    reals = gz_copies(real_files(), CACHE / "real")
    print(f"inputs: {big.name} ({args.articles:,} articles, {big.stat().st_size / 1e6:.1f} MB gz), "
          f"{len(reals)} real files; built in {time.perf_counter() - t0:.1f} s")

    # ours: the inputs grouped exactly as the stage groups them for its Ray parse tasks
    # (group_shards with the default parse.group_mb), and the baseline-size file alone;
    # pubmed_parser: file by file (it has no notion of groups)
    from pipeline.beam.run import group_shards
    from pipeline.config import ParseConfig

    inputs = [big, *reals]
    groups = group_shards([p.stat().st_size for p in inputs], int(ParseConfig().group_mb * 1024 * 1024))
    grouped = ["+".join(str(inputs[i]) for i in g) for g in groups]
    ours_all = run_worker("pubmine", grouped, args.repeat)["results"]
    ours_big = run_worker("pubmine", [str(big)], args.repeat)["results"][0]
    theirs = run_worker("pubmed_parser", inputs, args.repeat)["results"]
    theirs_big = theirs[0]
    ours_n, ours_s = sum(r["articles"] for r in ours_all), sum(r["seconds"] for r in ours_all)
    theirs_n, theirs_s = sum(r["articles"] for r in theirs), sum(r["seconds"] for r in theirs)
    print(f"\n{'input':44s} {'pubmine':>9s} {'art/s':>8s} {'pubmed_parser':>14s} {'art/s':>8s} {'ratio':>6s}")
    o_rate, t_rate = ours_big["articles"] / ours_big["seconds"], theirs_big["articles"] / theirs_big["seconds"]
    print(f"{big.name:44s} {ours_big['articles']:9,d} {o_rate:8.0f} {theirs_big['articles']:14,d} {t_rate:8.0f} "
          f"{o_rate / t_rate:6.2f}")
    ours_rate, theirs_rate = ours_n / ours_s, theirs_n / theirs_s
    label = f"all {len(inputs)} inputs ({len(groups)} Beam run{'s' if len(groups) > 1 else ''})"
    print(f"{label:44s} {ours_n:9,d} {ours_rate:8.0f} {theirs_n:14,d} {theirs_rate:8.0f} {ours_rate / theirs_rate:6.2f}")
    print(f"  sentences written by pubmine: {sum(r['sentences'] for r in ours_all):,}")
    if ours_n > theirs_n:
        print(f"  pubmed_parser returned {ours_n - theirs_n:,} fewer articles (legacy MedlineCitationSet files are not read)")

    print("\npeak RSS, one process per file (MB):")
    print(f"{'articles':>10s} {'pubmine':>9s} {'pubmed_parser':>14s}")
    rss = {}
    for n, path in ((args.small, small), (args.articles, big)):
        rss[n] = {kind: run_worker(kind, [path])["max_rss_mb"] for kind in ("pubmine", "pubmed_parser")}
        print(f"{n:10,d} {rss[n]['pubmine']:9.0f} {rss[n]['pubmed_parser']:14.0f}")
    growth = rss[args.articles]["pubmine"] / rss[args.small]["pubmine"] - 1
    print(f"pubmine peak RSS grows {growth * 100:+.1f}% from {args.small:,} to {args.articles:,} articles (target within 20%)")
    print(f"RESULT parse articles_per_s={ours_rate:.0f} baseline={theirs_rate:.0f} ratio={ours_rate / theirs_rate:.2f} "
          f"rss_small_mb={rss[args.small]['pubmine']:.0f} rss_big_mb={rss[args.articles]['pubmine']:.0f}")


if __name__ == "__main__":
    main()
