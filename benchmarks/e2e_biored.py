"""End-to-end quality over PubTator3's six types: BioRED's Dev abstracts through the whole pipeline.

    python -m benchmarks.e2e_biored [--model URL] [--normalizer URL] [--relation URL] [--keep DIR]

BioRED Dev (100 abstracts; its test split is withheld from the copy here, so Dev is the test) goes
through the corpus-to-dump tool into MEDLINE XML, then `pubmine run` with the default models, and the
published entities table is scored against BioRED's gold annotations:
- spans: exact span + type, per type and micro over the six types;
- concepts: per document, the set of (type, concept ID) found *and* linked, per type and micro
  (genes as NCBI Gene, species as NCBI Taxonomy, cell lines as Cellosaurus, variants in tmVar's
  normalized form, chemicals and diseases as MeSH/OMIM);
- relations (with ``--redoc``, default: the default re-doc model): the published relations table
  scored at document level the BioCreative VIII BioRED track's way over BioRED's gold relations:
  the concept pair, + its type, + its novelty, all three (a pair is right only when both of its
  concepts were found and linked to the gold IDs), beside the track's best end-to-end system.
Last line: RESULT e2e_biored f1=<micro span F1> concept_f1=<micro> f1_<type>=... concept_f1_<type>=...
rel_pair_f1=... rel_type_f1=... rel_novelty_f1=... rel_all_f1=...
"""

from __future__ import annotations

from benchmarks.e2e_bc5cdr import ensure_default_model, model_arguments, predicted_tables, run_on_gold
from pipeline.config import default_artifact_dir, shared_data_dir
from pipeline.parse.pubtator import read_pubtator
from pipeline.report import print_scores
from pipeline.scores import gold_relations, score, score_concepts, score_doc_relations

TYPES = ("Chemical", "Disease", "Gene", "Species", "CellLine", "Variant")
# the BioCreative VIII BioRED track's best end-to-end F1 (Islamaj et al. 2023): pair, +type, all
TRACK_END_TO_END = {"pair": 55.84, "type": 43.03, "all": 32.75}
DEV = "biored/pubtator/Dev.PubTator.gz"


def main() -> None:
    from workers.inference.artifacts import artifact_exists

    ap = model_arguments(__doc__)
    ap.add_argument("--redoc", default=None, help="document-level relation artifact (default: default-redoc)")
    args = ap.parse_args()
    model = args.model or ensure_default_model()
    if not artifact_exists(args.normalizer):
        raise SystemExit(f"no normalizer at {args.normalizer}: build it with `pubmine build-normalizer` or pass its URL")
    redoc = args.redoc or str(default_artifact_dir("redoc"))
    relations = [redoc] if artifact_exists(redoc) else []
    if not relations:
        print(f"no re-doc relation model at {redoc} (`make model` builds it): relations are not scored")
    gold = list(read_pubtator(shared_data_dir() / DEV))
    summary, ents, rels, seconds, _ = run_on_gold(gold, model, args.normalizer, relations, args.keep)
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
    if relations:
        rel = score_doc_relations({g for d in gold for g in gold_relations(d)}, predicted_relations(rels))
        print(f"relations, document level ({len(rels)} rows): measure P R F1   BioCreative VIII end-to-end best F1")
        for name, m in rel.summary().items():
            print(f"  {name:<8}{100 * m['precision']:7.2f}{100 * m['recall']:7.2f}{100 * m['f1']:7.2f}   "
                  f"{TRACK_END_TO_END.get(name, float('nan')):.2f}")
        keys += " " + " ".join(f"rel_{k}_f1={m['f1']:.4f}" for k, m in rel.summary().items())
    p, r, f = spans.overall()
    print(f"RESULT e2e_biored f1={f:.4f} precision={p:.4f} recall={r:.4f} concept_f1={linked.overall()[2]:.4f} {keys}")


def predicted_relations(rels) -> set[tuple]:
    """The relations table's rows as (pmid, {(type, concept id), (type, concept id)}, label, novelty)."""
    out = set()
    for doc_id, head, tail, rtype, novelty in zip(*(rels.column(c).to_pylist()
                                                    for c in ("doc_id", "head", "tail", "type", "novelty"))):
        pair = frozenset({(head["type"], head["concept_id"]), (tail["type"], tail["concept_id"])})
        out.add((int(doc_id.split(":")[1]), pair, rtype, novelty))
    return out


if __name__ == "__main__":
    main()
