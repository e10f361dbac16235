"""Text from users and crawls, made safe for where it is shown: a terminal or log (control
characters escaped), Markdown (markup characters escaped), rich (printed literally).

A URL with ``\\x1b[2J`` clears a CI log's screen, a benchmark named ``<img onerror=...>`` is
HTML in the Prefect UI, a path with ``[bold]`` is rich markup: every value that comes from
data goes through one of these on its way out.
"""

from __future__ import annotations

import logging
import re
from typing import Any

# C0 controls except newline and tab, DEL, C1 controls, and the Unicode line/paragraph
# separators and bidi overrides that reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_NEWLINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# What CommonMark/GFM gives a meaning to inside a table cell or a line of text (`(`, `-`, `.`
# only mean something after an escaped `[` or at the start of a line, where values never are;
# an underscore between letters or digits never starts emphasis: `truncated_record` stays).
_MARKDOWN = re.compile(r"([\\`*\[\]<>|~#]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")


def _escape_char(m: re.Match[str]) -> str:
    c = m.group(0)
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def printable(value: object, newlines: bool = True) -> str:
    """``value`` as text with control characters written as ``\\x1b``-style escapes; newlines
    kept where a message has several lines (``newlines=False``: escaped too)."""
    return (_CONTROL if newlines else _CONTROL_OR_NEWLINE).sub(_escape_char, str(value))


def markdown(value: object) -> str:
    """``value`` as literal Markdown text: markup characters backslash-escaped, ``&`` as
    ``&amp;`` (HTML entities are markup too), control characters and newlines escaped (a
    newline would end a table row)."""
    text = printable(value, newlines=False).replace("&", "&amp;")
    return _MARKDOWN.sub(r"\\\1", text)


def markdown_code(value: object) -> str:
    """``value`` inside an inline code span: a backtick fence longer than any run in the text
    (``|`` escaped too: a GFM table splits cells on it even inside a code span)."""
    text = printable(value, newlines=False).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def markdown_block(text: str, info: str = "") -> str:
    """``text`` as a fenced code block whose fence no line of the text can close."""
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{info}\n{printable(text)}\n{fence}\n"


class EscapeControls(logging.Filter):
    """A logging filter that escapes control characters in a record's message and arguments,
    so a crawled URL in a log line cannot move the cursor, retitle the terminal or clear it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = printable(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_escaped(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _escaped(v) for k, v in record.args.items()}
        return True


def _escaped(arg: Any) -> Any:
    # Numbers keep their type (a %d or %.1f format needs one); everything else is shown as text.
    return arg if isinstance(arg, (int, float)) or arg is None else printable(arg)


def escape_log(logger: logging.Logger | logging.Handler) -> None:
    """Install :class:`EscapeControls` on a logger or handler, once."""
    if not any(isinstance(f, EscapeControls) for f in logger.filters):
        logger.addFilter(EscapeControls())
