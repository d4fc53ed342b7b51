"""Entity normalization: accuracy@1 of linking the gold test mentions of NCBI-disease and BC5CDR
(chemicals, diseases) to their concept IDs, beside BioSyn's published figures.

    python -m benchmarks.normalization [--normalizer URL]

The normalizer is the artifact the pipeline stages (default: ~/.cache/pubmine/models/normalizer, built
with `pubmine build-normalizer` when missing). The baseline measured in the same run is the same
dictionary without the embedding step (exact + word-bag + abbreviations): what the learned step adds.
A mention counts as correct when the top concept is one of its gold IDs; NIL is wrong; gold mentions
without an ID (-1) are left out, as BioSyn does.
Last line: RESULT normalization acc1_ncbi=<v> acc1_bc5cdr_d=<v> acc1_bc5cdr_c=<v>
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from pipeline.config import default_artifact_dir
from workers.inference.normalize import Normalizer
from workers.training.evaluate import NORM_DATASETS, evaluate_linking

# BioSyn (Sung et al., ACL 2020, Table 2), accuracy@1 with gold mentions
BIOSYN = {"ncbi-disease": 91.1, "bc5cdr-disease": 93.2, "bc5cdr-chem": 96.6}
# SapBERT (Liu et al., NAACL 2021, Table 1), for reference
SAPBERT = {"ncbi-disease": 92.3, "bc5cdr-disease": 93.5, "bc5cdr-chem": 96.5}
KEYS = {"ncbi-disease": "acc1_ncbi", "bc5cdr-disease": "acc1_bc5cdr_d", "bc5cdr-chem": "acc1_bc5cdr_c"}


def main() -> None:
    from workers.inference.artifacts import artifact_exists, stage_artifact
    from workers.training.normalizer import build_normalizer

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--normalizer", default=str(default_artifact_dir("normalizer")), help="normalizer artifact URL")
    args = ap.parse_args()
    if not artifact_exists(args.normalizer):
        print(f"no normalizer at {args.normalizer}: building it (pubmine build-normalizer)")
        build_normalizer(args.normalizer)
    normalizer = Normalizer.load(stage_artifact(args.normalizer))
    dictionary_only = Normalizer(normalizer.dictionary, None, normalizer.threshold)

    table = Table(title=f"accuracy@1, gold test mentions; {normalizer.manifest['model_id']} "
                        f"(dictionary {normalizer.version}, embedding threshold {normalizer.threshold})",
                  title_justify="left")
    for col in ("dataset", "mentions", "dictionary only", "pubmine", "embed step: linked / correct",
                "BioSyn", "SapBERT", "ms/mention"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    results = {}
    for name in NORM_DATASETS:
        base = evaluate_linking(dictionary_only, name)
        t0 = time.time()
        ours = evaluate_linking(normalizer, name)
        ms = 1000 * (time.time() - t0) / max(ours.n, 1)
        ok, n = ours.by_method.get("embed", (0, 0))
        results[name] = ours.accuracy
        table.add_row(name, f"{ours.n:,}", f"{100 * base.accuracy:.2f}", f"[bold]{100 * ours.accuracy:.2f}[/bold]",
                      f"{n} / {ok}", f"{BIOSYN[name]}", f"{SAPBERT[name]}", f"{ms:.2f}")
    Console(highlight=False, width=150).print(table)
    print("RESULT normalization " + " ".join(f"{KEYS[k]}={v:.4f}" for k, v in results.items()))


if __name__ == "__main__":
    main()
