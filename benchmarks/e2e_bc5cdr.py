"""End-to-end quality: the 500 BC5CDR test abstracts through the whole pipeline, scored against gold.

    python -m benchmarks.e2e_bc5cdr [--model URL] [--keep DIR]

The abstracts go through the corpus-to-dump tool into MEDLINE XML, then `pubmine run` (local Ray,
Beam parse, NER actor pool, publish); the published entities are scored against the gold PubTator
mentions (exact span + type). The same model is also scored in-process (`pubmine evaluate` path)
as the baseline: the difference is what the pipeline loses in splitting, windowing or offsets.
Last line: RESULT e2e_bc5cdr f1=<v> precision=<v> recall=<v>
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from pipeline.config import default_model_dir, load_config, shared_data_dir
from pipeline.driver import run
from pipeline.parse.pubtator import read_pubtator, write_medline_xml
from pipeline.report import print_scores
from pipeline.storage import Store
from workers.evaluate import predict_documents, score

TYPES = ("Chemical", "Disease")


def ensure_default_model() -> str:
    from workers.artifacts import artifact_exists

    folder = default_model_dir()
    if not artifact_exists(str(folder)):
        from pipeline.config import load_dataclass
        from workers.train import NerTrainConfig, train_ner

        print(f"default model missing: training it into {folder}")
        cfg = load_dataclass(NerTrainConfig, Path(__file__).resolve().parent.parent / "configs/models/default-ner.yaml")
        train_ner(cfg, str(folder))
    return str(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model artifact URL (default: the pipeline's default model)")
    ap.add_argument("--keep", default=None, help="write the dump and store here instead of a temporary folder")
    args = ap.parse_args()
    model = args.model or ensure_default_model()
    gold_docs = list(read_pubtator(shared_data_dir() / "bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz"))

    with tempfile.TemporaryDirectory(prefix="pubmine-e2e-") as tmp:
        work = Path(args.keep or tmp)
        dump = work / "cdr_test.xml.gz"
        write_medline_xml(gold_docs, dump)
        cfg = load_config(Path(__file__).resolve().parent.parent / "configs/local.yaml",
                          [f"extract.model={model}"], inputs=[str(dump)], store=str(work / "store"))
        t0 = time.time()
        summary = run(cfg)
        pipeline_s = time.time() - t0
        store = Store(str(work / "store"))
        ents = store.read_table("snapshots", summary.run_id, "entities", columns=["doc_id", "start", "end", "type"])

    predicted: dict[int, set] = defaultdict(set)
    for doc_id, s, e, t in zip(*(ents.column(c).to_pylist() for c in ("doc_id", "start", "end", "type"))):
        pmid = int(doc_id.split(":")[1])
        predicted[pmid].add((pmid, s, e, t))
    e2e = score(gold_docs, predicted, TYPES)

    from workers.artifacts import stage_artifact
    from workers.ner import NerTagger

    t1 = time.time()
    tagger = NerTagger.load(stage_artifact(model), precision=cfg.extract.precision)
    direct = score(gold_docs, predict_documents(tagger, gold_docs), TYPES)
    direct_s = time.time() - t1

    print_scores(f"pipeline (pubmine run) on BC5CDR test, {summary.documents} documents, {pipeline_s:.1f} s",
                 e2e.overall(), e2e.by_type())
    print_scores(f"same model in-process (pubmine evaluate path), {direct_s:.1f} s", direct.overall(), direct.by_type())
    p, r, f = e2e.overall()
    dp, dr, df = direct.overall()
    print(f"model {summary.model_id}; pipeline - in-process F1 = {100 * (f - df):+.2f} points; "
          f"wall: pipeline {pipeline_s:.1f} s (ratio to in-process {pipeline_s / direct_s:.2f}x)")
    print(f"RESULT e2e_bc5cdr f1={f:.4f} precision={p:.4f} recall={r:.4f}")


if __name__ == "__main__":
    main()
