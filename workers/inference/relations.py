"""Relation classification at inference: a BERT-family sequence classifier over candidate texts.

Two levels, as the models were trained:
- sentence level (GAD, EU-ADR): a gene and a disease mention of one sentence, written the way the
  corpus writes them (GAD masks both, ``@GENE$`` / ``@DISEASE$``; EU-ADR masks and marks them);
- document level (BC5CDR chemical-induced disease, BioRED): concept pairs of a document whose mentions
  come within ``window`` sentences, each candidate the shortest such run of sentences with the two
  concepts' mentions marked ``[E1] … [/E1]`` / ``[E2] … [/E2]`` (``concept_pair_candidates``; the
  training corpora build their examples with the same function).

Training and scoring are ``workers.training.relations`` and ``workers.training.evaluate``.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import torch

from pipeline.errors import ModelError
from workers.inference.artifacts import load_artifact
from workers.inference.device import autocast, pick_device, resolve_precision

# sentence-level sets the pipeline can feed: entity types (first, second) and how a candidate is written,
# as the corpus writes it (GAD masks both mentions; EU-ADR masks and marks them); the positive label's name
SENTENCE_FORMS = {
    "gad": (("Gene", "Disease"), ("@GENE$", "@DISEASE$"), "Association"),
    "euadr": (("Gene", "Disease"), ("[E1]@GENE$[/E1]", "[E2]@DISEASE$[/E2]"), "Association"),
}
# document-level sets: the candidate type pairs they declare (None: the pairs the training split
# relates, recorded in the artifact as ``type_pairs``); the label of a candidate that is no relation
DOCUMENT_FORMS = {"bc5cdr-cid": (("Chemical", "Disease"),), "biored": None}
DOC_RE_NEGATIVE = "None"


def sentence_candidate(text: str, base: int, first, second, form: tuple[str, str]) -> str:
    """``text`` (a sentence at document offset ``base``) with the two mentions replaced by the corpus's
    masks; ``first``/``second`` have document ``start``/``end``."""
    spans = sorted([(first.start - base, first.end - base, form[0]), (second.start - base, second.end - base, form[1])])
    out, pos = [], 0
    for s, e, mask in spans:
        out.append(text[pos:s])
        out.append(mask)
        pos = e
    out.append(text[pos:])
    return "".join(out)


def _marked(text: str, off: int, first: list, second: list) -> str:
    """``text`` (which starts at document offset ``off``) with E1/E2 markers around the mentions;
    overlapping mentions keep the earlier one."""
    spans = sorted([(m.start, m.end, "E1") for m in first] + [(m.start, m.end, "E2") for m in second])
    out, pos = [], off
    for s, e, tag in spans:
        if s < pos or e > off + len(text):
            continue
        out.append(text[pos - off : s - off])
        out.append(f"[{tag}] {text[s - off : e - off]} [/{tag}]")
        pos = e
    out.append(text[pos - off :])
    return "".join(out)


@dataclass(frozen=True)
class PairCandidate:
    head: tuple[str, str]        # (type, concept id) of the first concept
    tail: tuple[str, str]
    text: str                    # "TypeA TypeB | " + the sentence window with [E1]/[E2] markers
    head_mention: object         # the first mention of each concept inside the window
    tail_mention: object


def concept_pair_candidates(text: str, sents: list[tuple[int, str]], concepts: dict[tuple[str, str], list],
                            type_pairs: tuple[tuple[str, str], ...], window: int):
    """Candidate concept pairs of one document: ``concepts`` maps (type, concept id) to mentions
    (anything with ``start``/``end`` document offsets), ``sents`` is (offset, text) per sentence of
    ``text``. A pair of related types is a candidate when some mentions of the two come within
    ``window`` sentences; its text is the shortest such run of sentences with every mention of each
    concept marked. Each unordered pair is yielded once (the order that first works). The training
    corpora and the pipeline build their examples with this one function."""
    starts = [off for off, _ in sents]
    # each concept's sentences: the last sentence starting at or before each mention
    where = {k: sorted({max(bisect_right(starts, m.start) - 1, 0) for m in ms}) for k, ms in concepts.items()}
    covered = set()  # pairs with an example; a pair that failed in one order is tried in the other
    for (ta, ia), ma in concepts.items():
        for (tb, ib), mb in concepts.items():
            key = frozenset((ia, ib))
            if (ta, tb) not in type_pairs or ia == ib or key in covered:
                continue
            dist, i, j = min((abs(i - j), i, j) for i in where[(ta, ia)] for j in where[(tb, ib)])
            if dist >= window:
                continue
            lo, hi = min(i, j), max(i, j)
            off, end = sents[lo][0], sents[hi][0] + len(sents[hi][1])
            marked = _marked(text[off:end], off, ma, mb)
            if "[E1]" not in marked or "[E2]" not in marked:
                continue  # the two concepts share their only mentions (a composite "MODY")
            covered.add(key)
            inside = lambda ms: min((m for m in ms if off <= m.start and m.end <= end), key=lambda m: m.start)
            yield PairCandidate((ta, ia), (tb, ib), f"{ta} {tb} | " + marked, inside(ma), inside(mb))


class RelationClassifier:
    """A loaded relation artifact: texts in, labels out, in length-sorted batches."""

    def __init__(self, tokenizer, model, manifest: dict, max_length: int = 128, device: str = "cpu",
                 precision: str = "fp32") -> None:
        self.tokenizer, self.model, self.manifest = tokenizer, model.eval(), manifest
        self.max_length, self.device = max_length, device
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        self.autocast = resolve_precision(precision, device)

    @classmethod
    def load(cls, folder, device: str | None = None, precision: str = "fp32") -> "RelationClassifier":
        """A classifier for a local artifact folder (see workers.inference.artifacts.stage_artifact)."""
        device = pick_device(device)
        tokenizer, model, manifest = load_artifact(folder, "re", device)
        return cls(tokenizer, model, manifest, manifest.get("training", {}).get("max_length", 128), device, precision)

    # what the pipeline needs to build this model's candidates
    @property
    def model_id(self) -> str:
        return self.manifest.get("model_id", "")

    @property
    def negative(self) -> str | None:
        return self.manifest.get("negative_label")

    @property
    def window(self) -> int:
        return int(self.manifest.get("training", {}).get("window", 2))

    @property
    def level(self) -> str:
        """document: concept pairs over a sentence window; sentence: mention pairs within a sentence."""
        return "sentence" if self.manifest.get("dataset") in SENTENCE_FORMS else "document"

    @property
    def type_pairs(self) -> tuple[tuple[str, str], ...]:
        """The entity-type pairs this model relates: recorded at training; for artifacts older than
        that, the corpus's declared pairs."""
        dataset = self.manifest.get("dataset")
        if dataset in SENTENCE_FORMS:
            return (SENTENCE_FORMS[dataset][0],)
        pairs = self.manifest.get("type_pairs")
        if pairs is None:
            pairs = DOCUMENT_FORMS.get(dataset) or ()
        return tuple(tuple(p) for p in pairs)

    def relation_type(self, label: str) -> str:
        """The relations table's type for a predicted label (binary sets: "1" -> "Association")."""
        dataset = self.manifest.get("dataset")
        return SENTENCE_FORMS[dataset][2] if dataset in SENTENCE_FORMS and label == "1" else label

    def pipeline_check(self) -> None:
        """The pipeline feeds document-level models (BC5CDR CID, BioRED) concept pairs and GAD/EU-ADR
        models masked gene-disease mention pairs of one sentence. ChemProt's copy here has no negative
        class (every candidate would become a relation), so it is refused."""
        dataset = self.manifest.get("dataset")
        if not (dataset in SENTENCE_FORMS or (dataset in DOCUMENT_FORMS and self.type_pairs)):
            raise ModelError(
                f"relation model {self.model_id} was trained on {dataset!r}; the pipeline runs document-level "
                f"models ({', '.join(DOCUMENT_FORMS)}) over linked concepts and sentence-level ones "
                f"({', '.join(SENTENCE_FORMS)}) over gene-disease mention pairs. Other classifiers (ChemProt: "
                "no negative class here) are evaluated with `pubmine evaluate` only.")

    def predict(self, texts: list[str], batch_size: int = 64) -> list[str]:
        return [label for label, _ in self.predict_scored(texts, batch_size)]

    @torch.inference_mode()
    def predict_scored(self, texts: list[str], batch_size: int = 64) -> list[tuple[str, float]]:
        """(label, its softmax probability) per text."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[tuple[str, float] | None] = [None] * len(texts)
        for k in range(0, len(order), batch_size):
            idx = order[k : k + batch_size]
            enc = self.tokenizer([texts[i] for i in idx], truncation=True, max_length=self.max_length,
                                 padding=True, return_tensors="pt").to(self.device)
            with autocast(self.device, self.autocast):
                logits = self.model(**enc).logits
            prob, label = torch.softmax(logits.float(), -1).max(-1)
            for i, j, p in zip(idx, label.tolist(), prob.tolist()):
                out[i] = (self.labels[j], p)
        return out
