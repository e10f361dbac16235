"""Quality stage: heuristic rule sets (Gopher repetition, Gopher quality, C4, FineWeb) and an
optional fastText quality classifier. ``filter`` mode drops, ``annotate`` mode records."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache

from filters.quality import apply_rules, build_rulesets
from filters.quality_classifier import QualityClassifier
from filters.words import CachedSpacyTokenizer
from winnow.config import QualityConfig
from winnow.document import Document
from winnow.stats import StageStats

STAGE = "quality"
Reject = Callable[[Document, str], None]


@lru_cache(maxsize=4)
def _tokenizer(language: str) -> CachedSpacyTokenizer:
    # One per process and language: the chunk cache is what makes it fast.
    return CachedSpacyTokenizer(language)


def check_quality(cfg: QualityConfig) -> None:
    build_rulesets(cfg.rules, cfg.params, _tokenizer(cfg.language))
    if cfg.classifier.enabled:
        QualityClassifier(cfg.classifier.model_path)


def quality(docs: Iterable[Document], cfg: QualityConfig, stats: StageStats,
            on_reject: Reject | None = None) -> Iterator[Document]:
    rulesets = build_rulesets(cfg.rules, cfg.params, _tokenizer(cfg.language))
    filtering = cfg.mode == "filter"
    classifier = QualityClassifier(cfg.classifier.model_path) if cfg.classifier.enabled else None
    out = _rules(docs, cfg, stats, rulesets, filtering, on_reject)
    if classifier is not None:
        out = _classify(out, cfg, stats, classifier, filtering, on_reject)
    yield from _count_out(out, stats)


def _rules(docs, cfg: QualityConfig, stats: StageStats, rulesets, filtering: bool,
           on_reject: Reject | None) -> Iterator[Document]:
    for doc in docs:
        n = doc.n_bytes
        stats.take_in(n)
        if not doc.text.strip():
            _reject(doc, "empty_text", n, stats, on_reject)
            continue
        if len(doc.text) > cfg.max_chars:
            # Far past every rule's word limit; not worth tokenizing.
            _reject(doc, "too_long", n, stats, on_reject)
            continue
        text, failed = apply_rules(rulesets, doc.text, stop_at_first=filtering)
        doc.text = text
        if filtering and failed:
            _reject(doc, failed[0], n, stats, on_reject)
            continue
        if rulesets:
            doc.annotate(STAGE, "failed", failed)
            for reason in failed:
                stats.counters[f"would_drop:{reason}"] += 1
        yield doc


def _classify(docs: Iterable[Document], cfg: QualityConfig, stats: StageStats, classifier: QualityClassifier,
              filtering: bool, on_reject: Reject | None) -> Iterator[Document]:
    ccfg = cfg.classifier
    if ccfg.top_k_percent is None:
        for doc in docs:
            score = classifier.score(doc.text)
            doc.annotate(STAGE, "classifier_score", round(score, 4))
            if score < ccfg.threshold and filtering:
                _reject(doc, "classifier:below_threshold", doc.n_bytes, stats, on_reject)
                continue
            yield doc
        return
    # top-k percent of this shard: scores are only comparable once the shard is scored.
    scored = []
    for doc in docs:
        score = classifier.score(doc.text)
        doc.annotate(STAGE, "classifier_score", round(score, 4))
        scored.append((score, doc))
    keep_n = round(len(scored) * ccfg.top_k_percent / 100)
    ranked = sorted(range(len(scored)), key=lambda i: -scored[i][0])
    kept = set(ranked[:keep_n])
    for i, (_, doc) in enumerate(scored):
        if i in kept or not filtering:
            yield doc
        else:
            _reject(doc, "classifier:below_top_k", doc.n_bytes, stats, on_reject)


def _reject(doc: Document, reason: str, n_bytes: int, stats: StageStats, on_reject: Reject | None) -> None:
    stats.drop(reason, n_bytes)
    if on_reject is not None:
        doc.annotate(STAGE, "reason", reason)
        on_reject(doc, reason)


def _count_out(docs: Iterable[Document], stats: StageStats) -> Iterator[Document]:
    for doc in docs:
        stats.keep(doc.n_bytes)
        yield doc
