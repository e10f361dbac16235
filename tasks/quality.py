"""Quality stage: heuristic rule sets (Gopher repetition, Gopher quality, C4, FineWeb) and an
optional fastText quality classifier. ``filter`` mode drops, ``annotate`` mode records."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from winnow.config import StrictModel, path_field
from winnow.document import Document
from winnow.filters.lid import ModelError
from winnow.filters.multilingual import LanguageSettingsError, bundled_configs, settings_for
from winnow.filters.quality import RULESETS, RuleSet, apply_rules, build_rulesets
from winnow.filters.quality_classifier import QualityClassifier
from winnow.stage import DocumentStage, DocumentStageConfig, StageEnv, StageError, register

Score = Annotated[float, Field(ge=0.0, le=1.0)]


def _all_rulesets() -> list[RuleSet]:
    return list(RULESETS)


class ClassifierConfig(StrictModel):
    """The optional fastText quality classifier (YAML section `quality.classifier`)."""
    enabled: bool = Field(False, description="Score documents with a fastText quality classifier.")
    model_path: str | None = path_field(None, description="Model trained with `winnow train-quality`.")
    threshold: Score = Field(0.5, description="Keep documents whose positive-class probability is at least this.")
    top_k_percent: float | None = Field(None, gt=0, le=100,
                                        description="Instead of a threshold: keep the best K percent of each shard.")

    @model_validator(mode="after")
    def _needs_model(self) -> ClassifierConfig:
        if self.enabled and not self.model_path:
            raise ValueError("quality.classifier.model_path is required when the classifier is enabled")
        return self


class QualityConfig(DocumentStageConfig):
    """Settings of the quality stage (YAML section `quality`)."""
    mode: Literal["filter", "annotate"] = Field(
        "filter", description="filter: drop failing documents; annotate: keep them, record failed rules.")
    rules: list[RuleSet] = Field(
        default_factory=_all_rulesets,
        description="Rule sets, in order (datatrove's implementations, FineWeb order).")
    params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Parameters per rule set, passed to datatrove's filter, e.g. "
                                          "{gopher_quality: {min_doc_words: 30}}.")
    language: str = Field("en", description="Language of documents without a LID label (and of every document "
                                            "when per_language is off): its settings and word splitting.")
    per_language: bool = Field(
        True, description="FineWeb-2 style: each document gets the settings of its LID label (lid.lang): stop "
                          "words, thresholds, word tokenizer, rule sets (filters/data/fineweb2/, 33 languages; "
                          "others: default thresholds without the stop-word rule). English is FineWeb's. "
                          "false: quality.language's settings for every document.")
    max_chars: int = Field(2_000_000, ge=1000, description="Longer documents are dropped (too_long) untokenized.")
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)

    @field_validator("params")
    @classmethod
    def _known_rulesets(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = set(v) - set(RULESETS)
        if unknown:
            raise ValueError(f"unknown rule set(s) {sorted(unknown)}")
        return v


@register
class QualityStage(DocumentStage[QualityConfig]):
    """Heuristic rule sets and the optional classifier, per document."""
    name = "quality"
    config_model = QualityConfig
    order = 20
    summary = ("Gopher repetition + Gopher quality + C4 + FineWeb rules (datatrove's) with per-language "
               "settings (FineWeb-2), then an optional fastText quality classifier (`winnow train-quality`).")

    @classmethod
    def settings(cls, section: QualityConfig, env: StageEnv | None = None) -> dict[str, Any]:
        out = super().settings(section, env)
        # Another segmenter (jieba, Sudachi and its dictionary, Kiwi, ...) or version gives other
        # words, so other decisions: the tokenizer of every language this run can meet is in the key.
        labels = [section.language, *(bundled_configs() if section.per_language else ())]
        try:
            keys = {settings_for(label).name: settings_for(label).tokenizer_key for label in labels}
            if section.per_language:
                keys["other"] = settings_for("und").tokenizer_key  # languages without bundled settings
        except (LanguageSettingsError, ValueError) as exc:  # the stage's own start reports it, before work
            keys = {"unavailable": str(exc)}
        out["word_tokenizers"] = keys
        return out

    def __init__(self, section: QualityConfig, env: StageEnv) -> None:
        super().__init__(section, env)
        self._by_language: dict[str, list[tuple[str, Any]]] = {}
        try:
            self.rulesets = self._rulesets_for(section.language)
            self.classifier = (QualityClassifier(section.classifier.model_path)
                               if section.classifier.enabled and section.classifier.model_path else None)
        except (ModelError, LanguageSettingsError, ValueError, OSError) as exc:
            raise StageError(f"quality: {exc}") from None
        self.filtering = section.mode == "filter"
        # Top-k ranks a whole shard: scores are only comparable once every document is scored.
        self.batch_size = None if self.classifier is not None and section.classifier.top_k_percent else 1

    def apply(self, doc: Document) -> str | None:
        reason = self._rules(doc)
        if reason is not None or self.classifier is None:
            return reason
        score = self._score(doc)
        if self.filtering and score < self.cfg.classifier.threshold:
            return "classifier:below_threshold"
        return None

    def _rulesets_for(self, label: str) -> list[tuple[str, Any]]:
        """The rule sets for a LID label, built once per stage instance and language."""
        built = self._by_language.get(label)
        if built is None:
            # per_language off: every document gets quality.language's settings (this, once).
            s = settings_for(label)
            rules = [r for r in s.rules if r in self.cfg.rules]
            built = build_rulesets(rules, s.quality_params(self.cfg.params), s.tokenizer())
            self._by_language[label] = built
        return built

    def _rules(self, doc: Document) -> str | None:
        if not doc.text.strip():
            return "empty_text"
        if len(doc.text) > self.cfg.max_chars:
            return "too_long"  # far past every rule's word limit; not worth tokenizing
        rulesets = self.rulesets
        label = doc.annotations.get("lid.lang") if self.cfg.per_language else None
        if isinstance(label, str) and label != self.cfg.language:
            try:
                rulesets = self._rulesets_for(label)
            except (LanguageSettingsError, ValueError) as exc:
                # A language whose tokenizer cannot load here: counted, never a failed shard.
                self.stats.error("language_settings_unavailable", f"quality settings for {label!r}: {exc}")
                if not self.filtering:  # annotate mode keeps every document it can say something about
                    doc.annotate(self.name, "failed", ["no_language_settings"])
                    self.stats.counters["would_drop:no_language_settings"] += 1
                    return None
                return "no_language_settings"
        text, failed = apply_rules(rulesets, doc.text, stop_at_first=self.filtering)
        doc.text = text  # C4 removes lines (javascript notices, policy lines) as datatrove's does
        if self.filtering and failed:
            return failed[0]
        if failed and label is not None:
            self.stats.counters[f"lang_failed:{label}"] += 1
        if rulesets:
            doc.annotate(self.name, "failed", failed)
            for reason in failed:
                self.stats.counters[f"would_drop:{reason}"] += 1
        return None

    def _score(self, doc: Document) -> float:
        assert self.classifier is not None
        score = self.classifier.score(doc.text)
        doc.annotate(self.name, "classifier_score", round(score, 4))
        return score

    def apply_batch(self, docs: list[Document]) -> list[str | None]:
        if self.batch_size == 1:
            return [self.apply(d) for d in docs]
        reasons = [self._rules(d) for d in docs]
        scored = [(self._score(d), i) for i, d in enumerate(docs) if reasons[i] is None]
        top_k = self.cfg.classifier.top_k_percent or 100.0
        keep_n = round(len(scored) * top_k / 100)
        kept = {i for _, i in sorted(scored, key=lambda si: -si[0])[:keep_n]}
        for _, i in scored:
            if i not in kept and self.filtering:
                reasons[i] = "classifier:below_top_k"
        return reasons
