"""Is an entity's score a probability? Reliability of the NER model's span scores, raw and calibrated.

The model tags the dev and the test sentences of BC5CDR (Chemical, Disease), NCBI-disease (Disease)
and BC2GM (Gene) — BioBERT's IOB splits, the sentences training selects and calibrates on — and a
predicted span is correct when a gold mention has the same tokens and type; each corpus is judged
only on the types it annotates. The tables bin the spans by score and give, per bin, how many spans
fall there, their mean score and the fraction correct, then the fraction correct among spans with
score >= s; calibrated means the columns agree. ECE (expected calibration error, span-weighted over
ten bins) sums it up. The baseline, measured in the same run, is the raw score (the mean of the
span's word-label probabilities, what entity rows carried before); the calibrated score is what the
artifact's Platt maps (fitted per type on dev at training) make of it, what the pipeline writes.
Dev is where the maps were fitted; test is held out from them.

    python -m benchmarks.calibration [--model URL]

Writes benchmarks/results/calibration.md. Last line:
RESULT calibration ece_test=<calibrated> ece_raw_test=<raw> ece_dev=<calibrated> ece_raw_dev=<raw> spans_test=<n>
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pipeline.config import default_artifact_dir

ROOT = Path(__file__).resolve().parent.parent
CORPORA = {"bc5cdr": ("bc5cdr/iob/chem_disease", ("Chemical", "Disease")),
           "ncbi-disease": ("ncbi_disease/iob", ("Disease",)),
           "bc2gm": ("bc2gm/iob", ("Gene",))}
SPLITS = {"dev": "devel", "test": "test"}
BINS = np.linspace(0.0, 1.0, 11)


def spans(tagger, corpus: str, split: str) -> list[tuple[str, float, bool]]:
    """(type, score, correct) of every span the model predicts on a corpus's split, for the types
    the corpus annotates."""
    from workers.training.corpora import read_iob
    from workers.training.ner import dev_scores

    folder, types = CORPORA[corpus]
    out: list = []
    dev_scores(tagger, read_iob(f"{folder}/{SPLITS[split]}.tsv"), types, out)  # what training calibrates on
    return out


def ece(scores: np.ndarray, correct: np.ndarray) -> float:
    idx = np.clip(np.digitize(scores, BINS) - 1, 0, len(BINS) - 2)
    return float(sum(abs(scores[idx == b].mean() - correct[idx == b].mean()) * (idx == b).sum()
                     for b in range(len(BINS) - 1) if (idx == b).any()) / max(len(scores), 1))


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
    from workers.inference.decoding import calibrated
    from workers.inference.ner import NerTagger

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(default_artifact_dir("ner")), help="NER model artifact URL")
    args = ap.parse_args()
    tagger = NerTagger.load(stage_artifact(args.model), precision="fp32")
    maps = tagger.calibration
    tagger.calibration = {}  # tag raw; the maps are applied below, exactly as the tagger applies them
    lines = ["# Entity score reliability (`python -m benchmarks.calibration`)", "",
             f"Model {tagger.manifest.get('model_id')}; calibration "
             f"{(tagger.manifest.get('calibration') or {}).get('method', 'none')} per type "
             f"({', '.join(f'{k}: a={v[0]:.3f} b={v[1]:.3f}' for k, v in sorted(maps.items())) or 'no maps'}). "
             "BioBERT's IOB dev and test splits of BC5CDR, NCBI-disease and BC2GM; a span is correct when a gold "
             "mention has its tokens and type.", ""]
    result = {}
    for split in SPLITS:
        rows = [r for corpus in CORPORA for r in spans(tagger, corpus, split)]
        raw = np.array([s for _, s, _ in rows], dtype=np.float64)
        cal = np.array([calibrated(s, maps.get(t)) for t, s, _ in rows], dtype=np.float64)
        correct = np.array([ok for _, _, ok in rows], dtype=np.float64)
        lines += table_lines(f"{split}: raw span scores (the baseline)", raw, correct)
        lines += table_lines(f"{split}: calibrated scores (what the pipeline writes)", cal, correct)
        lines += [f"#### {split}: ECE per type", "", "| type | spans | raw | calibrated |", "|---|---|---|---|"]
        for kind in sorted({t for t, _, _ in rows}):
            sel = np.array([t == kind for t, _, _ in rows])
            lines.append(f"| {kind} | {sel.sum():,} | {ece(raw[sel], correct[sel]):.4f} | {ece(cal[sel], correct[sel]):.4f} |")
        lines.append("")
        result |= {f"ece_{split}": f"{ece(cal, correct):.4f}", f"ece_raw_{split}": f"{ece(raw, correct):.4f}",
                   f"spans_{split}": len(rows)}
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / "calibration.md"
    out.write_text(text)
    print(f"written to {out.relative_to(ROOT)}")
    print("RESULT calibration " + " ".join(f"{k}={result[k]}" for k in
                                          ("ece_test", "ece_raw_test", "ece_dev", "ece_raw_dev", "spans_test")))


if __name__ == "__main__":
    main()
