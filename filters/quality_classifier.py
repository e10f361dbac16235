"""fastText quality classifier, DCLM style: train on your positive/negative examples, then
score documents with the probability of the positive label."""

from __future__ import annotations

import os
import random
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from winnow.filters.lid import ModelError, cached_model

POSITIVE, NEGATIVE = "__label__hq", "__label__lq"
_WS = re.compile(r"\s+")


def normalise(text: str, max_chars: int = 20_000) -> str:
    """One lower-cased line with collapsed whitespace (fastText reads one example per line)."""
    return _WS.sub(" ", text[: max_chars * 2].lower()).strip()[:max_chars]


@dataclass
class TrainReport:
    """Held-out scores of a trained classifier, its path and size."""
    train_examples: int
    valid_examples: int
    precision: float
    recall: float
    f1: float
    accuracy: float
    model_path: str
    model_bytes: int = 0
    quantized: bool = False


def train(positives: Iterable[str], negatives: Iterable[str], out: str | os.PathLike[str], *,
          valid_fraction: float = 0.1, seed: int = 0, epoch: int = 25, lr: float = 1.0,
          dim: int = 64, word_ngrams: int = 2, min_count: int = 2, bucket: int = 200_000,
          threshold: float = 0.5, quantize: bool | None = None, cutoff: int = 100_000) -> TrainReport:
    """Train and save a classifier; report precision/recall/F1 of the positive class on a
    held-out validation split (never seen in training).

    Defaults (25 epochs, lr 1.0, word bigrams) suit the thousands-of-examples sets people
    start with; DCLM's 5 epochs at lr 0.1 assume hundreds of thousands. ``bucket`` is the
    number of hash buckets of the word n-grams: fastText's default of 2M makes every model about
    500 MB whatever the data; 200k keeps bigram collisions rare for sets up to millions of
    documents. A ``.ftz`` path (or ``quantize=True``) writes a quantized model of a few MB: the
    ``cutoff`` most important embedding rows, product-quantized; the held-out report is measured
    on the model as saved.
    """
    import fasttext  # noqa: PLC0415 - heavy native module

    fasttext.FastText.eprint = lambda *a, **k: None
    examples = [(POSITIVE, normalise(t)) for t in positives] + [(NEGATIVE, normalise(t)) for t in negatives]
    examples = [(lab, t) for lab, t in examples if t]
    if sum(lab == POSITIVE for lab, _ in examples) < 2 or sum(lab == NEGATIVE for lab, _ in examples) < 2:
        raise ValueError("need at least 2 non-empty positive and 2 non-empty negative examples")
    random.Random(seed).shuffle(examples)
    n_valid = max(1, int(len(examples) * valid_fraction))
    valid, train_set = examples[:n_valid], examples[n_valid:]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as fh:
        for lab, t in train_set:
            fh.write(f"{lab} {t}\n")
        train_file = fh.name
    quantize = out.suffix == ".ftz" if quantize is None else quantize
    try:
        model = fasttext.train_supervised(input=train_file, epoch=epoch, lr=lr, dim=dim, wordNgrams=word_ngrams,
                                          minCount=min_count, bucket=bucket, seed=seed, thread=1, verbose=0)
        if quantize:
            model.quantize(input=train_file, qnorm=True, retrain=False, cutoff=cutoff, thread=1, verbose=0)
    finally:
        os.unlink(train_file)
    tmp = out.with_name(f".{out.name}.tmp")
    model.save_model(str(tmp))
    os.replace(tmp, out)
    tp = fp = fn = correct = 0
    for lab, t in valid:
        pred = _positive_probability(model, t) >= threshold
        gold = lab == POSITIVE
        correct += pred == gold
        tp += pred and gold
        fp += pred and not gold
        fn += gold and not pred
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return TrainReport(len(train_set), len(valid), p, r, 2 * p * r / (p + r) if p + r else 0.0,
                       correct / len(valid), str(out), out.stat().st_size, quantize)


def _positive_probability(model, line: str) -> float:
    labels, probs = model.predict(line, k=2)
    for lab, prob in zip(labels, probs):
        if lab == POSITIVE:
            return min(float(prob), 1.0)
    return 0.0


class QualityClassifier:
    """A trained winnow quality classifier; loading checks it is one."""
    def __init__(self, model_path: str) -> None:
        self.model = cached_model(str(model_path))
        labels = set(self.model.get_labels())
        if POSITIVE not in labels:
            raise ModelError(f"{model_path} is not a winnow quality classifier (labels {sorted(labels)[:4]}, "
                             f"expected {POSITIVE}); train one with `winnow train-quality`")

    def score(self, text: str) -> float:
        """Probability that the text is of the positive (high-quality) class."""
        line = normalise(text)
        return _positive_probability(self.model, line) if line else 0.0
