"""HTML -> main text. Default: resiliparse main-content extraction plus line cleanup;
option: trafilatura with the settings datatrove uses for FineWeb."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.html import HTMLTree

from winnow import boilerplate
from winnow.charset import decode_html

_BLANK_RUNS = re.compile(r"\n{3,}")
_SPACE_RUNS = re.compile(r"[ \t\u00a0]+")

# Inside the main-content region these are image captions and photo credits, never body text.
_SKIP_SELECTORS = ["figure", "[class*=caption]", "[class*=credit]"]


def _normalise(text: str) -> str:
    lines = (_SPACE_RUNS.sub(" ", ln).strip() for ln in text.splitlines())
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def extract_resiliparse(html: str, cleanup: bool = True) -> str:
    """resiliparse main-content extraction; with ``cleanup``, boilerplate lines removed
    (see :mod:`winnow.boilerplate`)."""
    text = _normalise(
        extract_plain_text(
            HTMLTree.parse(html),
            main_content=True,
            alt_texts=False,
            links=False,
            list_bullets=False,
            form_fields=False,
            noscript=False,
            comments=False,
            skip_elements=_SKIP_SELECTORS,
        )
    )
    return boilerplate.clean(text) if cleanup else text


def extract_trafilatura(html: str) -> str:
    """trafilatura with the options datatrove uses for FineWeb, as a pure function of the page.

    ``deduplicate=True`` drops text segments seen more than ``max_repetitions`` times in a
    process-wide LRU cache, so a page's text depended on which pages the same process had
    extracted before (shard order, runner, worker count). The cache is emptied before each page
    (segments repeated within the page are still removed). The cache is per process and not
    thread-safe: ingest calls this in a sandbox worker (:mod:`winnow.sandbox`) that extracts one
    page at a time, so no lock serialises the threads of a run.
    """
    import trafilatura  # noqa: PLC0415 - heavy (lxml, htmldate, courlan); only for this extractor
    from trafilatura.deduplication import LRU_TEST  # noqa: PLC0415 - as above

    LRU_TEST.clear()
    text = trafilatura.extract(html, favor_precision=True, include_comments=False, deduplicate=True)
    return text or ""


EXTRACTORS: dict[str, Callable[[str], str]] = {
    "resiliparse": extract_resiliparse,
    "resiliparse-raw": partial(extract_resiliparse, cleanup=False),
    "trafilatura": extract_trafilatura,
}


def get_extractor(name: str) -> Callable[[str], str]:
    """The extractor a config names; an unknown name is an error naming the choices."""
    try:
        return EXTRACTORS[name]
    except KeyError:
        raise ValueError(f"unknown extractor {name!r}; choose one of {sorted(EXTRACTORS)}") from None


@dataclass
class _Counts:
    counters: dict[str, int] = field(default_factory=dict)


def extract_page(body: bytes, http_charset: str | None, extractor: str) -> tuple[str, str, dict[str, int]]:
    """Page bytes -> (main text, encoding used, counters of the decoding): charset decoding and
    extraction, the per-page work ingest runs in its sandbox worker (both can take minutes on
    a hostile page)."""
    counts = _Counts()
    html, encoding = decode_html(body, http_charset, counts)
    return get_extractor(extractor)(html), encoding, counts.counters
