"""Line-level boilerplate cleanup for text from a main-content extractor.

resiliparse's main-content mode finds the article region well (recall ~0.99 on the article
benchmark) but keeps what sits inside that region: title/date/byline lines above the body,
"Read more" teasers and widgets below it, ad labels, photo credits, cookie/policy notices.
Two generic rules remove most of it without any per-site knowledge:

1. drop lines that are pure UI labels, credits or policy notices (C4's policy-line rule);
2. trim the text to the span from the first to the last *prose* line (a line of several
   words that ends like a sentence, or any long line), cutting the tail at an
   end-of-article marker ("Related", "Read more", ...) once most of the prose is behind us.
"""

from __future__ import annotations

import re

_UI_LABEL = re.compile(
    r"^(advertisement|advertising|anzeige|werbung|publicidad|publicité|pubblicità|publicidade|iklan|reklama"
    r"|sponsored( content| links)?|close|read more|read next|see more|show more|load more"
    r"|share( this( article| story| post)?)?|share on \w+|sharing is caring!?|subscribe( now)?|sign up"
    r"|comments?|\d+ comments?|leave a (comment|reply)|related( articles| stories| posts)?|tweet|print|e-?mail"
    r"|caption|photo|image|by|skip to (main )?content|back to top|follow us( on \w+)?)[\s:.!]*$",
    re.I,
)
# C4 removes lines mentioning these; we only do so for short lines (a notice, not a paragraph).
_POLICY = ("terms of use", "terms of service", "privacy policy", "cookie policy", "uses cookies",
           "use of cookies", "use cookies", "all rights reserved")
_CREDIT = re.compile(r"^(\(?(photo|image|picture|foto|credit|source|bild)s?( credit)?\s*[:/©])|^©|^copyright\b", re.I)
_END_MARKER = re.compile(
    r"^(related( articles| stories| posts| news| content)?|more (from|on) .{0,40}"
    r"|you (may|might) also like.*|recommended( for you)?"
    r"|tags?:?.*|categories|follow us.*|subscribe.*|newsletter"
    r"|most (read|popular).*|trending.*|latest( news| stories)?|about the author|written by.*"
    r"|previous (post|article).*|next (post|article).*)[\s:.!]*$",
    re.I,
)
_SENTENCE_END = tuple(".!?。！？\"”»)…:;'’")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_BLANK_RUNS = re.compile(r"\n{3,}")

MIN_PROSE_WORDS = 5
LONG_LINE_WORDS = 25


def _is_prose(line: str) -> bool:
    s = line.strip()
    if not s:
        return False
    words = len(s.split())
    # CJK text has no spaces: count characters, roughly two per word.
    cjk = len(_CJK.findall(s)) if words < LONG_LINE_WORDS else 0
    if words >= LONG_LINE_WORDS or cjk >= 4 * LONG_LINE_WORDS:
        return True
    return (words >= MIN_PROSE_WORDS or cjk >= 2 * MIN_PROSE_WORDS) and s.endswith(_SENTENCE_END)


def _is_boilerplate(line: str) -> bool:
    s = line.strip()
    return bool(s) and bool(
        _UI_LABEL.match(s) or (len(s) < 200 and (_CREDIT.match(s) or any(p in s.lower() for p in _POLICY)))
    )


def drop_boilerplate_lines(text: str) -> str:
    """Remove UI labels, photo credits and policy notices: lines no article body contains."""
    kept = [line for line in text.split("\n") if not _is_boilerplate(line)]
    return _BLANK_RUNS.sub("\n\n", "\n".join(kept)).strip()


def trim_to_prose(text: str) -> str:
    """Keep the span from the first to the last sentence-like line, cut at an end-of-article
    marker: the main-content region of a page still holds teasers around the body."""
    lines = text.split("\n")
    # A copyright or cookie notice reads like a sentence but never anchors the article.
    prose = [i for i, ln in enumerate(lines) if _is_prose(ln) and not _is_boilerplate(ln)]
    if not prose:
        return text  # nothing sentence-like: leave the decision to the quality filters
    lo, hi = prose[0], prose[-1]
    prose_set = set(prose)
    total = sum(len(lines[i]) for i in prose)
    seen = 0
    for i in range(lo, hi + 1):
        if i in prose_set:
            seen += len(lines[i])
        elif seen >= 0.5 * total and _END_MARKER.match(lines[i].strip()):
            hi = i - 1
            while hi > lo and not _is_prose(lines[hi]):
                hi -= 1
            break
    return "\n".join(lines[lo : hi + 1]).strip()


def clean(text: str) -> str:
    # Trim first: the labels that drop_boilerplate_lines removes ("Read more", "Related")
    # are the end-of-article markers that trim_to_prose cuts at.
    """Both rules, in order: what the default extractor applies after resiliparse."""
    return drop_boilerplate_lines(trim_to_prose(text))
