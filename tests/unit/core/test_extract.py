"""Charset handling and main-text extraction on real pages from the demo WARCs."""

from __future__ import annotations

from pathlib import Path

from winnow import boilerplate
from winnow.charset import decode_html
from winnow.extract import get_extractor
from winnow.stats import StageStats
from winnow.storage import open_binary
from winnow.warc import iter_http_responses

DEMO_WARCS = Path(__file__).resolve().parents[3] / "examples" / "data" / "warc"


def real_pages(name: str):
    with open_binary(str(DEMO_WARCS / name)) as fh:
        return [r for r in iter_http_responses(fh, StageStats(), name, 10**7)
                if not r.problem and r.mime == "text/html" and r.status == 200]


def test_mislabelled_charsets():
    text = "Crème brûlée — “quoted” ünïcödé"
    utf8 = f"<html><body><p>{text}</p></body></html>".encode()
    # UTF-8 bytes served as ISO-8859-1 (very common): must not turn into mojibake.
    assert decode_html(utf8, "iso-8859-1")[0].count("Crème") == 1
    # windows-1252 bytes served as UTF-8: the declared charset fails, detection takes over.
    cp = f"<html><body><p>{text}</p></body></html>".encode("cp1252")
    decoded, enc = decode_html(cp, "utf-8")
    assert "Crème brûlée" in decoded and "\ufffd" not in decoded
    # Charset only in <meta>, no HTTP header.
    meta = ('<html><head><meta charset="windows-1251"></head><body>Привет, мир</body></html>').encode("cp1251")
    assert "Привет, мир" in decode_html(meta, None)[0]
    # Unknown charset name in the header: falls through to detection, no exception.
    assert "Crème" in decode_html(utf8, "x-no-such-charset")[0]


def test_real_gb_and_cyrillic_pages_decode_without_replacement_chars():
    pages = real_pages("cc-main-2020-34-sample.warc.gz")
    assert len(pages) == 16
    for page in pages:
        html, _ = decode_html(page.body, page.charset)
        assert html.count("\ufffd") <= 2, page.url


def test_extractors_agree_on_the_main_text_of_a_real_page():
    page = next(p for p in real_pages("govuk-BL-20140325121225068-00000.warc.gz") if len(p.body) > 20_000)
    html, _ = decode_html(page.body, page.charset)
    fast = get_extractor("resiliparse")(html)
    raw = get_extractor("resiliparse-raw")(html)
    slow = get_extractor("trafilatura")(html)
    assert fast and slow
    assert len(fast) <= len(raw)
    shared = set(fast.split()) & set(slow.split())
    assert len(shared) >= 0.5 * min(len(set(fast.split())), len(set(slow.split())))


def test_extraction_of_empty_and_broken_html():
    ex = get_extractor("resiliparse")
    assert ex("") == ""
    assert ex("<html><body></body></html>") == ""
    assert "unclosed" in ex("<html><body><div><p>unclosed tags everywhere, still a sentence here.")


def test_boilerplate_cleanup_keeps_prose_and_drops_edges():
    text = "\n".join([
        "Breaking News",
        "By Jane Doe | Updated 12:00",
        "Advertisement",
        "The council voted on Tuesday to expand the library, a decision that took two years.",
        "Funding",
        "Most of the money comes from a state grant, officials said.",
        "Photo: John Smith / AP",
        "The new wing opens next spring.",
        "Related Stories",
        "Another story that is only linked here and has a full sentence in it.",
        "Sign up",
    ])
    out = boilerplate.clean(text)
    assert out.splitlines() == [
        "The council voted on Tuesday to expand the library, a decision that took two years.",
        "Funding",
        "Most of the money comes from a state grant, officials said.",
        "The new wing opens next spring.",
    ]
    # Text with no sentence at all is left alone (quality filters decide about it).
    assert boilerplate.clean("Home\nProducts\nContact") == "Home\nProducts\nContact"
