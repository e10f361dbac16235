"""Classify stage: any number of model-based classifiers in one pass over a shard: fastText
classifiers or taggers (quality, toxicity, domain, ...) and transformers sequence-classification
models (FineWeb-Edu style educational-value regressors, or classification heads). Each one
annotates its score under its own name and keeps documents by a threshold or the best K percent
of each shard, or only annotates.

Models are the user's local files, never downloaded; their size and change time (and a digest of
a transformers model's config.json) are in the done-marker key, so a retrained model at the same
path redoes the shards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from winnow.config import StrictModel, output_settings, path_field, runtime_field
from winnow.document import Document
from winnow.filters.fasttext_classifier import FastTextClassifier, model_stamp, top_k_kept
from winnow.filters.lid import ModelError
from winnow.filters.transformers_scorer import DType, TransformersScorer, folder_stamp
from winnow.stage import DocumentStage, DocumentStageConfig, StageEnv, StageError, register

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]*$", max_length=64)]
# (score, top label or None) per text, in order
ScoreFn = Callable[[list[str]], list[tuple[float, str | None]]]


class _Classifier(StrictModel):
    name: Name = Field(..., description="Annotation name: the document gets classify.<name>.score (and "
                                        ".label, .int_score, .keep where they apply); drops are "
                                        "counted as classify:<name>.")
    model_path: str = path_field(..., stamped=False,  # stamped by ClassifyStage.settings (size, mtime)
                                 description="The model: a local file or folder of yours; never downloaded.")
    mode: Literal["filter", "annotate"] = Field(
        "filter", description="filter: drop documents that fail; annotate: keep every document and record "
                              "classify.<name>.keep (and a would_drop counter).")
    threshold: float | None = Field(None, description="Keep documents whose score is at least this.")
    top_k_percent: float | None = Field(
        None, gt=0, le=100, description="Instead of a threshold: keep the best K percent of each shard (of "
                                        "the documents still in when this classifier runs).")

    @model_validator(mode="after")
    def _one_rule(self) -> _Classifier:
        if self.threshold is not None and self.top_k_percent is not None:
            raise ValueError(f"classifier {self.name!r}: set threshold or top_k_percent, not both")
        if self.mode == "filter" and self.threshold is None and self.top_k_percent is None:
            raise ValueError(f"classifier {self.name!r}: mode filter needs a threshold or top_k_percent "
                             "(or mode: annotate)")
        return self


class FastTextSpec(_Classifier):
    """A supervised fastText model (.bin or .ftz)."""
    kind: Literal["fasttext"] = Field(description="fasttext")
    label: str | None = Field(None, description="fasttext: the label whose probability is the score (with or "
                                                "without __label__); null: the top label's probability.")
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] | None = Field(
        None, description="Keep documents whose score is at least this.")
    max_chars: int = Field(20_000, ge=16, description="Characters of each document given to the model.")


class TransformersSpec(_Classifier):
    """A transformers sequence-classification model folder (save_pretrained output)."""
    kind: Literal["transformers"] = Field(description="transformers")
    label: str | int | None = Field(
        None, description="transformers classification head: the class (name or index) whose probability is "
                          "the score; null: the top class's. A regression head (FineWeb-Edu) takes none: its "
                          "output is the score.")
    max_chars: int = Field(10_000, ge=16, description="Characters of each document tokenized (bounds the time "
                                                      "per document; 512 tokens are ~2,500 characters of English).")
    max_length: int = Field(512, ge=8, le=32_768, description="Tokens given to the model (truncated; FineWeb-Edu: "
                                                              "512); at most the model's position table.")
    dtype: DType = Field("float32", description="Weights and activations: float32, bfloat16 or float16 "
                                                "(the half-precision ones for a GPU).")
    int_score_range: tuple[int, int] | None = Field(
        (0, 5), description="Regression head: also annotate int_score = round(score clipped to this range), as "
                            "FineWeb-Edu does (0-5); null: no int_score.")
    batch_size: int = runtime_field(32, ge=1, le=4096, description="Documents per forward pass.")
    device: Literal["auto", "cpu", "cuda"] = runtime_field(
        "auto", description="auto: the GPU when torch sees one, else the CPU.")


Spec = Annotated[FastTextSpec | TransformersSpec, Field(discriminator="kind")]


def _fields(model: type[BaseModel], skip: set[str]) -> str:
    return "; ".join(f"{n} ({'required' if f.is_required() else repr(f.default)}): {(f.description or '').rstrip('.')}"
                     for n, f in model.model_fields.items() if n not in skip)


_COMMON = set(_Classifier.model_fields)


class ClassifyConfig(DocumentStageConfig):
    """Settings of the classify stage (YAML section `classify`)."""
    enabled: bool = Field(False, description="Run model-based classifiers (fastText, transformers) per document.")
    classifiers: list[Spec] = Field(
        default_factory=list,
        description="Classifiers, run in this order (a document one drops is not scored by the next); each a "
                    "mapping with kind: fasttext or kind: transformers. Fields of both: "
                    f"{_fields(_Classifier, set())}. fasttext only: {_fields(FastTextSpec, _COMMON | {'kind'})}. "
                    f"transformers only: {_fields(TransformersSpec, _COMMON | {'kind'})}.")

    @model_validator(mode="after")
    def _names(self) -> ClassifyConfig:
        if self.enabled and not self.classifiers:
            raise ValueError("classify is enabled but lists no classifiers")
        names = [c.name for c in self.classifiers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"classifier names must be unique (annotation keys): {twice} appear twice")
        return self


def _model_identity(spec: FastTextSpec | TransformersSpec) -> Any:
    return model_stamp(spec.model_path) if spec.kind == "fasttext" else folder_stamp(spec.model_path)


def _fasttext_fn(spec: FastTextSpec) -> ScoreFn:
    model = FastTextClassifier(spec.model_path, spec.label, spec.max_chars)

    def score(texts: list[str]) -> list[tuple[float, str | None]]:
        return [(p.score, p.label) for p in map(model.predict, texts)]

    return score


def _transformers_fn(spec: TransformersSpec) -> ScoreFn:
    scorer = TransformersScorer(spec.model_path, label=spec.label, max_length=spec.max_length,
                                max_chars=spec.max_chars, batch_size=spec.batch_size, device=spec.device,
                                dtype=spec.dtype)

    def score(texts: list[str]) -> list[tuple[float, str | None]]:
        return [(s.score, s.label) for s in scorer.score(texts)]

    return score


@register
class ClassifyStage(DocumentStage[ClassifyConfig]):
    """Every configured classifier over each document, in order; see the module docstring."""
    name = "classify"
    config_model = ClassifyConfig
    order = 25  # after the cheap rules of quality (fewer documents to score), before PII masking
    summary = ("Model classifiers per document: any number of fastText classifiers/taggers and transformers "
               "scorers (FineWeb-Edu style), each annotated under its name, kept by threshold or top-k percent.")

    @classmethod
    def settings(cls, section: ClassifyConfig, env: StageEnv | None = None) -> dict[str, Any]:
        out = super().settings(section, env)
        # Per classifier, without its runtime fields (batch size, device) and with the model's identity.
        out["classifiers"] = [{**output_settings(c), "model": _model_identity(c)} for c in section.classifiers]
        return out

    def __init__(self, section: ClassifyConfig, env: StageEnv) -> None:
        super().__init__(section, env)
        self.scorers: list[tuple[FastTextSpec | TransformersSpec, ScoreFn]] = []
        for i, spec in enumerate(section.classifiers):
            try:
                fn = _fasttext_fn(spec) if spec.kind == "fasttext" else _transformers_fn(spec)
            except (ModelError, ValueError, OSError) as exc:
                raise StageError(f"classify.classifiers[{i}] ({spec.name}): {exc}") from None
            self.scorers.append((spec, fn))
        if any(spec.top_k_percent for spec, _ in self.scorers):
            self.batch_size = None  # top-k ranks the whole shard: scores compare once all are in
        else:
            self.batch_size = max([s.batch_size for s, _ in self.scorers if s.kind == "transformers"], default=1)

    def apply(self, doc: Document) -> str | None:
        return self.apply_batch([doc])[0]

    def apply_batch(self, docs: list[Document]) -> list[str | None]:
        reasons: list[str | None] = [None] * len(docs)
        for spec, fn in self.scorers:
            live = [i for i, r in enumerate(reasons) if r is None]
            if not live:
                break
            scored = fn([docs[i].text for i in live])
            for i, (score, label) in zip(live, scored, strict=True):
                self._annotate(docs[i], spec, score, label)
            if spec.top_k_percent is not None:
                kept = top_k_kept([s for s, _ in scored], spec.top_k_percent)
                passed = [j in kept for j in range(len(live))]
            elif spec.threshold is not None:
                passed = [s >= spec.threshold for s, _ in scored]
            else:
                continue  # annotate only
            for i, ok in zip(live, passed, strict=True):
                if spec.mode == "annotate":
                    docs[i].annotate(self.name, f"{spec.name}.keep", ok)
                    if not ok:
                        self.stats.counters[f"would_drop:classify:{spec.name}"] += 1
                elif not ok:
                    reasons[i] = f"classify:{spec.name}"
        return reasons

    def _annotate(self, doc: Document, spec: FastTextSpec | TransformersSpec, score: float, label: str | None) -> None:
        # Six decimals: the score as the model gives it, without float noise of batch padding.
        doc.annotate(self.name, f"{spec.name}.score", round(score, 6))
        if label is not None:
            doc.annotate(self.name, f"{spec.name}.label", label)
            self.stats.counters[f"label:{spec.name}:{label}"] += 1
        elif spec.kind == "transformers" and spec.int_score_range is not None:
            lo, hi = spec.int_score_range
            doc.annotate(self.name, f"{spec.name}.int_score", int(round(max(lo, min(score, hi)))))
