"""NER throughput: pubmine's actor path against the code a user would write instead.

    python -m benchmarks.ner_speed [--model URL] [--sentences 5000]

Same model, same real sentences (BC5CDR and NCBI-disease test abstracts, laid out and split as the
pipeline does), same run, same machine:
- baseline: ``transformers.pipeline("token-classification", aggregation_strategy="simple",
  batch_size=32)`` over the sentence list, fp32 (the obvious code);
- pubmine: the pipeline's own stages as Ray actors, a tokenizer actor feeding an NER actor with
  blocks of sentences (length-sorted token-budget batches, dynamic padding, inference_mode, autocast
  per ``--precision``, threads from the actor's CPU share), timed after one warm-up block.
Correctness: at fp32 our decoding must equal the Hugging Face pipeline's with
``aggregation_strategy="first"`` (the word-level decoding the model is trained for: a word's label is
its first piece's), sentence by sentence. HF's pipeline knows nothing of the model's acceptance
thresholds (``calibration.accept``: the least calibrated score a span of a type needs), so that
comparison reads the same model in process with the thresholds off; the timed runs keep them. ``simple`` labels every word piece on its own, so it
differs wherever a later piece of a word disagrees with the first; that count is reported too, as is
the number of sentences whose entities change under bf16.
The int8 path (``extract.precision: int8``: the encoder's linear layers dynamically
quantized) is timed on every CPU, so a bf16 machine measures the other machines' path as well.
Last line: RESULT ner_speed sentences_per_s=<ours, auto> baseline=<hf> ratio=<x> precision=<auto's>
fp32_ratio=<x> int8_ratio=<x>
"""

from __future__ import annotations

import argparse
import os
import time

from rich.console import Console
from rich.table import Table

from pipeline.config import shared_data_dir


def load_sentences(n: int) -> list[str]:
    from pipeline.parse.pubtator import read_pubtator
    from pipeline.parse.pubtator import doc_sentences

    out: list[str] = []
    for rel in ("bc5cdr/pubtator/CDR_TestSet.PubTator.txt.gz", "ncbi_disease/pubtator/NCBItestset_corpus.txt",
                "bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt.gz"):
        for doc in read_pubtator(shared_data_dir() / rel):
            out.extend(t for _, t in doc_sentences(doc) if t.strip())
            if len(out) >= n:
                return out[:n]
    return out


class _Actor:
    """A pipeline stage (Tokenize or NerPredictor) held by a plain Ray actor, so it can be warmed up
    before timing (a Ray Data pool would be built inside the timed run)."""

    def __init__(self, stage: str, kwargs: dict):
        from workers.inference import stages

        self.stage = getattr(stages, stage)(**kwargs)

    def run(self, batch):
        return self.stage(batch)


def run_ours(model: str, texts: list[str], precision: str, block: int, max_tokens: int) -> tuple[list[set], float]:
    import pyarrow as pa
    import ray

    actor = ray.remote(_Actor)
    tok = actor.options(num_cpus=0.25).remote("Tokenize", {"model_url": model})
    ner = actor.options(num_cpus=1.75).remote(
        "NerPredictor", {"model_url": model, "precision": precision, "num_threads": 2, "max_length": 512,
                         "max_tokens_per_batch": max_tokens})
    table = pa.table({"doc_id": [f"s{i}" for i in range(len(texts))], "sent_idx": pa.array([0] * len(texts), pa.int32()),
                      "start": pa.array([0] * len(texts), pa.int32()), "text": texts})
    blocks = [ray.put(table.slice(i, block)) for i in range(0, len(texts), block)]
    ray.get(ner.run.remote(tok.run.remote(blocks[0])))  # warm-up: models loaded, first batches run
    t0 = time.perf_counter()
    outs = ray.get([ner.run.remote(tok.run.remote(b)) for b in blocks])
    seconds = time.perf_counter() - t0
    for a in (tok, ner):
        ray.kill(a)
    result = pa.concat_tables(outs).column("entities").to_pylist()
    return [{(e["start"], e["end"], e["type"]) for e in ents} for ents in result], seconds


def run_hf(model: str, texts: list[str], strategy: str) -> tuple[list[set], float]:
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(model)
    clf = AutoModelForTokenClassification.from_pretrained(model, use_safetensors=True)
    pipe = pipeline("token-classification", model=clf, tokenizer=tokenizer, aggregation_strategy=strategy,
                    batch_size=32, device=-1)
    pipe(texts[:32])  # warm-up
    t0 = time.perf_counter()
    out = pipe(texts)
    seconds = time.perf_counter() - t0
    return [{(e["start"], e["end"], e["entity_group"]) for e in ents} for ents in out], seconds


def run_uncut(model: str, texts: list[str]) -> list[set]:
    """Our fp32 spans before the acceptance thresholds: what HF's pipeline decodes."""
    import torch

    from workers.inference.ner import NerTagger

    torch.set_num_threads(2)
    tagger = NerTagger.load(model, precision="fp32", max_length=512)
    tagger.accept = {}
    return [{(s.start, s.end, s.type) for s in spans} for spans in tagger.tag(texts)]


