"""Precision of every link method of the default normalizer, on dev and test gold mentions, and how
the embedding step's precision moves with its threshold.

For each gold mention of BC5CDR (chemicals, diseases) and NCBI-disease, the normalizer's link is
scored: correct when its concept is one of the mention's gold IDs. Per method (abbreviation, exact
name, word bag, embedding at the artifact's threshold) the table gives how many mentions it linked
and the precision of those links. The dictionary holds the strings annotators linked in the *train
and dev* sets, so on dev nearly every mention is a memorized exact match: dev cannot choose the
embedding threshold until the dictionary is built from train alone (issue 17 says so). The test
split is held out from everything; its sweep shows what each threshold would accept, per type. The
baseline is the artifact's own single threshold, in the same run.

    python -m benchmarks.link_precision [--normalizer URL]

Writes benchmarks/results/linking.md. Last line:
RESULT link_precision embed_precision_test_chemical=<p> embed_precision_test_disease=<p> threshold=<t> ...
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from pipeline.config import default_normalizer_dir, shared_data_dir
from pipeline.parse.pubtator import gold_ids, read_pubtator

ROOT = Path(__file__).resolve().parent.parent
SPLITS = {  # (split, type) -> PubTator files
    ("dev", "Chemical"): ["bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt.gz"],
    ("dev", "Disease"): ["bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt.gz", "ncbi_disease/pubtator/NCBIdevelopset_corpus.txt"],
    ("test", "Chemical"): ["bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz"],
    ("test", "Disease"): ["bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", "ncbi_disease/pubtator/NCBItestset_corpus.txt"],
}
METHODS = ("abbrev", "exact", "bag", "embed", "nil")


def links(normalizer, files: list[str], kind: str) -> list[tuple[str, str | None, float, set[str]]]:
    """(method, concept, score, gold IDs) of every gold mention of ``kind`` in the files; the embedding
    step at threshold 0, so its every candidate is seen (method 'embed' with its cosine)."""
    from workers.inference.normalize import Normalizer

    open_normalizer = Normalizer(normalizer.dictionary, normalizer.index, threshold=-1.0)
    out = []
    for rel in files:
        docs = list(read_pubtator(shared_data_dir() / rel))
        mentions = [[m for m in d.mentions if m.type == kind and gold_ids(m.ids)] for d in docs]
        for ms, ls in zip(mentions, open_normalizer.link_documents([(d.text, [(m.text, kind) for m in ms])
                                                                    for d, ms in zip(docs, mentions)])):
            out.extend((link.method, link.concept_id, link.score, gold_ids(m.ids)) for m, link in zip(ms, ls))
    return out


def embed_precision(rows, threshold: float) -> tuple[int, float]:
    accepted = [(cid in gold) for method, cid, score, gold in rows if method == "embed" and score >= threshold]
    return len(accepted), (sum(accepted) / len(accepted) if accepted else float("nan"))


def main() -> None:
    from workers.inference.artifacts import stage_artifact
    from workers.inference.normalize import Normalizer

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--normalizer", default=str(default_normalizer_dir()))
    args = ap.parse_args()
    normalizer = Normalizer.load(stage_artifact(args.normalizer))
    rows = {key: links(normalizer, files, key[1]) for key, files in SPLITS.items()}

    lines = [f"# Link precision by method (`python -m benchmarks.link_precision`)", "",
             f"Normalizer {normalizer.manifest.get('model_id')} (dictionary {normalizer.version}); a link is correct "
             "when its concept is one of the gold IDs. Dictionary methods on dev are optimistic (the dictionary holds "
             "the train and dev strings); test is held out from everything.", "",
             "| split | type | method | linked | precision |", "|---|---|---|---|---|"]
    for (split, kind), rs in rows.items():
        by = defaultdict(lambda: [0, 0])
        for method, cid, score, gold in rs:
            if method == "embed" and score < normalizer.threshold:
                method = "nil"  # what the artifact's own threshold leaves unlinked
            by[method][0] += cid in gold and method != "nil"
            by[method][1] += 1
        for method in METHODS:
            ok, n = by.get(method, (0, 0))
            prec = "-" if method == "nil" or not n else f"{100 * ok / n:.1f}"
            lines.append(f"| {split} | {kind} | {method} | {n:,} | {prec} |")

    result = {"threshold": normalizer.threshold}
    sweep = [0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    lines += ["", "Embedding links on test by threshold (accepted, precision); the artifact's threshold is "
              f"{normalizer.threshold}.", "",
              "| type | " + " | ".join(f"≥ {t:.2f}" for t in sweep) + " |", "|---|" + "---|" * len(sweep)]
    for kind in ("Chemical", "Disease"):
        cells = []
        for t in sweep:
            n, p = embed_precision(rows["test", kind], t)
            cells.append(f"{n:,}, {100 * p:.1f}" if n else "0, -")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
        n, p = embed_precision(rows["test", kind], normalizer.threshold)
        result[f"embed_links_test_{kind.lower()}"] = n
        result[f"embed_precision_test_{kind.lower()}"] = f"{p:.3f}"
        n, p = embed_precision(rows["dev", kind], normalizer.threshold)
        result[f"embed_links_dev_{kind.lower()}"] = n
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / "linking.md"
    out.write_text(text)
    print(f"written to {out.relative_to(ROOT)}")
    print("RESULT link_precision " + " ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
