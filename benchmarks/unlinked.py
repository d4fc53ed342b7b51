"""Which unlinked entities to keep: the per-type score cuts of ``extract.keep_unlinked_from``, chosen
on dev and then measured on BioRED Dev.

    python -m benchmarks.unlinked [--ner URL] [--normalizer URL]

An entity that no dictionary links never reaches the knowledge tables, and in ``make demo``'s
snapshot it is where junk gathers ("preterm", "hyperbaric", "plasticity" as diseases). Here is
how often such spans are right, and from what score they should be kept.

- Dev: the BioRED train documents the NER model holds out for model selection (``@-40`` in its
  config: not trained on), tagged by the NER model and linked by the normalizer with every trace of
  BioRED train removed (its annotated chemical and disease strings from the dictionary, its gene and
  variant strings from the lexicon), so that a span is unlinked when the dictionaries themselves do
  not know it. Per type, each cut on the grid (keep all, 0.5, 0.7, 0.85, 0.95, keep none) is scored
  by span F1 (exact match, the type's gold). The strictest cut within half a point of the best F1
  is chosen (``F1_TOLERANCE``): unlinked spans are what an analyst sees first, and ones that buy less
  than that on dev are not worth showing. (Until 2026-12-08 the best cut, a tie going to the cut
  that keeps more; with the full-budget NER that rule kept Gene spans from 0.7, 74.8 against 0.85's
  74.6 on dev, and `make demo`'s genes fell to 65.7% linked.)
- Test: BioRED Dev (100 abstracts, never used to choose anything), tagged the same way and linked
  by the normalizer as deployed. Span P/R/F1 per type and micro, without the cuts and with the
  configured ones (``pipeline.config.KEEP_UNLINKED_FROM``), and the share of kept spans that are
  linked.
Both read whole documents, sentence by sentence, as ``pubmine evaluate`` does. The pipeline's other
entity rules are not applied (one type per span, not an organism), so its numbers differ slightly.
Last line: RESULT unlinked chemical=<cut> disease=<cut> gene=<cut> variant=<cut> matches_config=<bool>
dev_f1_before=<x> dev_f1_after=<x> test_f1_before=<x> test_f1_after=<x> test_linked_before=<x> test_linked_after=<x>
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

from pipeline.config import KEEP_UNLINKED_FROM, shared_data_dir
from pipeline.parse.sentences import sentence_numbers

TYPES = ("Chemical", "Disease", "Gene", "Species", "CellLine", "Variant")
GRID = (0.0, 0.5, 0.7, 0.85, 0.95, None)   # None: no unlinked span of the type kept
F1_TOLERANCE = 0.005   # the strictest cut within half a point of the best dev F1 is chosen
MIN_UNLINKED = 10      # ... for a type with at least this many unlinked dev spans (others keep theirs: CellLine has 1)
BIORED_TRAIN = "biored/pubtator/Train.PubTator.gz"
BIORED_DEV = "biored/pubtator/Dev.PubTator.gz"
NER_CONFIG = Path(__file__).resolve().parents[1] / "configs/models/default-ner.yaml"


def dev_documents():
    """The BioRED train documents the default NER config holds out as dev (its ``@a-b`` range)."""
    from pipeline.config import load_dataclass
    from pipeline.parse.pubtator import read_pubtator
    from workers.training.ner import NerTrainConfig, split_range

    cfg = load_dataclass(NerTrainConfig, NER_CONFIG)
    spec = next(s for s in cfg.dev if s.startswith(BIORED_TRAIN))
    path, part = split_range(spec)
    return list(read_pubtator(shared_data_dir() / path))[part]


def held_out_normalizer(deployed):
    """The deployed normalizer's embedded names and thresholds over a dictionary and a lexicon
    without BioRED train's annotated strings."""
    from workers.inference.lexicon import Lexicon
    from workers.inference.normalize import Normalizer
    from workers.training.lexicon import build_lexicon
    from workers.training.normalizer import CORPUS_NAMES, default_dictionary

    dictionary = default_dictionary(None, [c for c in CORPUS_NAMES if not c[0].startswith(BIORED_TRAIN)])
    out = Normalizer(dictionary, deployed.index.restricted_to(dictionary), deployed.threshold, deployed.thresholds)
    folder = Path(tempfile.mkdtemp(prefix="lexicon-unannotated-"))
    build_lexicon(folder, shared_data_dir(), annotated=False)
    out.with_lexicon(Lexicon.load(folder))
    if deployed.ngrams is not None:
        out.ngrams, out.ngram_thresholds = deployed.ngrams, dict(deployed.ngram_thresholds)
    return out


def spans(tagger, normalizer, docs) -> tuple[list[tuple[str, float, bool, bool]], Counter]:
    """(type, score, linked, right) of every predicted span, and the gold mentions per type."""
    from workers.training.evaluate import predict_documents

    scores: dict = {}
    predicted = predict_documents(tagger, docs, scores=scores)
    gold = {(d.pmid, m.start, m.end, m.type) for d in docs for m in d.mentions}
    out = []
    for d in docs:
        keys = sorted(predicted[d.pmid], key=lambda k: k[1:])
        sentences = sentence_numbers(d.text, [s for _, s, _, _ in keys])
        links = normalizer.link_document(d.text, [(d.text[s:e], t, n) for (_, s, e, t), n in zip(keys, sentences)])
        out += [(k[3], scores[k], link.concept_id is not None, k in gold) for k, link in zip(keys, links)]
    return out, Counter(m.type for d in docs for m in d.mentions if m.type in TYPES)


