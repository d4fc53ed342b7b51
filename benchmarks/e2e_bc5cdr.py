"""End-to-end quality: the 500 BC5CDR test abstracts through the whole pipeline, scored against gold.

    python -m benchmarks.e2e_bc5cdr [--model URL] [--normalizer URL] [--relation URL] [--keep DIR]

The abstracts go through the corpus-to-dump tool into MEDLINE XML, then `pubmine run` (local Ray,
Beam parse, tokenizer/NER/document actor pools, publish); the published tables are scored against
the gold PubTator annotations:
- entities: exact span + type (mention level);
- concepts: per document, the set of (type, concept ID) found *and* linked (BC5CDR's concept level);
- CID: per document, the (chemical ID, disease ID) pairs of the relations table against the gold CID
  pairs (the BC5CDR shared task's document-level relation score, with our own NER and linking).
The same NER model is also scored in-process (`pubmine evaluate` path) as the baseline: the difference
is what the pipeline loses in splitting, windowing or offsets.
Last line: RESULT e2e_bc5cdr f1=<v> precision=<v> recall=<v> concept_f1=<v> cid_f1=<v> cid_precision=<v> cid_recall=<v>
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from pipeline.config import default_artifact_dir, load_config, shared_data_dir
from pipeline.driver import run
from pipeline.parse.pubtator import read_pubtator, write_medline_xml
from pipeline.report import print_scores
from pipeline.storage import Store
from pipeline.scores import score, score_cid, score_concepts
from workers.training.evaluate import predict_documents

TYPES = ("Chemical", "Disease")
ROOT = Path(__file__).resolve().parent.parent


def ensure_default_model() -> str:
    from workers.inference.artifacts import artifact_exists

    folder = default_artifact_dir("ner")
    if not artifact_exists(str(folder)):
        from pipeline.config import load_dataclass
        from workers.training.ner import NerTrainConfig, train_ner

        print(f"default model missing: training it into {folder}")
        cfg = load_dataclass(NerTrainConfig, ROOT / "configs/models/default-ner.yaml")
        train_ner(cfg, str(folder))
    return str(folder)


def model_arguments(doc: str) -> argparse.ArgumentParser:
    """The end-to-end benchmarks' options: the three models and where to keep the run."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="NER model artifact URL (default: the pipeline's default model)")
    ap.add_argument("--normalizer", default=str(default_artifact_dir("normalizer")), help="normalizer artifact URL")
    ap.add_argument("--relation", default=str(default_artifact_dir("relation")), help="relation model artifact URL")
    ap.add_argument("--keep", default=None, help="write the dump and store here instead of a temporary folder")
    return ap


def run_on_gold(gold_docs, model: str, normalizer: str, relations: list[str], keep: str | None):
    """The gold documents as a MEDLINE dump through `pubmine run` (local config, the given models, no
    spot-check): (summary, entities, relations, seconds, config)."""
    with tempfile.TemporaryDirectory(prefix="pubmine-e2e-") as tmp:
        work = Path(keep or tmp)
        dump = work / "gold.xml.gz"
        write_medline_xml(gold_docs, dump)
        cfg = load_config(ROOT / "configs/local.yaml",
                          [f"extract.model={model}", f"extract.normalizer={normalizer}",
                           f"extract.relations=[{','.join(relations)}]", "report.gold=none"],
                          inputs=[str(dump)], store=str(work / "store"))
        t0 = time.time()
        summary = run(cfg)
        seconds = time.time() - t0
        store = Store(str(work / "store"))
        ents = store.read_table("snapshots", summary.run_id, "entities",
                                columns=["doc_id", "start", "end", "type", "concept_id"])
        rels = store.read_table("snapshots", summary.run_id, "relations", columns=["doc_id", "head", "tail", "type", "novelty"])
    return summary, ents, rels, seconds, cfg


def predicted_tables(ents) -> tuple[dict[int, set], dict[int, set]]:
    """pmid -> {(pmid, start, end, type)} mentions and pmid -> {(pmid, concept id, type)} linked concepts."""
    predicted: dict[int, set] = defaultdict(set)
    concepts: dict[int, set] = defaultdict(set)
    for doc_id, s, e, t, cid in zip(*(ents.column(c).to_pylist() for c in ("doc_id", "start", "end", "type", "concept_id"))):
        pmid = int(doc_id.split(":")[1])
        predicted[pmid].add((pmid, s, e, t))
        if cid:
            concepts[pmid].add((pmid, cid, t))
    return predicted, concepts


def main() -> None:
    from workers.inference.artifacts import artifact_exists

    args = model_arguments(__doc__).parse_args()
    model = args.model or ensure_default_model()
    for what, url, how in (("normalizer", args.normalizer, "pubmine build-normalizer"),
                           ("CID model", args.relation, "make model")):
        if not artifact_exists(url):
            raise SystemExit(f"no {what} at {url}: build it with `{how}` or pass its URL")
    gold_docs = list(read_pubtator(shared_data_dir() / "bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz"))
    summary, ents, rels, pipeline_s, cfg = run_on_gold(gold_docs, model, args.normalizer, [args.relation], args.keep)

    predicted, concepts = predicted_tables(ents)
    cid_pairs: dict[int, set] = defaultdict(set)
    for doc_id, head, tail, rtype in zip(*(rels.column(c).to_pylist() for c in ("doc_id", "head", "tail", "type"))):
        if rtype == "CID":
            chem, dis = (head, tail) if head["type"] == "Chemical" else (tail, head)
            pmid = int(doc_id.split(":")[1])
            cid_pairs[pmid].add((pmid, chem["concept_id"], dis["concept_id"]))
    e2e = score(gold_docs, predicted, TYPES)
    concept = score_concepts(gold_docs, concepts, TYPES)
    cid = score_cid(gold_docs, cid_pairs)

    from workers.inference.artifacts import stage_artifact
    from workers.inference.ner import NerTagger

    t1 = time.time()
    tagger = NerTagger.load(stage_artifact(model), precision=cfg.extract.precision)
    direct = score(gold_docs, predict_documents(tagger, gold_docs), TYPES)
    direct_s = time.time() - t1

    print_scores(f"pipeline (pubmine run) on BC5CDR test, {summary.counts.documents} documents, {pipeline_s:.1f} s: mentions",
                 e2e.overall(), e2e.by_type())
    print_scores(f"same NER model in-process (pubmine evaluate path), {direct_s:.1f} s: mentions",
                 direct.overall(), direct.by_type())
    print_scores(f"concepts found and linked (per document, dictionary {summary.normalizer_version})",
                 concept.overall(), concept.by_type())
    print_scores(f"chemical-induced disease, document level ({summary.counts.relations} relations published)",
                 cid.overall(), {}, {"BC5CDR best team 2015 (with its own NER + linking)": 57.03})
    p, r, f = e2e.overall()
    dp, dr, df = direct.overall()
    cf = concept.overall()[2]
    rp, rr, rf = cid.overall()
    print(f"models: NER {summary.model_id}; pipeline - in-process F1 = {100 * (f - df):+.2f} points; "
          f"wall: pipeline {pipeline_s:.1f} s (in-process NER alone {direct_s:.1f} s)")
    print(f"RESULT e2e_bc5cdr f1={f:.4f} precision={p:.4f} recall={r:.4f} concept_f1={cf:.4f} "
          f"cid_f1={rf:.4f} cid_precision={rp:.4f} cid_recall={rr:.4f}")


if __name__ == "__main__":
    main()
