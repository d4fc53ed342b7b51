"""Document-level relation extraction in one encoder pass per document (ATLOP's recipe, BioRED's labels).

A document is encoded once, with every entity mention marked ``*`` … ``*`` (ATLOP's markers); a
document longer than the encoder's window is encoded in overlapping windows whose hidden states and
last-layer attentions are averaged where they overlap. Then, for every candidate pair of entities
(concepts: all mentions of one concept ID) of the type pairs the model relates:

- each entity is the logsumexp of its mentions' start-marker states;
- the pair's context is localized context pooling: the tokens both entities attend to (the product
  of their mean attention rows, averaged over heads, renormalized), a weighted sum of the states;
- head and tail are projected with the context and a type embedding, and a grouped bilinear layer
  gives one logit per label. Label 0 is ATLOP's adaptive threshold: a pair holds the best label whose
  logit exceeds the threshold's, else none. Pairs are unordered (BioRED relates either order): the
  logits of both orders are averaged.
- a novelty head (BioRED: the relation is the paper's novel finding, or background) reads the same
  bilinear features;
- the evidence sentence is the one holding most of the pair's context attention among the sentences
  that mention both entities (else the head), so the evidence an analyst reads names the pair.

The artifact is an encoder (``save_pretrained``: config.json + model.safetensors) plus the heads in
``heads.safetensors`` and their shapes in ``pubmine.json`` (task ``re-doc``), all in the content hash;
``load_artifact`` loads the encoder as for every task. Training is ``workers.training.docre``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from workers.inference.artifacts import HEADS, load_artifact
from workers.inference.device import autocast, pick_device, resolve_precision

NO_RELATION = "None"      # label 0: the adaptive threshold
NOVEL, NOT_NOVEL = "Novel", "No"
TYPE_DIM = 32             # the entity type embedding
BLOCK = 64                # the grouped bilinear's block size (ATLOP: 64)


@dataclass(frozen=True)
class Entity:
    """A concept of a document: its type, ID and mentions' (start, end) document offsets."""

    type: str
    concept_id: str
    mentions: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class PairScore:
    head: int                 # indexes into the document's entities, oriented by HEAD_ORDER (chemical first, ...)
    tail: int
    label: str                # NO_RELATION when no label beats the threshold
    probability: float        # softmax over the threshold and the labels
    novelty: str | None       # NOVEL / NOT_NOVEL for a relation (None: the model has no novelty head)
    novelty_probability: float | None
    evidence: int             # index of the sentence, among those naming both entities (else the head), holding most context attention
    gap: float = 0.0          # the threshold's logit minus the best label's: the pair is related when gap < margin


@dataclass
class Encoded:
    """One document as marker-interleaved word pieces."""

    ids: list[int]            # pieces, no special tokens
    char: list[int]           # each piece's first character (markers: their mention's edge)
    starts: list[list[int]]   # per entity, the positions of its mentions' start markers