def ensure_bio_twin(default: str) -> str:
    """The default model itself when it is a BIO model; otherwise its BIO twin (the same config, data
    and budget with one softmax over all labels, the form HF's pipeline decodes), trained once beside
    it. Same encoder, same shapes: the throughput of the two differs only in the head."""
    from pathlib import Path

    from pipeline.config import load_dataclass
    from workers.inference.artifacts import artifact_exists, read_manifest
    from workers.training.ner import NerTrainConfig, train_ner

    if read_manifest(default).get("label_scheme") == "BIO":
        return default
    twin = Path(default).parent / "default-ner-bio"
    if not artifact_exists(str(twin)):
        print(f"the default model has per-type heads, which HF's token-classification pipeline cannot decode: "
              f"training its BIO twin into {twin} (about as long as make model's NER step)")
        root = Path(__file__).resolve().parents[1]
        cfg = load_dataclass(NerTrainConfig, root / "configs/models/default-ner.yaml",
                             ["label_scheme=BIO", "name=multitask-minilm-ner-bio"])
        train_ner(cfg, str(twin))
    return str(twin)


def main() -> None:
    import ray

    from benchmarks.e2e_bc5cdr import ensure_default_model
    from workers.inference.artifacts import read_manifest, stage_artifact
    from workers.inference.device import INT8, ner_precision_name

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="NER artifact URL (default: the pipeline's default model)")
    ap.add_argument("--sentences", type=int, default=5000)
    ap.add_argument("--block", type=int, default=1024, help="sentences per actor call (an extraction block)")
    ap.add_argument("--max-tokens", type=int, default=2048, help="token budget per forward pass")
    args = ap.parse_args()
    model = str(stage_artifact(args.model or ensure_bio_twin(ensure_default_model())))
    scheme = read_manifest(model).get("label_scheme")
    if scheme != "BIO":
        raise SystemExit(f"{model} has label scheme {scheme!r}; HF's token-classification pipeline decodes one softmax "
                         "over all labels (scheme 'BIO'), so the two paths cannot be compared on it. Give --model a "
                         "BIO model (without --model, the default model's BIO twin is trained and used).")
    texts = load_sentences(args.sentences)
    n_chars = sum(map(len, texts))
    print(f"{len(texts):,} sentences ({n_chars / len(texts):.0f} characters on average), model {model}")

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    hf_simple, t_simple = run_hf(model, texts, "simple")
    hf_first, t_first = run_hf(model, texts, "first")
    auto = ner_precision_name("auto", "cpu")
    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        ours32, t32 = run_ours(model, texts, "fp32", args.block, args.max_tokens)
        ours_auto, t_auto = run_ours(model, texts, "auto", args.block, args.max_tokens)
        # the int8 path (an option for CPUs without fast bf16, most cloud CPUs), timed whatever this CPU has
        ours8, t8 = (ours_auto, t_auto) if auto == INT8 else run_ours(model, texts, INT8, args.block, args.max_tokens)
    finally:
        ray.shutdown()

    uncut = run_uncut(model, texts)
    same_first = sum(a == b for a, b in zip(uncut, hf_first))
    same_simple = sum(a == b for a, b in zip(uncut, hf_simple))
    cut = sum(len(a - b) for a, b in zip(uncut, ours32))
    auto_diff = sum(a != b for a, b in zip(ours32, ours_auto))
    int8_diff = sum(a != b for a, b in zip(ours32, ours8))
    n = len(texts)
    t = Table(title=f"NER throughput, {n:,} real sentences, 2 CPU cores, same model", title_justify="left")
    for col in ("path", "precision", "seconds", "sentences/s", "vs HF pipeline (simple)", "entity sets"):
        t.add_column(col, justify="left" if col in ("path", "entity sets") else "right")
    t.add_row("HF pipeline, aggregation simple, batch 32", "fp32", f"{t_simple:.1f}", f"{n / t_simple:.0f}", "1.00x",
              f"{same_simple:,}/{n:,} sentences equal to ours (fp32, no cut)")
    t.add_row("HF pipeline, aggregation first, batch 32", "fp32", f"{t_first:.1f}", f"{n / t_first:.0f}",
              f"{t_simple / t_first:.2f}x", f"{same_first:,}/{n:,} equal to ours (fp32, no cut)")
    t.add_row("pubmine actors (tokenizer -> NER)", "fp32", f"{t32:.1f}", f"{n / t32:.0f}", f"{t_simple / t32:.2f}x",
              f"reference for the rows below; the acceptance cut drops {cut:,} spans")
    t.add_row(f"pubmine actors (tokenizer -> NER)", f"auto = {auto}", f"{t_auto:.1f}", f"{n / t_auto:.0f}",
              f"[bold]{t_simple / t_auto:.2f}x[/bold]", f"{auto_diff:,} sentences differ from fp32")
    if auto != INT8:
        t.add_row("pubmine actors (tokenizer -> NER)", "int8 (extract.precision=int8)", f"{t8:.1f}", f"{n / t8:.0f}",
                  f"[bold]{t_simple / t8:.2f}x[/bold]", f"{int8_diff:,} sentences differ from fp32")
    Console(highlight=False, width=160).print(t)
    identical = same_first == n
    print(f"fp32 entity sets before the acceptance cut identical to the HF pipeline (first): {identical} ({same_first}/{n}); "
          f"vs aggregation simple: {n - same_simple} sentences differ (a later word piece labelled unlike the first)")
    if not identical:
        for i, (a, b) in enumerate(zip(uncut, hf_first)):
            if a != b:
                print(f"  first difference, sentence {i}: ours {sorted(a)} HF {sorted(b)}: {texts[i][:200]!r}")
                break
    ours_rate = n / t_auto
    print(f"RESULT ner_speed sentences_per_s={ours_rate:.1f} baseline={n / t_simple:.1f} ratio={t_simple / t_auto:.2f} "
          f"precision={auto} fp32_ratio={t_simple / t32:.2f} int8_ratio={t_simple / t8:.2f}")


if __name__ == "__main__":
    main()
