"""What a nightly run costs when one update file arrives: a baseline run, then the same inputs plus one
update file into the same store, with the default models (`make model`).

Inputs, written by this benchmark under .cache/bench/incremental/ from the real records in
../shared/data/pubmed_xml (cycled, each copy a new PMID; benchmarks.parse.build_file):
- baseline: two files named like NLM's baseline (pubmed26n0001/0002.xml.gz), --citations in all;
- update: pubmed26n1001.xml.gz with --new new citations, --revised citations of the baseline with a
  changed title, and a DeleteCitation of --deleted others.

The second run must send exactly the new and revised documents to the models and reuse every other
extraction; the ratio of the two wall times is the cost of a night against a full run.

    python -m benchmarks.incremental [--citations 10000] [--new 200] [--revised 100] [--deleted 50]

Last line: RESULT incremental ratio=<second/first> extracted=<n> reused=<n>
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import time
from pathlib import Path

from lxml import etree
from rich.console import Console
from rich.table import Table

from benchmarks.parse import build_file
from pipeline.config import load_config
from pipeline.driver import run

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cache" / "bench" / "incremental"


def update_file(baseline: list[Path], out: Path, new: int, revised: int, deleted: int, first_new_pmid: int) -> dict:
    """The update file: ``new`` citations with fresh PMIDs (copies of baseline records), the first
    ``revised`` baseline citations with a changed title, and a DeleteCitation of the next ``deleted``."""
    records = []
    with gzip.open(baseline[0], "rb") as f:
        for _, el in etree.iterparse(f, events=("end",), tag="PubmedArticle"):
            records.append(etree.tostring(el))
            if len(records) >= revised + deleted + new:
                break
    out.parent.mkdir(parents=True, exist_ok=True)
    pmids = {"revised": [], "deleted": [], "new": []}
    with gzip.open(out, "wb") as f:
        f.write(b'<?xml version="1.0" encoding="utf-8"?>\n<PubmedArticleSet>\n')
        for i, raw in enumerate(records[:revised]):
            el = etree.fromstring(raw)
            title = el.find("MedlineCitation/Article/ArticleTitle")
            title.text = (title.text or "") + f" (revised {i})"
            pmids["revised"].append(int(el.findtext("MedlineCitation/PMID")))
            f.write(etree.tostring(el) + b"\n")
        for i, raw in enumerate(records[revised + deleted : revised + deleted + new]):
            el = etree.fromstring(raw)
            pmid = str(first_new_pmid + i)
            el.find("MedlineCitation/PMID").text = pmid
            for aid in el.iterfind("PubmedData/ArticleIdList/ArticleId"):
                if aid.get("IdType") == "pubmed":
                    aid.text = pmid
            pmids["new"].append(int(pmid))
            f.write(etree.tostring(el) + b"\n")
        f.write(b"<DeleteCitation>\n")
        for raw in records[revised : revised + deleted]:
            pmid = etree.fromstring(raw).findtext("MedlineCitation/PMID")
            pmids["deleted"].append(int(pmid))
            f.write(f'<PMID Version="1">{pmid}</PMID>\n'.encode())
        f.write(b"</DeleteCitation>\n</PubmedArticleSet>\n")
    return pmids


def files_and_sizes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def timed_run(inputs: list[Path], store: Path, run_id: str):
    # report.gold=none: the spot-check is a fixed cost per night (its seconds are in the manifest), not the
    # work a night saves
    cfg = load_config(ROOT / "configs" / "local.yaml", [f"run_id={run_id}", "report.gold=none"], inputs=[str(p) for p in inputs],
                      store=str(store))
    before = files_and_sizes(store) if store.exists() else {}
    t = time.perf_counter()
    summary = run(cfg)
    seconds = time.perf_counter() - t
    after = files_and_sizes(store)
    new = {k: v for k, v in after.items() if k not in before or before[k] != v}
    manifest = __import__("json").loads((store / "snapshots" / run_id / "_manifest.json").read_text())
    return summary, seconds, new, manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--citations", type=int, default=10_000)
    ap.add_argument("--new", type=int, default=200)
    ap.add_argument("--revised", type=int, default=100)
    ap.add_argument("--deleted", type=int, default=50)
    args = ap.parse_args()
    console = Console()

    half = args.citations // 2
    inputs = WORK / f"inputs-{args.citations}"  # cached per size: build_file keeps a file that exists
    first = build_file(half, inputs / "pubmed26n0001.xml.gz")
    second_file = inputs / "pubmed26n0002.xml.gz"
    if not second_file.exists():  # the next PMIDs: a second baseline file
        _split_tail(build_file(args.citations, WORK / f"all-{args.citations}.xml.gz"), half, second_file)
    update = inputs / f"update-{args.new}-{args.revised}-{args.deleted}" / "pubmed26n1001.xml.gz"
    pmids = update_file([first], update, args.new, args.revised, args.deleted, first_new_pmid=95_000_000)
    if [len(pmids[k]) for k in ("new", "revised", "deleted")] != [args.new, args.revised, args.deleted]:
        raise SystemExit(f"the first baseline file has too few records for {args.new} new, {args.revised} revised "
                         f"and {args.deleted} deleted citations; give a larger --citations")

    store = WORK / "store"
    shutil.rmtree(store, ignore_errors=True)
    s1, t1, w1, m1 = timed_run([first, second_file], store, "baseline")
    s2, t2, w2, m2 = timed_run([first, second_file, update], store, "night")

    expected = args.new + args.revised
    table = Table(title=f"nightly cost: {m1['counts']['documents']:,} citations, then one update file "
                        f"({args.new} new, {args.revised} revised, {args.deleted} deleted)", title_justify="left")
    for col in ("", "baseline run", "night run", "night / baseline"):
        table.add_column(col, justify="right" if col else "left")
    b1, b2 = sum(w1.values()), sum(w2.values())
    rows = [
        ("wall time (s)", f"{t1:.1f}", f"{t2:.1f}", f"{t2 / t1:.3f}"),
        ("documents in the snapshot", f"{s1.documents:,}", f"{s2.documents:,}", ""),
        ("documents sent to the models", f"{m1['night']['documents_extracted']:,}",
         f"{m2['night']['documents_extracted']:,}", f"{m2['night']['documents_extracted'] / max(m1['night']['documents_extracted'], 1):.3f}"),
        ("documents reused", f"{m1['night']['documents_reused']:,}", f"{m2['night']['documents_reused']:,}", ""),
        ("bytes written (MB)", f"{b1 / 1e6:.1f}", f"{b2 / 1e6:.1f}", f"{b2 / max(b1, 1):.3f}"),
        ("  of which snapshot (MB)", f"{_under(w1, 'snapshots') / 1e6:.1f}", f"{_under(w2, 'snapshots') / 1e6:.1f}", ""),
        ("  of which state (MB)", f"{_under(w1, 'state') / 1e6:.1f}", f"{_under(w2, 'state') / 1e6:.1f}", ""),
        ("text tables copied in the store", str(m1["night"]["text_tables_copied"]), str(m2["night"]["text_tables_copied"]), ""),
        ("extracted parts copied / filtered", f"{m1['extraction']['parts_copied']} / {m1['extraction']['parts_filtered']}",
         f"{m2['extraction']['parts_copied']} / {m2['extraction']['parts_filtered']}", ""),
    ]
    for r in rows:
        table.add_row(*r)
    console.print(table)
    night = m2["night"]
    console.print(f"night: added {night['added']}, revised {night['revised']}, deleted {night['deleted']}, "
                  f"unchanged {night['unchanged']}; expected extracted = new + revised = {expected}; "
                  f"stage seconds {m2['timings_s']}")
    if night["documents_extracted"] != expected:
        console.print(f"[red]the night extracted {night['documents_extracted']} documents, not {expected}[/red]")
    print(f"RESULT incremental ratio={t2 / t1:.4f} extracted={night['documents_extracted']} "
          f"reused={night['documents_reused']}")


def _under(written: dict[str, int], top: str) -> int:
    return sum(v for k, v in written.items() if k.split(os.sep, 1)[0] == top)


def _split_tail(path: Path, skip: int, out: Path) -> None:
    """The records of ``path`` after the first ``skip``, as their own file (the second baseline file)."""
    with gzip.open(path, "rb") as f, gzip.open(out, "wb", compresslevel=5) as w:
        w.write(b'<?xml version="1.0" encoding="utf-8"?>\n<PubmedArticleSet>\n')
        for i, (_, el) in enumerate(etree.iterparse(f, events=("end",), tag="PubmedArticle")):
            if i >= skip:
                w.write(etree.tostring(el) + b"\n")
            el.clear()
        w.write(b"</PubmedArticleSet>\n")


if __name__ == "__main__":
    main()
