"""Charset labels: only the WHATWG Encoding Standard's are honoured, and a label the bytes
contradict gives way to detection, counted (issue 20, item 2). Real pages from the demo WARCs."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from winnow.charset import LABELS, decode_html, encoding_for_label
from winnow.stats import StageStats
from winnow.storage import open_binary
from winnow.warc import iter_http_responses

DEMO_WARCS = Path(__file__).resolve().parents[3] / "examples" / "data" / "warc"


@pytest.fixture(scope="module")
def real_page() -> bytes:
    """An English page of the demo crawl, as UTF-8 bytes, its own charset declaration removed."""
    with open_binary(str(DEMO_WARCS / "govuk-BL-20140325121225068-00000.warc.gz")) as fh:
        for r in iter_http_responses(fh, StageStats(), "govuk", 10**7):
            if not r.problem and r.mime == "text/html" and len(r.body) > 20_000:
                text, _ = decode_html(r.body, r.charset)
                return re.sub(r"<meta[^>]*charset[^>]*>", "", text, flags=re.I).encode("utf-8")
    raise AssertionError("no page")


def _with_meta(page: bytes, label: str) -> bytes:
    return b'<meta charset="' + label.encode() + b'">' + page


def test_the_label_table_is_the_standards():
    assert len(LABELS) == 228  # every label of https://encoding.spec.whatwg.org/#names-and-labels
    assert encoding_for_label(" Latin1\t") == "windows-1252"
    assert encoding_for_label("UTF8") == "UTF-8"
    assert encoding_for_label("shift_jis") == "Shift_JIS"
    for label in LABELS:  # every label that names a decoder maps to a codec Python has
        name = encoding_for_label(label)
        assert name is not None


@pytest.mark.parametrize("label", ["punycode", "unicode_escape", "undefined", "cp037", "utf-7", "rot13",
                                   "raw_unicode_escape", "idna", "base64", "zlib", "hex", "x-user-defined",
                                   "replacement", "iso-2022-kr"])
def test_labels_that_are_not_text_encodings_are_ignored(real_page, label):
    # A "\u003c" in the page would become a real tag under unicode_escape; rot13 would scramble it.
    page = real_page.replace(b"<body", b"<p>\\u003cscript\\u003e</p><body", 1)
    for header, body in ((label, page), (None, _with_meta(page, label))):
        stats = StageStats()
        text, enc = decode_html(body, header, stats)
        assert enc == "utf-8" and text == body.decode("utf-8")
        assert stats.counters["charset_fallback"] == 1


def test_undefined_label_decodes_by_detection_instead_of_raising(real_page):
    # Before: Python's "undefined" codec raised UnicodeError and the page was lost.
    text, enc = decode_html(_with_meta(real_page, "undefined"), "undefined")
    assert enc == "utf-8" and "GOV.UK" in text


def test_punycode_label_costs_no_time():
    page = b'<meta charset="punycode">-' + b"a" * 2_000_000
    started = time.perf_counter()
    text, enc = decode_html(page, None)
    assert time.perf_counter() - started < 2  # Python's punycode decoder took minutes here
    assert text.endswith("aaaa")


def test_utf16_declared_on_ascii_html_falls_back(real_page):
    stats = StageStats()
    # A header that says UTF-16 over bytes without a NUL: the bytes contradict it.
    text, enc = decode_html(real_page, "utf-16", stats)
    assert enc == "utf-8" and "GOV.UK" in text and stats.counters["charset_fallback"] == 1
    # In <meta>, UTF-16 means UTF-8 (WHATWG): no fallback needed.
    stats = StageStats()
    text, enc = decode_html(_with_meta(real_page, "utf-16"), None, stats)
    assert enc == "utf-8" and "GOV.UK" in text and not stats.counters["charset_fallback"]


def test_real_utf16_is_still_read(real_page):
    page = real_page.decode("utf-8")
    for header, data in (("utf-16le", page.encode("utf-16-le")), ("utf-16be", page.encode("utf-16-be")),
                         (None, page.encode("utf-16"))):  # the last one by its BOM
        text, _ = decode_html(data, header)
        assert text == page


def test_a_label_whose_decoding_loses_the_markup_falls_back(real_page):
    # ASCII markup labelled as an encoding where "<" is not "<" any more (UTF-16 with NULs
    # but odd-aligned, for instance) is contradicted by the decoded text.
    data = b"\x00" + real_page
    stats = StageStats()
    text, enc = decode_html(data, "utf-16be", stats)
    assert "GOV.UK" in text and stats.counters["charset_fallback"] == 1


def test_honest_legacy_labels_still_work():
    text = "Привет, мир: это страница"
    page = f"<html><head><meta charset='koi8-r'></head><body><p>{text}</p></body></html>".encode("koi8_r")
    stats = StageStats()
    assert text in decode_html(page, None, stats)[0]
    assert text in decode_html(page.replace(b"koi8-r", b"x"), "KOI8-R", stats)[0]
    sjis = "<html><body><p>日本語のページです</p></body></html>".encode("cp932")
    assert decode_html(sjis, "Shift_JIS", stats) == ("<html><body><p>日本語のページです</p></body></html>", "shift_jis")
    assert decode_html(page, "latin1", stats)[1] == "windows-1252"  # the encoding's WHATWG name, lower case
    assert not stats.counters["charset_fallback"]
