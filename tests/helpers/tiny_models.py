"""Small real models built by the tests themselves (nothing is downloaded): fastText classifiers
trained on real text, and tiny random transformers sequence-classification models."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEXT = REPO / "tests" / "data" / "text"

TRAIN = ("import fasttext, sys; fasttext.FastText.eprint = lambda *a, **k: None; "
         "fasttext.train_supervised(input=sys.argv[1], epoch=20, lr=0.5, dim=16, minCount=2, bucket=20000, "
         "wordNgrams=1, seed=0, thread=1, verbose=0).save_model(sys.argv[2])")


def windows(path: Path, size: int = 1500, n: int | None = None) -> list[str]:
    """Consecutive windows of a gzip'd book, hard line wraps undone as on a web page."""
    text = gzip.open(path, "rt", encoding="utf-8").read()
    text = re.sub(r"(?<!\n)\n(?!\n)", " ", text)
    out = [text[i : i + size] for i in range(0, len(text) - size, size)]
    return out[:n] if n else out


def train_fasttext(folder: Path, name: str, examples: dict[str, list[str]]) -> Path:
    """A supervised fastText model with one label per key of ``examples``, saved as NAME.bin.

    Trained in a subprocess: in-process fastText training has hit NaN on CI after other
    native libraries had run in the process."""
    from winnow.filters.quality_classifier import normalise

    lines = [f"__label__{label} {normalise(t)}" for label, texts in sorted(examples.items()) for t in texts]
    train_file = folder / f"{name}.txt"
    train_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = folder / f"{name}.bin"
    subprocess.run([sys.executable, "-c", TRAIN, str(train_file), str(model)], check=True, timeout=300)
    return model


def build_transformers(folder: Path, num_labels: int, seed: int = 0, positions: int = 128) -> Path:
    """A tiny random BERT with a regression (1 output) or a low/high classification head, and a
    BPE tokenizer trained on a Gutenberg book; saved as a user's model folder would be."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    text = gzip.open(TEXT / "austen-persuasion.txt.gz", "rt", encoding="utf-8").read()
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(text.split("\n\n"), trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<pad>"],
                                                                           show_progress=False))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>")
    labels = {0: "score"} if num_labels == 1 else {0: "low", 1: "high"}
    config = transformers.BertConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, max_position_embeddings=positions, pad_token_id=1,
                                     num_labels=num_labels, id2label=labels, label2id={v: k for k, v in labels.items()},
                                     initializer_range=0.5)  # spread-out random scores, so thresholds decide
    torch.manual_seed(seed)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder
