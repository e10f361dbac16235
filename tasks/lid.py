"""Language-ID stage: annotate each document with its top language and score; keep the
languages asked for, above a global or per-language score threshold (FineWeb-2 style: with a
GlotLID model, FineWeb-2's own per-language language_score unless told otherwise)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import Field

from winnow.config import path_field
from winnow.document import Document
from winnow.filters.lid import FastTextLID, ModelError, load_thresholds
from winnow.filters.multilingual import LanguageSettingsError, glotlid_language_scores
from winnow.report import bar_chart, counter_items, section
from winnow.stage import DocumentStage, DocumentStageConfig, StageEnv, StageError, register
from winnow.stats import StageStats

Score = Annotated[float, Field(ge=0.0, le=1.0)]


class LidConfig(DocumentStageConfig):
    """Settings of the language-ID stage (YAML section `lid`)."""
    model_path: str | None = path_field(None, description="fastText LID model (lid.176.bin/.ftz, GlotLID, ...); "
                                                           "default: the bundled lid.176.ftz.")
    keep: list[str] = Field(default_factory=list,
                            description="Languages kept (model labels, e.g. en, de); empty: keep all, annotate only.")
    threshold: Score = Field(0.0, description="Minimum top-1 score for languages without their own threshold.")
    thresholds: dict[str, Score] = Field(default_factory=dict,
                                         description="Per-language minimum scores, e.g. {en: 0.65}.")
    calibrated_thresholds: bool = Field(
        False, description="Use winnow's calibrated per-language thresholds for lid.176 "
                           "(winnow/models/lid176_thresholds.json) where `thresholds` has none.")
    apply_language_score: bool = Field(
        True, description="With a GlotLID model (labels such as deu_Latn): drop documents below FineWeb-2's "
                          "per-language language_score (filters/data/fineweb2/, e.g. deu_Latn 0.821), as FineWeb-2 "
                          "does, where `thresholds` has none. false: annotate the score only. lid.176 labels "
                          "never get it (their scores are on another scale).")
    max_chars: int = Field(10_000, ge=16, description="Characters of each document given to the model.")


def effective_thresholds(cfg: LidConfig, labels: Iterable[str] = ()) -> dict[str, float]:
    """Per-language thresholds for a model with these labels: explicit ones win over FineWeb-2's
    language_score (GlotLID labels), which wins over the calibrated lid.176 table."""
    table = load_thresholds() if cfg.calibrated_thresholds else {}
    fineweb2 = glotlid_language_scores() if cfg.apply_language_score else {}
    known = set(labels)
    return {**table, **{lab: t for lab, t in fineweb2.items() if lab in known}, **cfg.thresholds}


@register
class LidStage(DocumentStage[LidConfig]):
    """Annotates each document's language and keeps the ones asked for."""
    name = "lid"
    config_model = LidConfig
    order = 10
    summary = "fastText language ID: annotate lid.lang/lid.score, keep-list, global or per-language thresholds."

    def __init__(self, section: LidConfig, env: StageEnv) -> None:
        super().__init__(section, env)
        try:
            self.lid = FastTextLID(section.model_path, section.max_chars)
            self.per_lang = effective_thresholds(section, self.lid.labels)
        except (ModelError, LanguageSettingsError) as exc:
            raise StageError(f"lid: {exc}") from None
        unknown = sorted(set(section.keep) - self.lid.labels)
        if unknown:
            raise StageError(f"lid.keep has languages the model does not know: {unknown} "
                             f"(model {self.lid.model_path} has {len(self.lid.labels)} labels, "
                             f"e.g. {sorted(self.lid.labels)[:8]})")
        self.keep = frozenset(section.keep)

    def apply(self, doc: Document) -> str | None:
        lang, score = self.lid.predict(doc.text)
        doc.annotate(self.name, "lang", lang)
        doc.annotate(self.name, "score", round(score, 4))
        if lang == "und":
            return "lid_no_text"
        self.stats.counters[f"lang:{lang}"] += 1
        if self.keep and lang not in self.keep:
            return "lid_language"
        if score < self.per_lang.get(lang, self.cfg.threshold):
            return "lid_low_score"
        return None

    @classmethod
    def report_section(cls, stats: StageStats | None, summary: Mapping[str, Any]) -> str | None:
        langs = counter_items(stats, "lang:")
        return section("languages", "Languages", bar_chart(langs, "documents per detected language "
                                                                 "(before the keep-list)", chart_id="languages-chart"))
