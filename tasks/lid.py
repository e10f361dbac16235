"""Language-ID stage: annotate each document with its top language and score; keep the
languages asked for, above a global or per-language score threshold (FineWeb-2 style)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from filters.lid import FastTextLID, load_thresholds
from winnow.config import LidConfig
from winnow.document import Document
from winnow.stats import StageStats

STAGE = "lid"


def effective_thresholds(cfg: LidConfig) -> dict[str, float]:
    """Per-language thresholds: explicit ones win over the calibrated table."""
    table = load_thresholds() if cfg.calibrated_thresholds else {}
    return {**table, **cfg.thresholds}


def build_lid(cfg: LidConfig) -> FastTextLID:
    return FastTextLID(cfg.model_path, cfg.max_chars)


def check_lid(cfg: LidConfig) -> FastTextLID:
    """Load the model and check the keep-list against its labels: fail before any work."""
    lid = build_lid(cfg)
    unknown = sorted(set(cfg.keep) - lid.labels)
    if unknown:
        raise ValueError(f"lid.keep has languages the model does not know: {unknown} "
                         f"(model {lid.model_path} has {len(lid.labels)} labels, e.g. {sorted(lid.labels)[:8]})")
    return lid


def language_id(docs: Iterable[Document], cfg: LidConfig, stats: StageStats,
                lid: FastTextLID | None = None) -> Iterator[Document]:
    lid = lid or build_lid(cfg)
    keep = frozenset(cfg.keep)
    per_lang = effective_thresholds(cfg)
    default = cfg.threshold
    for doc in docs:
        n = doc.n_bytes
        stats.take_in(n)
        lang, score = lid.predict(doc.text)
        doc.annotate(STAGE, "lang", lang)
        doc.annotate(STAGE, "score", round(score, 4))
        if lang == "und":
            stats.drop("lid_no_text", n)
            continue
        stats.counters[f"lang:{lang}"] += 1
        if keep and lang not in keep:
            stats.drop("lid_language", n)
            continue
        if score < per_lang.get(lang, default):
            stats.drop("lid_low_score", n)
            continue
        stats.keep(n)
        yield doc
