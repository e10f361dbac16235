"""PII masking stage: emails and IP addresses replaced with fixed placeholders, as FineWeb does,
and optionally phone and payment-card numbers (Luhn-checked); the text around them is kept."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from winnow.document import Document
from winnow.filters.pii import DEFAULT_REPLACEMENTS, FINEWEB_KINDS, PiiConfigError, PiiKind, PiiMasker
from winnow.report import bar_chart, counter_items, section
from winnow.stage import DocumentStage, DocumentStageConfig, StageEnv, StageError, register
from winnow.stats import StageStats


class PiiConfig(DocumentStageConfig):
    """Settings of the PII masking stage (YAML section `pii`)."""
    enabled: bool = Field(False, description="Mask personal data in the text (FineWeb masks emails and IPs).")
    kinds: list[PiiKind] = Field(default_factory=lambda: list(FINEWEB_KINDS),
                                 description="What to mask: email, ip (FineWeb's), phone, card (Luhn-checked).")
    replacements: dict[str, str] = Field(
        default_factory=dict, description="Placeholder per kind; defaults: " + ", ".join(
            f"{k}: {v}" for k, v in DEFAULT_REPLACEMENTS.items()) + ".")


@register
class PiiStage(DocumentStage[PiiConfig]):
    """Masks personal data in the text; never drops a document."""
    name = "pii"
    config_model = PiiConfig
    order = 30
    summary = "PII masking: emails and IPs (FineWeb), phones and card numbers optionally, fixed placeholders."

    def __init__(self, section: PiiConfig, env: StageEnv) -> None:
        super().__init__(section, env)
        try:
            self.masker = PiiMasker(section.kinds, section.replacements or None)
        except PiiConfigError as exc:
            raise StageError(f"pii: {exc}") from None

    def apply(self, doc: Document) -> str | None:
        text, counts = self.masker.mask(doc.text)
        if counts:
            doc.text = text
            for kind, n in counts.items():
                self.stats.counters[f"masked:{kind}"] += n
            self.stats.counters["documents_masked"] += 1
        return None

    @classmethod
    def report_section(cls, stats: StageStats | None, summary: Mapping[str, Any]) -> str | None:
        if stats is None:
            return None
        rows = counter_items(stats, "masked:")
        return section("pii", "Personal data masked",
                       f"<p>{stats.counters.get('documents_masked', 0):,} of {stats.docs_in:,} documents had "
                       "something masked.</p>" + bar_chart(rows, "matches replaced, per kind", chart_id="pii-chart"))
