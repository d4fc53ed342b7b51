"""Is an entity's score a probability? The reliability of the default NER model's span scores on dev.

The default NER model tags the sentences of the BC5CDR and NCBI-disease *dev* abstracts as the
pipeline splits them; a predicted span is correct when a gold mention has the same offsets and type.
The table bins the spans by score (a span's score is the mean probability of its words' labels,
as the pipeline writes it) and gives, per bin, how many spans fall there, their mean score and the
fraction correct; then the fraction correct among spans with score ≥ s. Calibrated means the two
columns agree. ECE (expected calibration error, span-weighted over the bins) is the summary; the
baseline beside it, measured in the same run, is an isotonic map fitted on BC5CDR dev and applied to
NCBI-disease dev (and the other way round): what a calibration step would buy.

    python -m benchmarks.calibration [--model URL]

Writes benchmarks/results/calibration.md. Last line:
RESULT calibration ece=<raw> ece_isotonic=<cross-fitted> spans=<n>
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pipeline.config import default_model_dir, shared_data_dir
from pipeline.parse.pubtator import doc_sentences, read_pubtator

ROOT = Path(__file__).resolve().parent.parent
DEV = {"bc5cdr": "bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt.gz",
       "ncbi-disease": "ncbi_disease/pubtator/NCBIdevelopset_corpus.txt"}
BINS = np.linspace(0.0, 1.0, 11)


def spans(tagger, corpus: str) -> tuple[np.ndarray, np.ndarray]:
    """(score, correct) of every span the model predicts on a dev set, for the types the corpus annotates."""
    docs = list(read_pubtator(shared_data_dir() / DEV[corpus]))
    types = {m.type for d in docs for m in d.mentions}
    scores, correct = [], []
    for doc in docs:
        gold = {(m.start, m.end, m.type) for m in doc.mentions}
        sents = doc_sentences(doc)
        for (offset, _), found in zip(sents, tagger.tag([t for _, t in sents])):
            for sp in found:
                if sp.type in types:
                    scores.append(sp.score)
                    correct.append((offset + sp.start, offset + sp.end, sp.type) in gold)
    return np.asarray(scores, dtype=np.float64), np.asarray(correct, dtype=np.float64)


def ece(scores: np.ndarray, correct: np.ndarray) -> float:
    idx = np.clip(np.digitize(scores, BINS) - 1, 0, len(BINS) - 2)
    return float(sum(abs(scores[idx == b].mean() - correct[idx == b].mean()) * (idx == b).sum()
                     for b in range(len(BINS) - 1) if (idx == b).any()) / max(len(scores), 1))


def isotonic(scores: np.ndarray, correct: np.ndarray):
    """Pool-adjacent-violators: a non-decreasing map score -> P(correct), as (thresholds, values)."""
    order = np.argsort(scores)
    x, y = scores[order], correct[order]
    blocks = [[v, 1.0, xv] for v, xv in zip(y, x)]  # (sum, weight, right edge)
    merged: list[list[float]] = []
    for b in blocks:
        merged.append(b)
        while len(merged) > 1 and merged[-2][0] / merged[-2][1] > merged[-1][0] / merged[-1][1]:
            s, w, edge = merged.pop()
            merged[-1][0] += s
            merged[-1][1] += w
            merged[-1][2] = edge
    edges = np.array([m[2] for m in merged])
    values = np.array([m[0] / m[1] for m in merged])
    return lambda s: values[np.clip(np.searchsorted(edges, s, side="left"), 0, len(values) - 1)]


def table_lines(title: str, scores: np.ndarray, correct: np.ndarray) -> list[str]:
    idx = np.clip(np.digitize(scores, BINS) - 1, 0, len(BINS) - 2)
    lines = [f"### {title}", "", "| score bin | spans | mean score | correct |", "|---|---|---|---|"]
    for b in range(len(BINS) - 1):
        sel = idx == b
        if sel.any():
            lines.append(f"| {BINS[b]:.1f}–{BINS[b + 1]:.1f} | {sel.sum():,} | {scores[sel].mean():.3f} | "
                         f"{correct[sel].mean():.3f} |")
    lines += ["", "| score ≥ s | spans | correct |", "|---|---|---|"]
    for s in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        sel = scores >= s
        lines.append(f"| {s:.2f} | {sel.sum():,} | {correct[sel].mean():.3f} |" if sel.any() else f"| {s:.2f} | 0 | - |")
    lines += ["", f"ECE {ece(scores, correct):.4f} over {len(scores):,} spans.", ""]
    return lines


def main() -> None:
    from workers.inference.artifacts import stage_artifact
    from workers.inference.ner import NerTagger

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(default_model_dir()), help="NER model artifact URL")
    args = ap.parse_args()
    tagger = NerTagger.load(stage_artifact(args.model), precision="fp32")
    data = {c: spans(tagger, c) for c in DEV}
    scores = np.concatenate([s for s, _ in data.values()])
    correct = np.concatenate([c for _, c in data.values()])
    # cross-fitted isotonic: each corpus calibrated by the map fitted on the other
    crossed = np.concatenate([isotonic(*data[other])(data[c][0]) for c, other in (("bc5cdr", "ncbi-disease"),
                                                                                   ("ncbi-disease", "bc5cdr"))])
    raw_ece, iso_ece = ece(scores, correct), ece(crossed, correct)
    lines = ["# Entity score reliability (`python -m benchmarks.calibration`)", "",
             f"Model {tagger.manifest.get('model_id')} on the BC5CDR and NCBI-disease dev abstracts; a span is correct "
             "when a gold mention has its offsets and type.", ""]
    lines += table_lines("raw span scores (what entity rows carry today)", scores, correct)
    lines += table_lines("after an isotonic map fitted on the other corpus (cross-fitted)", crossed, correct)
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / "calibration.md"
    out.write_text(text)
    print(f"written to {out.relative_to(ROOT)}")
    print(f"RESULT calibration ece={raw_ece:.4f} ece_isotonic={iso_ece:.4f} spans={len(scores)}")


if __name__ == "__main__":
    main()
