"""End-to-end quality over PubTator3's six types: BioRED's Dev abstracts through the whole pipeline.

    python -m benchmarks.e2e_biored [--model URL] [--normalizer URL] [--relation URL] [--keep DIR]

BioRED Dev (100 abstracts; its test split is withheld from the copy here, so Dev is the test) goes
through the corpus-to-dump tool into MEDLINE XML, then `pubmine run` with the default models, and the
published entities table is scored against BioRED's gold annotations:
- spans: exact span + type, per type and micro over the six types;
- concepts: per document, the set of (type, concept ID) found *and* linked, per type and micro
  (genes as NCBI Gene, species as NCBI Taxonomy, cell lines as Cellosaurus, variants in tmVar's
  normalized form, chemicals and diseases as MeSH/OMIM).
Last line: RESULT e2e_biored f1=<micro span F1> concept_f1=<micro> f1_<type>=... concept_f1_<type>=...
"""

from __future__ import annotations

from benchmarks.e2e_bc5cdr import ensure_default_model, model_arguments, predicted_tables, run_on_gold
from pipeline.config import shared_data_dir
from pipeline.parse.pubtator import read_pubtator
from pipeline.report import print_scores
from pipeline.scores import score, score_concepts

TYPES = ("Chemical", "Disease", "Gene", "Species", "CellLine", "Variant")
DEV = "biored/pubtator/Dev.PubTator.gz"


def main() -> None:
    from workers.inference.artifacts import artifact_exists

    args = model_arguments(__doc__).parse_args()
    model = args.model or ensure_default_model()
    if not artifact_exists(args.normalizer):
        raise SystemExit(f"no normalizer at {args.normalizer}: build it with `pubmine build-normalizer` or pass its URL")
    relations = [args.relation] if artifact_exists(args.relation) else []
    gold = list(read_pubtator(shared_data_dir() / DEV))
    summary, ents, _, seconds, _ = run_on_gold(gold, model, args.normalizer, relations, args.keep)
    predicted, concepts = predicted_tables(ents)
    spans = score(gold, predicted, TYPES)
    linked = score_concepts(gold, concepts, TYPES)
    print_scores(f"pipeline (pubmine run) on BioRED Dev, {summary.counts.documents} documents, {seconds:.1f} s: mentions "
                 f"({summary.model_id})", spans.overall(), spans.by_type())
    print_scores(f"concepts found and linked (per document, {summary.normalizer_version})", linked.overall(),
                 linked.by_type())
    by_span, by_concept = spans.by_type(), linked.by_type()
    keys = " ".join([f"f1_{t.lower()}={by_span.get(t, (0, 0, 0))[2]:.4f}" for t in TYPES]
                    + [f"concept_f1_{t.lower()}={by_concept.get(t, (0, 0, 0))[2]:.4f}" for t in TYPES])
    p, r, f = spans.overall()
    print(f"RESULT e2e_biored f1={f:.4f} precision={p:.4f} recall={r:.4f} concept_f1={linked.overall()[2]:.4f} {keys}")


if __name__ == "__main__":
    main()