def encode_document(tokenizer, text: str, entities: list[Entity], marker_id: int) -> Encoded:
    """``text``'s pieces with a marker before and after every mention (nested and overlapping
    mentions each get their own); a mention that covers no piece is left out of its entity."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    pieces, offsets = enc["input_ids"], enc["offset_mapping"]
    piece_starts, piece_ends = [a for a, _ in offsets], [b for _, b in offsets]
    opens: dict[int, list[int]] = {}
    closes: dict[int, int] = {}
    for k, ent in enumerate(entities):
        for s, e in ent.mentions:
            # the pieces a mention overlaps: from the first that ends after its start to the last that starts before its end
            first, last = bisect_right(piece_ends, s), bisect_left(piece_starts, e) - 1
            if first <= last:
                opens.setdefault(first, []).append(k)
                closes[last] = closes.get(last, 0) + 1
    ids, char, starts = [], [], [[] for _ in entities]
    for i, (piece, (a, b)) in enumerate(zip(pieces, offsets)):
        for k in opens.get(i, ()):
            starts[k].append(len(ids))
            ids.append(marker_id)
            char.append(a)
        ids.append(piece)
        char.append(a)
        for _ in range(closes.get(i, 0)):
            ids.append(marker_id)
            char.append(b)
    return Encoded(ids, char, starts)


# BioRED's relations are unordered; a row names them in one fixed orientation so that the same two
# concepts are one knowledge-table row and one export line whichever a paper names first: chemical
# before gene before variant before disease (PubTator3's habit: the agent first), then by concept id
HEAD_ORDER = ("Chemical", "Gene", "Variant", "Disease")


def head_order(e: "Entity") -> tuple:
    return (HEAD_ORDER.index(e.type) if e.type in HEAD_ORDER else len(HEAD_ORDER), e.type, e.concept_id)


def candidate_pairs(entities: list[Entity], enc: Encoded, type_pairs) -> list[tuple[int, int]]:
    """Unordered pairs (the earlier entity first) of distinct concepts whose types ``type_pairs``
    relates and whose mentions both reached the encoding; training and inference pair with this."""
    return [(i, j) for i in range(len(entities)) for j in range(i + 1, len(entities))
            if (entities[i].type, entities[j].type) in type_pairs
            and entities[i].concept_id != entities[j].concept_id and enc.starts[i] and enc.starts[j]]


def pool_entities(h: torch.Tensor, a: torch.Tensor, starts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each entity's representation and attention from its mentions' start markers, all entities in
    one gather: logsumexp of their hidden states [E, d] and the mean of their attention rows
    [E, heads, n] (ATLOP's pooling). An entity without pieces (never paired) reads position 0.
    One padded gather instead of two small ops per entity: the same numbers, in fewer ops (timed
    alone on 2 cores the one pass is as fast either way; beside another job, where every small op
    waits for a busy core, the loop cost as much as the encoder: benchmarks/results/relations.md)."""
    positions = [p or [0] for p in starts]
    width = max(len(p) for p in positions)
    idx = torch.zeros((len(positions), width), dtype=torch.long)
    keep = torch.zeros((len(positions), width), dtype=torch.bool)
    for e, p in enumerate(positions):
        idx[e, : len(p)] = torch.tensor(p)
        keep[e, : len(p)] = True
    idx, keep = idx.to(h.device), keep.to(h.device)
    ent = torch.logsumexp(h[idx].masked_fill(~keep[..., None], float("-inf")), 1)
    rows = a[:, idx].masked_fill(~keep[None, :, :, None], 0)                  # [heads, E, M, n]
    att = rows.sum(2) / keep.sum(1).to(rows.dtype)[None, :, None]
    return ent, att.transpose(0, 1)


def marker_id(tokenizer) -> int:
    ids = tokenizer("*", add_special_tokens=False)["input_ids"]
    return ids[0]


