"""Precision of every link method of the default normalizer on dev and test gold mentions, and of
the embedding step at the per-type thresholds the build chose on dev, against one fixed threshold.

For each gold mention of BC5CDR (chemicals, diseases) and NCBI-disease, the normalizer's link is
scored: correct when its concept is one of the mention's gold IDs. Per method (abbreviation, exact
name, word bag, embedding) the table gives how many mentions it linked and the precision of those
links. Dev is linked the way thresholds were chosen: through the same index restricted to a
dictionary *without the dev strings* (with them, nearly every dev mention is a memorized exact
match); test, held out from everything, through the artifact as the pipeline loads it. The
baseline, in the same run, is the single threshold DEFAULT_THRESHOLD (0.7) that every type had
before; the sweeps show what each cosine would accept.

    python -m benchmarks.link_precision [--normalizer URL]

Writes benchmarks/results/linking.md. Last line:
RESULT link_precision embed_precision_dev_chemical=<p> embed_precision_dev_disease=<p>
       embed_precision_test_chemical=<p> embed_precision_test_disease=<p> baseline_test_chemical=<p> ...
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from pipeline.config import default_artifact_dir

ROOT = Path(__file__).resolve().parent.parent
TEST = {"Chemical": ("bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz",),
        "Disease": ("bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", "ncbi_disease/pubtator/NCBItestset_corpus.txt")}
METHODS = ("abbrev", "exact", "bag", "embed", "nil")
SWEEP = (0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def embed_precision(rows, threshold: float | None) -> tuple[int, float]:
    """(accepted, precision) of the embedding links at ``threshold`` (None: none accepted)."""
    accepted = [ok for method, _, score, ok in rows if method == "embed" and threshold is not None and score >= threshold]
    return len(accepted), (sum(accepted) / len(accepted) if accepted else float("nan"))


def method_lines(split: str, kind: str, rows, threshold: float | None) -> list[str]:
    by = defaultdict(lambda: [0, 0])
    for method, _, score, ok in rows:
        if method == "embed" and (threshold is None or score < threshold):
            method = "nil"  # what the type's threshold leaves unlinked
        by[method][0] += ok and method != "nil"
        by[method][1] += 1
    out = []
    for method in METHODS:
        ok, n = by.get(method, (0, 0))
        prec = "-" if method == "nil" or not n else f"{100 * ok / n:.1f}"
        out.append(f"| {split} | {kind} | {method} | {n:,} | {prec} |")
    return out


def main() -> None:
    from workers.inference.artifacts import stage_artifact
    from workers.inference.normalize import DEFAULT_THRESHOLD, Normalizer
    from workers.training.normalizer import DEV_MENTIONS, dev_links, held_out_view

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--normalizer", default=str(default_artifact_dir("normalizer")))
    args = ap.parse_args()
    normalizer = Normalizer.load(stage_artifact(args.normalizer))
    views = {"dev": held_out_view(normalizer.index),
             "test": Normalizer(normalizer.dictionary, normalizer.index, threshold=-1.0)}
    files = {"dev": DEV_MENTIONS, "test": TEST}
    rows = {(split, kind): dev_links(views[split], kind, files=files[split][kind])
            for split in ("dev", "test") for kind in ("Chemical", "Disease")}
    thresholds = {k: normalizer.threshold_for(k) for k in ("Chemical", "Disease")}

    lines = ["# Link precision by method (`python -m benchmarks.link_precision`)", "",
             f"Normalizer {normalizer.manifest.get('model_id')} (dictionary {normalizer.version}); a link is correct "
             "when its concept is one of the gold IDs. Dev is linked through the dictionary without the dev strings "
             "(how the thresholds were chosen); test is held out from everything. Embedding thresholds chosen on dev: "
             + ", ".join(f"{k} {'none (no embedding links)' if t is None else f'{t:.3f}'}" for k, t in thresholds.items())
             + f"; the baseline is {DEFAULT_THRESHOLD} for every type.", "",
             "| split | type | method | linked | precision |", "|---|---|---|---|---|"]
    for (split, kind), rs in rows.items():
        lines += method_lines(split, kind, rs, thresholds[kind])

    result = {}
    lines += ["", "Embedding links at the chosen threshold and at the baseline's (accepted, precision):", "",
              "| split | type | chosen threshold | accepted | precision | baseline 0.7: accepted | precision |",
              "|---|---|---|---|---|---|---|"]
    for (split, kind), rs in rows.items():
        n, p = embed_precision(rs, thresholds[kind])
        bn, bp = embed_precision(rs, DEFAULT_THRESHOLD)
        t = thresholds[kind]
        lines.append(f"| {split} | {kind} | {'none' if t is None else f'{t:.3f}'} | {n:,} | "
                     f"{'-' if not n else f'{100 * p:.1f}'} | {bn:,} | {'-' if not bn else f'{100 * bp:.1f}'} |")
        result[f"embed_precision_{split}_{kind.lower()}"] = "none" if not n else f"{p:.3f}"
        result[f"embed_links_{split}_{kind.lower()}"] = n
        result[f"baseline_{split}_{kind.lower()}"] = f"{bp:.3f}" if bn else "none"
    for split in ("dev", "test"):
        lines += ["", f"Embedding links on {split} by threshold (accepted, precision):", "",
                  "| type | " + " | ".join(f"≥ {t:.2f}" for t in SWEEP) + " |", "|---|" + "---|" * len(SWEEP)]
        for kind in ("Chemical", "Disease"):
            cells = []
            for t in SWEEP:
                n, p = embed_precision(rows[split, kind], t)
                cells.append(f"{n:,}, {100 * p:.1f}" if n else "0, -")
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / "linking.md"
    out.write_text(text)
    print(f"written to {out.relative_to(ROOT)}")
    result["thresholds"] = ",".join(f"{k}:{'none' if t is None else t}" for k, t in thresholds.items())
    print("RESULT link_precision " + " ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
