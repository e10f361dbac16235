"""Heuristic quality rule sets, reusing datatrove's Gopher, C4 and FineWeb implementations.

The rules are datatrove's own classes; winnow only hands them a cached spaCy tokenizer
(:mod:`winnow.filters.words`) so one document is tokenized once for all rule sets, and computes the
Gopher repetition statistics on hashes (:mod:`winnow.filters.gopher_fast`, identical decisions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

from datatrove.data import Document as DTDocument
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)

from winnow.filters.gopher_fast import FastGopherRepetitionFilter

# The rule sets, defined here only, in FineWeb's order (the quality stage's default): the stage's
# config and the FineWeb-2 settings (winnow.filters.multilingual) take their names from these.
RuleSet = Literal["gopher_repetition", "gopher_quality", "c4", "fineweb"]
RULESETS: tuple[RuleSet, ...] = get_args(RuleSet)

# datatrove's implementation of each rule set (their signatures define the parameters).
DATATROVE_CLASSES: dict[str, type] = {
    "gopher_repetition": GopherRepetitionFilter,
    "gopher_quality": GopherQualityFilter,
    "c4": C4QualityFilter,
    "fineweb": FineWebQualityFilter,
}

# FineWeb's settings: C4 without the terminal-punctuation line filter (it drops too much).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {name: {} for name in RULESETS} | {
    "c4": {"filter_no_terminal_punct": False}}


def _classes() -> dict[str, type]:
    # datatrove's rules, with its repetition statistics computed on hashes (same decisions).
    return DATATROVE_CLASSES | {"gopher_repetition": FastGopherRepetitionFilter}


def build_rulesets(names: Sequence[str], params: dict[str, dict[str, Any]], tokenizer) -> list[tuple[str, Any]]:
    """Instantiate datatrove filters; a bad parameter raises ValueError naming the rule set."""
    classes = _classes()
    built = []
    for name in names:
        kwargs = {**DEFAULT_PARAMS[name], **params.get(name, {})}
        if "language" in kwargs or "exclusion_writer" in kwargs:
            raise ValueError(f"quality.{name}: 'language'/'exclusion_writer' are set by winnow "
                             "(use quality.language and quality.write_rejected)")
        try:
            built.append((name, classes[name](**kwargs, language=tokenizer)))
        except TypeError as exc:
            raise ValueError(f"quality.{name}: {exc}") from None
    return built


def apply_rules(rulesets: list[tuple[str, Any]], text: str, stop_at_first: bool) -> tuple[str, list[str]]:
    """Run the rule sets on ``text``; return (possibly line-filtered text, failed reasons).

    C4's rule set removes lines (javascript notices, policy lines, ...) as datatrove's does,
    so the returned text is what later rule sets saw.
    """
    doc = DTDocument(text=text, id="")
    failed: list[str] = []
    for name, rule in rulesets:
        result = rule.filter(doc)
        if result is True or result is None:
            continue
        if isinstance(result, tuple):
            ok, reason = result[0], result[1] if len(result) > 1 else name
        else:
            ok, reason = bool(result), name
        if not ok:
            failed.append(f"{name}:{reason}")
            if stop_at_first:
                break
    return doc.text, failed