class DocRelationModel(nn.Module):
    """Encoder + pair heads; see the module docstring."""

    def __init__(self, encoder, labels: list[str], types: list[str], novelty: bool = True,
                 window: int = 512, stride: int = 128):
        super().__init__()
        if labels[0] != NO_RELATION:
            raise ValueError(f"label 0 must be {NO_RELATION!r} (the adaptive threshold), got {labels[0]!r}")
        self.encoder, self.labels, self.types = encoder, list(labels), list(types)
        self.window, self.stride = window, stride
        hidden = encoder.config.hidden_size
        self.block = BLOCK if hidden % BLOCK == 0 else hidden
        self.type_emb = nn.Embedding(len(types), TYPE_DIM)
        self.head_proj = nn.Linear(2 * hidden + TYPE_DIM, hidden)
        self.tail_proj = nn.Linear(2 * hidden + TYPE_DIM, hidden)
        self.classifier = nn.Linear(hidden * self.block, len(labels))
        self.novelty = nn.Linear(hidden * self.block, 1) if novelty else None
        if self.last_self_attention() is None and hasattr(encoder, "set_attn_implementation"):
            encoder.set_attn_implementation("eager")  # not BERT-shaped: its own attention weights are read

    # -- the encoder pass -------------------------------------------------------------------------------
    def encode(self, docs: list[Encoded], cls_id: int, sep_id: int, pad_id: int):
        """Per document: hidden states [n, d] and mean-over-heads-kept attention [heads, n, n] of its
        pieces (windows averaged where they overlap)."""
        content = self.window - 2
        chunks, where = [], []  # where: (doc index, first piece)
        for d, doc in enumerate(docs):
            n, start = len(doc.ids), 0
            while True:
                chunks.append([cls_id] + doc.ids[start:start + content] + [sep_id])
                where.append((d, start))
                if start + content >= n:
                    break
                start += content - self.stride
        width = max(len(c) for c in chunks)
        device = self.type_emb.weight.device
        ids = torch.full((len(chunks), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunks), width), dtype=torch.long)
        for r, c in enumerate(chunks):
            ids[r, : len(c)] = torch.tensor(c)
            mask[r, : len(c)] = 1
        ids, mask = ids.to(device), mask.to(device)
        if self.last_self_attention() is not None:  # the fast attention kernels; the last layer's weights recomputed
            out = self.encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            states, attention = out.last_hidden_state, self.last_attention(out.hidden_states[-2], mask)
        else:  # an encoder of another shape: its own attention weights (needs attn_implementation="eager")
            out = self.encoder(input_ids=ids, attention_mask=mask, output_attentions=True)
            states, attention = out.last_hidden_state, out.attentions[-1]
        result = []
        rows: dict[int, list[int]] = {}
        for r, (d, _) in enumerate(where):
            rows.setdefault(d, []).append(r)
        for d, doc in enumerate(docs):
            n = len(doc.ids)
            if len(rows[d]) == 1:  # one window (most abstracts): its states as they are
                r = rows[d][0]
                result.append((states[r, 1:1 + n], attention[r, :, 1:1 + n, 1:1 + n]))
                continue
            h = states.new_zeros((n, states.shape[-1]))
            a = attention.new_zeros((attention.shape[1], n, n))
            count = states.new_zeros((n, 1))
            for r, (dd, start) in enumerate(where):
                if dd != d:
                    continue
                m = min(content, n - start)
                h[start:start + m] = h[start:start + m] + states[r, 1:1 + m]
                a[:, start:start + m, start:start + m] = a[:, start:start + m, start:start + m] + attention[r, :, 1:1 + m, 1:1 + m]
                count[start:start + m] += 1
            result.append((h / count, a / count.view(1, n, 1)))
        return result

    def last_self_attention(self):
        """The last layer's self-attention of a BERT-family encoder (query/key projections), or None."""
        layers = getattr(getattr(self.encoder, "encoder", None), "layer", None)
        att = getattr(getattr(layers[-1], "attention", None), "self", None) if layers else None
        return att if hasattr(att, "query") and hasattr(att, "key") else None

    def last_attention(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The last layer's attention probabilities [batch, heads, n, n] from its input ``x``: what
        eager attention returns (softmax(QK^T / sqrt(d)) over unmasked keys), so the encoder itself
        runs on SDPA kernels (3x faster on CPU) and one extra QK^T gives the weights LOP reads."""
        att = self.last_self_attention()
        heads = self.encoder.config.num_attention_heads
        b, n, _ = x.shape
        q = att.query(x).view(b, n, heads, -1).transpose(1, 2)
        k = att.key(x).view(b, n, heads, -1).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)) / (q.shape[-1] ** 0.5)
        scores = scores.float().masked_fill(mask[:, None, None, :] == 0, torch.finfo(torch.float32).min)
        return torch.softmax(scores, -1).to(x.dtype)

    # -- pairs ------------------------------------------------------------------------------------------
    def pair_logits(self, h, a, doc: Encoded, type_ids: list[int], pairs: list[tuple[int, int]]):
        """(label logits [P, labels], novelty logits [P] or None, context weights [P, n]) for the
        unordered ``pairs`` of one document's entities."""
        ent, att = pool_entities(h, a, doc.starts)               # [E, d], [E, heads, n]
        hi = torch.tensor([p[0] for p in pairs], device=h.device)
        ti = torch.tensor([p[1] for p in pairs], device=h.device)
        q = (att[hi] * att[ti]).mean(1)                           # [P, n]
        q = q / (q.sum(1, keepdim=True) + 1e-5)
        context = q @ h                                           # [P, d]
        types = self.type_emb(torch.tensor(type_ids, device=h.device))

        def features(x, y):
            zs = torch.tanh(self.head_proj(torch.cat([ent[x], context, types[x]], -1)))
            zo = torch.tanh(self.tail_proj(torch.cat([ent[y], context, types[y]], -1)))
            g = zs.shape[-1] // self.block
            return (zs.view(-1, g, self.block, 1) * zo.view(-1, g, 1, self.block)).reshape(len(pairs), -1)

        both = (features(hi, ti) + features(ti, hi)) / 2
        novelty = self.novelty(both).squeeze(-1) if self.novelty is not None else None
        return self.classifier(both), novelty, q

    def head_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}


def decide(logits: torch.Tensor, margin: float = 0.0) -> tuple[list[int], list[float], list[float]]:
    """ATLOP's adaptive threshold, one label per pair: the best label when its logit comes within
    ``margin`` of label 0's (ATLOP: margin 0, it must beat it), else 0; with its softmax probability,
    and each pair's gap (label 0's logit minus the best label's)."""
    logits = logits.float()
    prob = torch.softmax(logits, -1)
    best = logits[:, 1:].argmax(-1) + 1
    gap = logits[:, 0] - logits.gather(1, best[:, None]).squeeze(1)
    chosen = torch.where(gap < margin, best, torch.zeros_like(best))
    return chosen.tolist(), prob.gather(1, chosen[:, None]).squeeze(1).tolist(), gap.tolist()


