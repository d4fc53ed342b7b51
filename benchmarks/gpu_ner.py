"""NER encoder throughput on a GPU: tokens/s and achieved FLOP/s as a fraction of the card's bf16 peak.

    python -m benchmarks.gpu_ner [--model URL | --shape base] [--sentences 20000] [--max-tokens 65536]

The NER actors' own code path (NerTagger: length-sorted token-budget batches, dynamic padding,
inference_mode, bf16 autocast) over real sentences (BC5CDR/NCBI-disease abstracts, split as the
pipeline splits them). ``--shape base`` swaps in a BERT-base-shaped encoder (12 layers, hidden 768,
random weights, the same tokenizer): what BioBERT costs, without downloading it. FLOPs are counted
analytically per real (unpadded) token: per layer 2·(4·d² + 2·d·d_ff) for the projections and MLP plus
4·n·d for attention scores and values over the sequence length n; padded FLOPs are reported beside.
Peak bf16 dense TFLOP/s comes from the card's name (H100 SXM/H200 989, H100 PCIe 756, A100 312, L4
121, A10G 70) or ``--peak-tflops``. Without a GPU it says so and, with ``--device cpu``, runs the
same measurement on the CPU (a smoke run; no peak is known there unless given).
Last line: RESULT gpu_ner tokens_per_s=<v> tflops=<v> peak_fraction=<v> device=<name>
"""

from __future__ import annotations

import argparse
import sys
import time

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 PCIe": 756.0, "H100": 756.0,
                    "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10G": 70.0}


def peak_for(name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    return None


def encoder_flops(config, lengths: list[int]) -> float:
    """Forward FLOPs of a BERT encoder over sequences of these lengths (multiply-add = 2 FLOPs)."""
    d, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = layers * 2 * (4 * d * d + 2 * d * f)
    return sum(n * per_token + layers * 4 * n * n * d for n in lengths)


def base_shaped_model(tokenizer_folder, labels):
    from transformers import BertConfig, BertForTokenClassification

    config = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, num_labels=len(labels), id2label=dict(enumerate(labels)),
                        label2id={l: i for i, l in enumerate(labels)})
    return BertForTokenClassification(config)


def main() -> None:
    import torch

    from benchmarks.e2e_bc5cdr import ensure_default_model
    from benchmarks.ner_speed import load_sentences
    from workers.inference.artifacts import stage_artifact
    from workers.inference.ner import NerTagger

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="NER artifact URL (default: the pipeline's default model)")
    ap.add_argument("--shape", choices=("artifact", "base"), default="artifact",
                    help="base: a BERT-base-shaped encoder with random weights (BioBERT's cost)")
    ap.add_argument("--sentences", type=int, default=20000)
    ap.add_argument("--max-tokens", type=int, default=65536, help="token budget per forward pass")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: run this on a GPU node (or --device cpu for a smoke run)")
        print("RESULT gpu_ner tokens_per_s=0 tflops=0 peak_fraction=0 device=none")
        sys.exit(0)

    folder = stage_artifact(args.model or ensure_default_model())
    tagger = NerTagger.load(folder, device=args.device, precision="bf16", max_length=512,
                            max_tokens_per_batch=args.max_tokens)
    if args.shape == "base":
        tagger.model = base_shaped_model(folder, list(tagger.id2label.values())).eval().to(args.device)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    peak = args.peak_tflops or (peak_for(name) if args.device.startswith("cuda") else None)
    texts = load_sentences(args.sentences)
    enc = tagger.encode(texts)
    lengths = [len(x) + 2 for x in enc.ids]
    padded = sum((max(w.end - w.start for w in b) + 2) * len(b) for b in tagger._batches(tagger._windows([len(x) for x in enc.ids])))
    flops = encoder_flops(tagger.model.config, lengths)

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    tagger.tag_encoded(type(enc)(enc.ids[:256], enc.word_first[:256], enc.word_spans[:256],
                                  enc.shapes[:256] if enc.shapes is not None else None))  # warm-up
    best = float("inf")
    for _ in range(args.repeat):
        sync()
        t0 = time.perf_counter()
        tagger.tag_encoded(enc)
        sync()
        best = min(best, time.perf_counter() - t0)
    tokens = sum(lengths)
    tflops = flops / best / 1e12
    fraction = tflops / peak if peak else float("nan")
    print(f"{name}: {len(texts):,} sentences, {tokens:,} tokens ({padded / tokens:.2f}x with padding), "
          f"encoder {tagger.model.config.num_hidden_layers}x{tagger.model.config.hidden_size}, bf16, "
          f"token budget {args.max_tokens:,}")
    print(f"best of {args.repeat}: {best:.2f} s -> {tokens / best:,.0f} tokens/s, {len(texts) / best:,.0f} sentences/s, "
          f"{tflops:.1f} TFLOP/s useful" + (f" = {100 * fraction:.1f}% of {peak:.0f} TFLOP/s bf16 peak" if peak else ""))
    print(f"RESULT gpu_ner tokens_per_s={tokens / best:.0f} tflops={tflops:.2f} peak_fraction={fraction:.4f} "
          f"device={name.replace(' ', '_')}")


if __name__ == "__main__":
    main()
