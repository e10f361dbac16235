"""winnow's quality decisions and PII spans beside datatrove's, on the shared text.

Corpora (../shared/data, see its README): the text winnow's ingest extracts from every WARC page,
the human-extracted article bodies of html/ground_truth.jsonl, 4,400-character windows of every
book in text/ (hard line wraps undone, as on a web page), and every line of the LID dev set.

Quality: each English rule set on its own, on the same text, datatrove's class with its own spaCy
tokenizer (``language="en"``) against winnow's ``build_rulesets`` (cached tokenizer, hashed Gopher
repetition statistics), same parameters (winnow's defaults: C4 without the terminal-punctuation
rule). A decision is True or datatrove's reason; C4's line-filtered text must be equal too.
winnow claims equality here: every document must agree.

PII: the spans datatrove's PIIFormatter (FineWeb's email and IPv4 masking) replaces against
winnow's ``PiiMasker`` (email, ip). winnow deliberately finds fewer false positives and a little
more; ``explain`` names the deliberate difference behind a span only one side masks, or None.

Used by tests/peer/test_differential.py and benchmarks/differential.py (which puts tests/ on
sys.path for it).
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from winnow.filters import pii as wpii
from winnow.filters.quality import DEFAULT_PARAMS, RULESETS, build_rulesets
from winnow.filters.words import CachedSpacyTokenizer

WINDOW = 4400


def corpora(data: Path) -> Iterator[tuple[str, str]]:
    """(corpus, text) for all the shared text, in a fixed order."""
    from winnow.stats import StageStats
    from winnow.tasks.ingest import IngestConfig, ingest_warc

    for path in sorted((data / "warc").glob("*.warc*")):
        if path.name.endswith((".wat.gz", ".wet.gz")):
            continue
        for doc in ingest_warc(str(path), IngestConfig(), StageStats()):
            yield "warc", doc.text
    for line in open(data / "html" / "ground_truth.jsonl", encoding="utf-8"):
        yield "articles", json.loads(line)["text"]
    for path in sorted((data / "text").glob("*/*.txt.gz")):
        book = re.sub(r"(?<!\n)\n(?!\n)", " ", gzip.open(path, "rt", encoding="utf-8").read())
        for i in range(0, max(1, len(book) - WINDOW), WINDOW):
            yield "prose", book[i : i + WINDOW]
    for line in open(data / "lid" / "dev.jsonl", encoding="utf-8"):
        yield "lid_dev", json.loads(line)["text"]


@cache
def datatrove_rules() -> dict[str, Any]:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    classes = {"gopher_repetition": GopherRepetitionFilter, "gopher_quality": GopherQualityFilter,
               "c4": C4QualityFilter, "fineweb": FineWebQualityFilter}
    return {name: classes[name](**DEFAULT_PARAMS[name], language="en") for name in RULESETS}


@cache
def winnow_rules() -> dict[str, Any]:
    return dict(build_rulesets(list(RULESETS), {}, CachedSpacyTokenizer("en")))


def _decide(rule: Any, text: str) -> tuple[Any, str]:
    from datatrove.data import Document

    doc = Document(text=text, id="")
    result = rule.filter(doc)
    if isinstance(result, tuple):
        result = result[1] if not result[0] else True
    return result, doc.text


def quality_decisions(text: str) -> dict[str, tuple[tuple[Any, str], tuple[Any, str]]]:
    """Per rule set: (datatrove's (decision, text after), winnow's)."""
    ours = winnow_rules()
    return {name: (_decide(rule, text), _decide(ours[name], text)) for name, rule in datatrove_rules().items()}


# --- PII ---------------------------------------------------------------------------------------

Span = tuple[str, int, int]


@cache
def _datatrove_regexes() -> tuple[Any, Any, Callable[[str], bool]]:
    from datatrove.pipeline.formatters.pii import PIIFormatter

    fmt = PIIFormatter()
    return fmt.emails_replacer.regex, fmt.ip_replacer.regex, fmt.ip_replacer.validator


def datatrove_spans(text: str) -> set[Span]:
    """What PIIFormatter replaces, in input offsets: emails on the text, then IPs on the text with
    the emails replaced (its order; the placeholder holds no digit, so no IP is found in it)."""
    email_re, ip_re, ip_ok = _datatrove_regexes()
    spans = {("email", m.start(), m.end()) for m in email_re.finditer(text)}
    masked = email_re.sub(lambda m: "\x00" * (m.end() - m.start()), text)  # same offsets
    spans |= {("ip", m.start(), m.end()) for m in ip_re.finditer(masked) if ip_ok(m.group(0))}
    return spans


_WINNOW = wpii.PiiMasker(kinds=("email", "ip"))


def winnow_spans(text: str) -> set[Span]:
    return {(m.kind, m.start, m.end) for m in _WINNOW.find(text)}


def explain(text: str, span: Span, side: str) -> str | None:
    """The deliberate difference (README, filters/pii.py) behind a span only ``side`` masks."""
    kind, start, end = span
    value = text[start:end]
    if kind == "ip":
        if side == "winnow":
            ip = ipaddress.ip_address(value)
            if ip.version == 6:
                return "ipv6 (FineWeb masks IPv4 only)"
            return "documentation range masked" if not ip.is_global else None
        if all(len(p) == 1 for p in value.split(".")):
            return "single-digit quad kept (OID, section)"
        if text[start - 1 : start] == "." or text[end : end + 2][:1] == "." and text[end + 1 : end + 2].isdigit():
            return "part of a longer dotted run kept"
        if wpii._looks_like_version(text, start, end, value):
            return "version number kept"
        return None
    if side == "winnow":
        before = text[start - 1 : start]
        if before and re.match(r"[^\W_]", before) and not before.isascii():
            return "local part glued to non-ASCII text (FineWeb's \\b misses it)"
        return None
    domain = value.rsplit("@", 1)[1]
    tld = domain.rsplit(".", 1)[-1]
    after = text[end : end + 1]
    local = value.rsplit("@", 1)[0]
    if tld.lower() in wpii._FILE_TLDS or wpii._RETINA_RE.match(domain.split(".", 1)[0]):
        return "file name kept (icon@2x.png)"
    if tld.isdigit() or re.fullmatch(r"[\d.]+", domain):
        return "numeric domain kept (package pin)"
    if len(tld) == 1:
        return "one-letter TLD kept"
    if after in wpii._DOMAIN_GOES_ON or after == ":":
        return "code or remote kept (x@torch.no_grad(), git@host:path)"
    if set(local) - wpii._LOCAL_CHARS:
        return "code-like local part characters kept"
    if len(local) > 64:
        return "local part longer than RFC 5321 allows"
    # winnow masks the same address from a later start (it trims leading punctuation) or the
    # address continues (a longer domain): an overlap, not a miss.
    return None


def pii_differences(text: str) -> tuple[set[Span], set[Span], list[tuple[str, str, str | None]]]:
    """(datatrove's spans, winnow's spans, [(side, value, deliberate reason or None)] per span
    only one side has; spans that overlap one of the other side's count as the same address)."""
    theirs, ours = datatrove_spans(text), winnow_spans(text)
    diffs = []
    for side, mine, other in (("datatrove", theirs, ours), ("winnow", ours, theirs)):
        for s in sorted(mine - other):
            if any(o[1] < s[2] and s[1] < o[2] for o in other):
                reason: str | None = "overlapping span (same address, other bounds)"
            else:
                reason = explain(text, s, side)
            diffs.append((side, text[s[1] : s[2]], reason))
    return theirs, ours, diffs
