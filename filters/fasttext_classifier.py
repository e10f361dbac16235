"""A generic fastText classifier or tagger (quality, toxicity, domain, ...): the top label of a
text and the probability of one chosen label; and the top-K-percent selection shared by the
stages that rank a shard by a score."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from winnow.filters.lid import ModelError, cached_model
from winnow.filters.quality_classifier import normalise

PREFIX = "__label__"


def top_k_kept(scores: Sequence[float], percent: float) -> set[int]:
    """Indices of the best ``percent`` of ``scores`` (round(n * percent / 100) of them; ties go to
    the earlier index, so a shard's decision never depends on sort internals). The quality
    stage's classifier selects the same way."""
    keep_n = round(len(scores) * percent / 100)
    ranked = sorted(range(len(scores)), key=lambda i: -scores[i])
    return set(ranked[:keep_n])


@dataclass(frozen=True)
class Prediction:
    """The top label (without ``__label__``; None for a text with no words) and the score: the
    chosen label's probability, or the top label's when no label was chosen."""
    label: str | None
    score: float


def model_stamp(path: str) -> str:
    """Size and change time of a model file: part of a done-marker key, so a retrained model
    at the same path redoes the shards it scored."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"  # the stage's check says so, before any work
    return f"{st.st_size}:{st.st_mtime_ns}"


class FastTextClassifier:
    """A supervised fastText model; loading checks that it has the chosen label."""

    def __init__(self, model_path: str, label: str | None = None, max_chars: int = 20_000) -> None:
        self.model_path = str(model_path)
        self.model = cached_model(self.model_path)
        try:
            labels = list(self.model.get_labels())
        except Exception as exc:  # noqa: BLE001 - an unsupervised (word-vector) model has no labels
            raise ModelError(f"{model_path} is not a supervised fastText classifier: {exc}") from None
        if not labels or not all(isinstance(x, str) and x.startswith(PREFIX) for x in labels):
            raise ModelError(f"{model_path} is not a supervised fastText classifier (no {PREFIX} labels)")
        self.labels = [x[len(PREFIX):] for x in labels]
        if label is not None:
            label = label.removeprefix(PREFIX)
            if label not in self.labels:
                raise ModelError(f"{model_path} has no label {label!r} (its labels: {sorted(self.labels)[:8]}"
                                 f"{', ...' if len(self.labels) > 8 else ''})")
        self.label = label
        self.max_chars = max_chars

    def predict(self, text: str) -> Prediction:
        line = normalise(text, self.max_chars)
        if not line:
            return Prediction(None, 0.0)
        # All labels only when one is chosen: the chosen one may rank anywhere (GlotLID has ~2000).
        labels, probs = self.model.predict(line, k=-1 if self.label is not None else 1)
        top = labels[0][len(PREFIX):]
        if self.label is None:
            return Prediction(top, min(float(probs[0]), 1.0))
        want = PREFIX + self.label
        # fastText reports probabilities slightly above 1 for a near-certain label.
        score = next((min(float(p), 1.0) for lab, p in zip(labels, probs) if lab == want), 0.0)
        return Prediction(top, score)