class DocRelationExtractor:
    """A loaded ``re-doc`` artifact: documents and their entities in, scored pairs out."""

    def __init__(self, tokenizer, model: DocRelationModel, manifest: dict, device: str = "cpu",
                 precision: str = "fp32", docs_per_batch: int = 8):
        self.tokenizer, self.model, self.manifest = tokenizer, model.eval(), manifest
        self.device, self.docs_per_batch = device, docs_per_batch
        self.autocast = resolve_precision(precision, device)
        self.marker = marker_id(tokenizer)
        self.type_pairs = {tuple(p) for p in manifest.get("type_pairs", ())}
        # the decision margin chosen on held-out documents (`pubmine calibrate`; absent: ATLOP's 0)
        self.margin = float(manifest.get("calibration", {}).get("margin", 0.0))

    @classmethod
    def load(cls, folder, device: str | None = None, precision: str = "fp32") -> "DocRelationExtractor":
        from safetensors.torch import load_file

        device = pick_device(device)
        tokenizer, encoder, manifest = load_artifact(folder, "re-doc", device)
        heads = manifest["heads"]
        model = DocRelationModel(encoder, heads["labels"], heads["types"], heads["novelty"],
                                 heads["window"], heads["stride"])
        state = {k: v.float() for k, v in load_file(str(Path(folder) / HEADS)).items()}
        missing = model.load_state_dict(state, strict=False)
        absent = [k for k in missing.missing_keys if not k.startswith("encoder.")]
        if absent or missing.unexpected_keys:
            from pipeline.errors import ModelError

            raise ModelError(f"relation artifact {folder}: {HEADS} does not fit its manifest "
                             f"(missing {absent[:3]}, unexpected {missing.unexpected_keys[:3]}); retrain it")
        return cls(tokenizer, model.to(device), manifest, device, precision)

    @property
    def model_id(self) -> str:
        return self.manifest.get("model_id", "")

    @torch.inference_mode()
    def predict(self, docs: list[tuple[str, list[tuple[int, int]], list[Entity]]]) -> list[list[PairScore]]:
        """Per document (text, sentence (start, end) offsets, entities): a PairScore per candidate pair."""
        out: list[list[PairScore]] = [[] for _ in docs]
        work = []
        for d, (text, sents, ents) in enumerate(docs):
            index = [k for k, e in enumerate(ents) if e.type in self.model.types]  # known -> ents
            known = [ents[k] for k in index]
            if len(known) < 2:
                continue
            enc = encode_document(self.tokenizer, text, known, self.marker)
            pairs = candidate_pairs(known, enc, self.type_pairs)
            if pairs:
                work.append((d, enc, known, pairs, sents, index))
        work.sort(key=lambda w: len(w[1].ids))
        tok = self.tokenizer
        for k in range(0, len(work), self.docs_per_batch):
            part = work[k:k + self.docs_per_batch]
            with autocast(self.device, self.autocast):
                states = self.model.encode([w[1] for w in part], tok.cls_token_id, tok.sep_token_id, tok.pad_token_id or 0)
                for (d, enc, known, pairs, sents, index), (h, a) in zip(part, states):
                    logits, novelty, q = self.model.pair_logits(h, a, enc, [self.model.types.index(e.type) for e in known],
                                                                pairs)
                    out[d] = self._scores(logits, novelty, q, enc, known, pairs, sents, index)
        return out

    def _scores(self, logits, novelty, q, enc, known, pairs, sents, index) -> list[PairScore]:
        chosen, prob, gaps = decide(logits, self.margin)
        nov = torch.sigmoid(novelty.float()).tolist() if novelty is not None else [None] * len(pairs)
        # the context weight each sentence holds: pieces by their first character
        bounds = torch.tensor([s for s, _ in sents], dtype=torch.long)
        sent_of = (torch.bucketize(torch.tensor(enc.char), bounds, right=True) - 1).clamp(min=0)
        mass = torch.zeros((len(pairs), max(len(sents), 1))).index_add_(1, sent_of, q.float().cpu())
        starts = [s for s, _ in sents]
        where = [{max(bisect_right(starts, a) - 1, 0) for a, _ in e.mentions} for e in known]  # each entity's sentences
        # scored earlier-first, as trained; written in the canonical orientation (HEAD_ORDER)
        pairs = [(j, i) if head_order(known[j]) < head_order(known[i]) else (i, j) for i, j in pairs]
        evidence = []
        for p, (i, j) in enumerate(pairs):  # among the sentences holding both (else the head), the most attended
            allowed = sorted(where[i] & where[j]) or sorted(where[i])
            evidence.append(allowed[int(mass[p, allowed].argmax())] if allowed and sents else 0)
        out = []
        for (i, j), c, p, n, ev, g in zip(pairs, chosen, prob, nov, evidence, gaps):
            label = self.model.labels[c]
            novel = None if n is None or label == NO_RELATION else (NOVEL if n >= 0.5 else NOT_NOVEL)
            out.append(PairScore(index[i], index[j], label, p, novel,
                                 None if novel is None else (n if novel == NOVEL else 1 - n), ev, g))
        return out
