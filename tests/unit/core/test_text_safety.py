"""Values from data, made safe where they are shown: terminals and logs, Markdown."""

from __future__ import annotations

import logging

from markdown_it import MarkdownIt

from winnow.stats import StageStats, funnel_markdown
from winnow.text_safety import EscapeControls, markdown, markdown_block, markdown_code, printable

PAYLOADS = ["<img src=x onerror=alert(1)>", "a|b", "`code`", "*em* _em_", "[link](http://e.invalid)", "&lt;",
            "# heading", "~~gone~~", "line\nbreak", "\x1b[2J\x1b]0;title\x07"]


def test_printable_escapes_terminal_controls_and_keeps_text():
    assert printable("http://e.invalid/\x1b[2J\x1b]0;owned\x07x") == "http://e.invalid/\\x1b[2J\\x1b]0;owned\\x07x"
    assert printable("two\nlines\ttab") == "two\nlines\ttab"
    assert printable("two\nlines", newlines=False) == "two\\x0alines"
    assert printable("\u202eevil\x9b") == "\\u202eevil\\x9b"
    assert printable("naïve 日本語 🙂") == "naïve 日本語 🙂"


def _rendered_cells(md: str) -> list[list[str]]:
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    rows, row = [], None
    for t in tokens:
        if t.type == "tr_open":
            row = []
        elif t.type == "inline" and row is not None:
            row.append(t.content)
        elif t.type == "tr_close":
            rows.append(row)
            row = None
    return rows


def test_markdown_values_render_as_their_own_text():
    """Each payload in a table cell stays one cell, makes no HTML and no link or emphasis,
    rendered by a real CommonMark + GFM-table parser."""
    md = MarkdownIt("commonmark").enable("table")
    for payload in PAYLOADS:
        table = f"| a | b |\n|---|---|\n| {markdown(payload)} | x |\n"
        html = md.render(table)
        assert "<img" not in html and "<a " not in html and "<em>" not in html and "<code>" not in html, payload
        assert "<h1>" not in html and "<s>" not in html
        assert len(_rendered_cells(table)[1]) == 2, payload
        assert md.renderInline(markdown(payload)).count("<") == 0, payload
    assert markdown("truncated_record") == "truncated_record"  # intraword underscores stay readable
    assert md.renderInline(markdown_code("a`b")) == "<code>a`b</code>"
    block = markdown_block('{"x": "```\\n<img>"}', "json")
    assert md.render(block).count("<pre>") == 1 and "<img>" not in md.render(block)


def test_funnel_markdown_escapes_reasons_from_data():
    s = StageStats(docs_in=3, docs_out=1, bytes_in=30, bytes_out=10)
    s.dropped_docs["decontam:<img src=x onerror=alert(1)>|x"] = 2
    s.dropped_bytes["decontam:<img src=x onerror=alert(1)>|x"] = 20
    text = funnel_markdown({"decontam": s})
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;|x" in html
    assert "2 documents" in text


def test_log_records_reach_handlers_without_controls(caplog):
    logger = logging.getLogger("winnow-test-escape")
    logger.addFilter(EscapeControls())
    with caplog.at_level(logging.INFO, logger="winnow-test-escape"):
        logger.warning("dropped %s (%d bytes)", "http://e.invalid/\x1b[2J", 12)
    assert caplog.records[0].getMessage() == "dropped http://e.invalid/\\x1b[2J (12 bytes)"
