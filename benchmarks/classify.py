"""Throughput of the classify stage's transformers scorer on real text (Gutenberg windows of
../shared/data/text), by batch size, as ratios against batch_size=1 measured in the same run.

No model is downloaded. Two random-weight BERTs are built here, with a BPE tokenizer trained on
a Gutenberg book (speed depends on the shape, not on the weights):
  tiny   2 layers, hidden 32 (the tests' model)
  base   12 layers, hidden 768, 12 heads: the shape of FineWeb-Edu's classifier
         (HuggingFaceFW/fineweb-edu-classifier, a BERT-base Snowflake arctic-embed-m + a
         regression head); with --max-length 512 every window here is the full 512 tokens, as
         most web pages are for that classifier
A real model folder of yours can be timed instead with --model PATH.

    python benchmarks/classify.py                       # CPU (one core), tiny and base
    python benchmarks/classify.py --device cuda --dtype bfloat16 --docs 2048 --batch-sizes 1,32,128,512
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, machine, markdown_table, pin_to_one_core, shared_data


def texts(n: int, size: int = 3000) -> list[str]:
    folder = shared_data() / "text" / "gutenberg"
    out: list[str] = []
    for path in sorted(folder.glob("*.txt.gz")):
        text = re.sub(r"(?<!\n)\n(?!\n)", " ", gzip.open(path, "rt", encoding="utf-8").read())
        out += [text[i : i + size] for i in range(0, len(text) - size, size)][:40]
    return (out * (n // max(1, len(out)) + 1))[:n]


def build(folder: Path, shape: str) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    import torch
    import transformers
    from helpers.tiny_models import build_transformers

    if shape == "tiny":
        return build_transformers(folder, num_labels=1, positions=512)
    build_transformers(folder, num_labels=1, positions=512)  # for its tokenizer
    config = transformers.BertConfig(vocab_size=30522, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                     num_attention_heads=12, max_position_embeddings=512, num_labels=1,
                                     pad_token_id=1)
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def measure(model: str, docs: list[str], batch_size: int, device: str, dtype: str, max_length: int) -> float:
    from winnow.filters.transformers_scorer import TransformersScorer

    scorer = TransformersScorer(model, batch_size=batch_size, device=device, dtype=dtype,  # type: ignore[arg-type]
                                max_length=max_length)
    scorer.score(docs[: min(len(docs), 2 * batch_size)])  # warm-up: allocator, kernels
    if device != "cpu":
        import torch

        torch.cuda.synchronize()
    t0 = time.perf_counter()
    scorer.score(docs)
    return len(docs) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--shapes", default="tiny,base", help="random models to build: tiny, base")
    ap.add_argument("--model", help="time this model folder instead of random ones")
    ap.add_argument("--docs", type=int, default=None, help="documents per measurement (default: 256; 32 for base on CPU)")
    ap.add_argument("--batch-sizes", default="1,4,16,64")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: per-core figures, pinned to one core)")
    args = ap.parse_args()
    if args.threads == 1 and args.device == "cpu":
        pin_to_one_core()  # before torch loads: OpenMP reads its thread count once
    import torch

    torch.set_num_threads(args.threads)

    sizes = [int(b) for b in args.batch_sizes.split(",")]
    if 1 not in sizes:
        sizes.insert(0, 1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = ([("your model", args.model)] if args.model else
                  [(s, str(build(Path(tmp) / s, s))) for s in args.shapes.split(",")])
        for label, path in models:
            n = args.docs or (32 if label == "base" and args.device == "cpu" else 256)
            docs = texts(n)
            base = None
            for bs in sizes:
                rate = measure(path, docs, bs, args.device, args.dtype, args.max_length)
                base = rate if bs == 1 else base
                rows.append({"model": label, "batch_size": bs, "docs": n, "docs/s": f"{rate:,.1f}",
                             "vs batch_size=1": f"{rate / base:.2f}x" if base else "-"})
    print(f"transformers scorer, device {args.device}, {args.dtype}, max_length {args.max_length}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads); {machine()}")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