def prf(rows, n_gold: int) -> tuple[float, float, float]:
    tp = sum(r[3] for r in rows)
    p, r = tp / max(len(rows), 1), tp / max(n_gold, 1)
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def linked_share(rows) -> float:
    return sum(r[2] for r in rows) / max(len(rows), 1)


def pct(scores) -> str:
    return " / ".join(f"{100 * x:.1f}" for x in scores)


def kept(rows, cuts: dict):
    from workers.inference.stages import kept_unlinked

    return [r for r in rows if r[2] or kept_unlinked(r[0], r[1], cuts)]


def name(cut) -> str:
    return "none" if cut is None else f"{cut:g}"


def main() -> None:
    from workers.inference.artifacts import stage_artifact
    from workers.inference.ner import NerTagger
    from workers.inference.normalize import Normalizer
    from pipeline.config import artifact_url

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ner", default="default")
    ap.add_argument("--normalizer", default="default")
    args = ap.parse_args()
    tagger = NerTagger.load(stage_artifact(artifact_url(args.ner, "ner")))
    deployed = Normalizer.load(stage_artifact(artifact_url(args.normalizer, "normalizer")))
    print(f"NER {tagger.model_id} ({tagger.precision}); normalizer {deployed.version}")

    dev_rows, dev_gold = spans(tagger, held_out_normalizer(deployed), dev_documents())
    print(f"\ndev: BioRED train @-40 ({sum(dev_gold.values())} gold mentions), linked without BioRED train's strings")
    print(f"  {'type':<9} {'spans':>5} {'unlinked':>8} {'right':>6}   span F1 by the least score an unlinked span needs")
    print(f"  {'':<9} {'':>5} {'':>8} {'':>6}   " + "  ".join(f"{name(c):>6}" for c in GRID))
    chosen: dict = {}
    for t in TYPES:
        mine = [r for r in dev_rows if r[0] == t]
        unlinked = [r for r in mine if not r[2]]
        if not unlinked:
            continue
        f1 = {c: prf(kept(mine, {t: c}), dev_gold[t])[2] for c in GRID}
        top = max(f1.values())
        best = (max((c for c in GRID if f1[c] >= top - F1_TOLERANCE), key=lambda c: 1.01 if c is None else c)  # strictest
                if len(unlinked) >= MIN_UNLINKED else 0.0)
        if best != 0.0:
            chosen[t] = best
        right = sum(r[3] for r in unlinked) / len(unlinked)
        print(f"  {t:<9} {len(mine):>5} {len(unlinked):>8} {100 * right:>5.0f}%   "
              + "  ".join(f"{100 * f1[c]:>5.1f}{'*' if c == best else ' '}" for c in GRID))
    matches = chosen == {k: v for k, v in KEEP_UNLINKED_FROM.items() if v != 0.0}
    print(f"chosen: {', '.join(f'{t} {name(c)}' for t, c in chosen.items()) or 'keep every unlinked span'}; "
          f"configured (KEEP_UNLINKED_FROM): {', '.join(f'{t} {name(c)}' for t, c in KEEP_UNLINKED_FROM.items())} "
          f"({'the same' if matches else 'DIFFERENT: update pipeline.config.KEEP_UNLINKED_FROM'})")

    from pipeline.parse.pubtator import read_pubtator

    test_docs = list(read_pubtator(shared_data_dir() / BIORED_DEV))
    test_rows, test_gold = spans(tagger, deployed, test_docs)
    print(f"\ntest: BioRED Dev ({len(test_docs)} abstracts, {sum(test_gold.values())} gold mentions), the deployed normalizer")
    print(f"  {'type':<9} {'P / R / F1, every span':>26}   {'with the configured cuts':>26}   linked share")
    after = kept(test_rows, KEEP_UNLINKED_FROM)
    for t in TYPES:
        a, b = [r for r in test_rows if r[0] == t], [r for r in after if r[0] == t]
        print(f"  {t:<9} {pct(prf(a, test_gold[t])):>26}   {pct(prf(b, test_gold[t])):>26}"
              f"   {100 * linked_share(a):.0f}% -> {100 * linked_share(b):.0f}%")
    micro = lambda rows, gold: prf(rows, sum(gold.values()))
    dev_before, dev_after = micro(dev_rows, dev_gold), micro(kept(dev_rows, KEEP_UNLINKED_FROM), dev_gold)
    test_before, test_after = micro(test_rows, test_gold), micro(after, test_gold)
    print(f"  {'micro':<9} {pct(test_before):>26}   {pct(test_after):>26}   "
          f"{100 * linked_share(test_rows):.0f}% -> {100 * linked_share(after):.0f}%")
    print(f"RESULT unlinked {' '.join(f'{t.lower()}={name(chosen.get(t, 0.0))}' for t in ('Chemical', 'Disease', 'Gene', 'Variant'))} "
          f"matches_config={str(matches).lower()} dev_f1_before={dev_before[2]:.4f} dev_f1_after={dev_after[2]:.4f} "
          f"test_f1_before={test_before[2]:.4f} test_f1_after={test_after[2]:.4f} "
          f"test_linked_before={linked_share(test_rows):.4f} test_linked_after={linked_share(after):.4f}")


if __name__ == "__main__":
    main()
