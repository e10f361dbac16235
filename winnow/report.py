"""`winnow report OUTPUT`: one self-contained HTML page (inline SVG, no scripts, no network)
built from a run's summary.json: the funnel per stage and per rule and document lengths
before/after filtering, then each stage's own section (languages, duplicate clusters, packing,
rephrasing, ...: ``Stage.report_section``, drawn with the helpers here)."""

from __future__ import annotations

import datetime as _dt
import html
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from winnow.stats import StageStats, funnel_rows
from winnow.storage import StorageOptions, join, read_bytes, write_bytes_atomic

# (stage name, kind, section builder) as the registry gives them; the report module itself
# knows no stage.
SectionBuilder = Callable[[StageStats | None, Mapping[str, Any]], str | None]

REPORT_NAME = "report.html"
_COLORS = {"in": "#9aa7b8", "out": "#2c7be5", "drop": "#e5533c", "bar": "#2c7be5"}


class ReportError(ValueError):
    """The folder is not a finished winnow run (no summary.json)."""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def bar_chart(items: list[tuple[str, float]], title: str, unit: str = "", color: str = _COLORS["bar"],
              max_items: int = 25, chart_id: str = "") -> str:
    """Horizontal bars, one per (label, value), largest first as given."""
    items = items[:max_items]
    if not items:
        return f'<p class="empty" id="{_esc(chart_id)}">{_esc(title)}: nothing recorded in this run.</p>'
    width, label_w, row_h = 760, 300, 22
    top = max(v for _, v in items) or 1
    height = row_h * len(items) + 34
    parts = [f'<svg class="chart" id="{_esc(chart_id)}" role="img" aria-label="{_esc(title)}" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="0" y="16" class="title">{_esc(title)}</text>']
    for k, (label, value) in enumerate(items):
        y = 28 + k * row_h
        w = max(1.0, (width - label_w - 90) * value / top)
        shown = label if len(label) <= 44 else label[:43] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{_esc(shown)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{color}">'
                     f'<title>{_esc(label)}: {value:,.0f}{unit}</title></rect>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 14}">{value:,.0f}{unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(series: dict[str, dict[int, int]], title: str, chart_id: str) -> str:
    """Grouped bars over power-of-two byte buckets, one color per series."""
    buckets = sorted({b for s in series.values() for b in s})
    if not buckets:
        return f'<p class="empty" id="{_esc(chart_id)}">{_esc(title)}: nothing recorded in this run.</p>'
    buckets = list(range(buckets[0], buckets[-1] + 1))
    width, height, left, bottom = 760, 260, 60, 40
    top = max(v for s in series.values() for v in s.values()) or 1
    slot = (width - left - 10) / len(buckets)
    bar_w = slot / (len(series) + 0.5)
    colors = [_COLORS["in"], _COLORS["out"], _COLORS["drop"]]
    parts = [f'<svg class="chart" id="{_esc(chart_id)}" role="img" aria-label="{_esc(title)}" '
             f'viewBox="0 0 {width} {height + 20}" width="{width}" height="{height + 20}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="0" y="16" class="title">{_esc(title)}</text>']
    plot_h = height - bottom - 30
    for k, (name, counts) in enumerate(series.items()):
        parts.append(f'<rect x="{left + 160 * k}" y="{height + 6}" width="12" height="12" fill="{colors[k % 3]}"/>'
                     f'<text x="{left + 160 * k + 16}" y="{height + 16}">{_esc(name)}</text>')
        for j, b in enumerate(buckets):
            v = counts.get(b, 0)
            h = plot_h * v / top
            x = left + j * slot + k * bar_w
            parts.append(f'<rect x="{x:.1f}" y="{30 + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{colors[k % 3]}"><title>{_esc(name)} {_bucket_label(b)}: {v:,}</title></rect>')
    for j, b in enumerate(buckets):
        if len(buckets) <= 16 or j % 2 == 0:
            parts.append(f'<text x="{left + j * slot + slot / 2:.1f}" y="{height - bottom + 24}" text-anchor="middle" '
                         f'class="tick">{_bucket_label(b)}</text>')
    parts.append(f'<text x="{left - 6}" y="36" text-anchor="end" class="tick">{top:,}</text>'
                 f'<line x1="{left}" y1="{30 + plot_h}" x2="{width - 10}" y2="{30 + plot_h}" stroke="#888"/>')
    parts.append("</svg>")
    return "".join(parts)


def _bucket_label(b: int) -> str:
    """Bucket b holds sizes in [2^(b-1), 2^b) bytes: label it by its lower bound."""
    n = 0 if b == 0 else 2 ** (b - 1)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:g}{unit}"
        n /= 1024
    return f"{n:g}TB"


def _prefixed(counters: dict[str, int], prefix: str) -> dict[str, int]:
    return {k[len(prefix):]: v for k, v in counters.items() if k.startswith(prefix)}


def counter_items(stats: StageStats | None, prefix: str) -> list[tuple[str, float]]:
    """A stage's counters ``PREFIX:NAME`` as (NAME, count), largest first: what most stage
    sections chart (languages, PII kinds, benchmarks)."""
    counters = stats.counters if stats is not None else {}
    return sorted(((k[len(prefix):], float(v)) for k, v in counters.items() if k.startswith(prefix)),
                  key=lambda kv: -kv[1])


def section(section_id: str, title: str, body: str) -> str:
    """One titled section of the report page; stages build theirs with it."""
    return f'<section id="{_esc(section_id)}"><h2>{_esc(title)}</h2>{body}</section>'


def table(rows: Sequence[Mapping[str, Any]], table_id: str) -> str:
    """An HTML table of rows (dicts with the same keys)."""
    if not rows:
        return ""
    cols = list(rows[0])
    head = "".join(f"<th>{_esc(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_esc(r[c])}</td>" for c in cols) + "</tr>" for r in rows)
    return f'<table id="{_esc(table_id)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def build_report(summary: dict[str, Any], stages: Sequence[tuple[str, str, SectionBuilder]] = ()) -> str:
    """The page for a run's summary; ``stages`` are (name, kind, report_section) in pipeline order."""
    stats = {name: StageStats.from_dict(d) for name, d in summary.get("stages", {}).items()}
    sections: list[str] = []

    # Funnel: documents into and out of each stage, then every removal reason.
    funnel: list[tuple[str, float]] = []
    for name, s in stats.items():
        funnel += [(f"{name}: in", s.docs_in), (f"{name}: out", s.docs_out)]
    sections.append(section("funnel", "Funnel",
                            bar_chart(funnel, "documents into / out of each stage", chart_id="funnel-chart",
                                      max_items=40) + table(funnel_rows(stats), "funnel-table")))
    drops = sorted(((f"{name}: {reason}", float(n)) for name, s in stats.items()
                    for reason, n in s.dropped_docs.items()), key=lambda kv: -kv[1])
    sections.append(section("rules", "Why documents were removed",
                            bar_chart(drops, "documents removed, per stage and rule", color=_COLORS["drop"],
                                      chart_id="rules-chart", max_items=40)))
    for name, kind, build in stages:
        if kind != "corpus":
            part = build(stats.get(name), summary)
            if part:
                sections.append(part)

    first = next(iter(stats.values()), None)
    doc_stages = [name for name, kind, _ in stages if kind == "document" and name in stats]
    filtered = stats[doc_stages[-1]] if doc_stages else None
    series: dict[str, dict[int, int]] = {}
    if first is not None:
        series["before filtering"] = {int(k): v for k, v in _prefixed(dict(first.counters), "len_out:").items()}
    if filtered is not None:
        series["after filtering"] = {int(k): v for k, v in _prefixed(dict(filtered.counters), "len_out:").items()}
    sections.append(section("lengths", "Document lengths",
                            histogram(series, "documents per text length (UTF-8 bytes, power-of-two buckets)",
                                      "lengths-chart")))
    for name, kind, build in stages:
        if kind == "corpus":
            part = build(stats.get(name), summary)
            if part:
                sections.append(part)

    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    failed = summary.get("shards_failed", 0)
    header = (f'<p id="overview">Output <code>{_esc(summary.get("output", ""))}</code>: '
              f'<b>{summary.get("rows", 0):,}</b> documents from {summary.get("shards", 0):,} shards '
              f'({summary.get("shards_skipped_as_done", 0):,} already done, '
              f'<span class="{"bad" if failed else ""}">{failed:,} failed</span>). Report written {when}.</p>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>winnow run report</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 820px; color: #222; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }}
svg.chart text {{ font: 12px system-ui, sans-serif; fill: #222; }} svg.chart text.title {{ font-weight: 600; }}
svg.chart text.tick {{ font-size: 10px; fill: #555; }}
table {{ border-collapse: collapse; margin-top: 10px; font-size: 12px; }}
td, th {{ border: 1px solid #ddd; padding: 2px 6px; text-align: right; }} td:nth-child(-n+2) {{ text-align: left; }}
.bad {{ color: #c0392b; font-weight: 600; }} .empty {{ color: #777; }}
</style></head><body>
<h1>winnow run report</h1>
{header}
{''.join(sections)}
</body></html>
"""


def write_report(output: str, storage_options: StorageOptions = None,
                 stages: Sequence[tuple[str, str, SectionBuilder]] = ()) -> str:
    """Build OUTPUT/report.html from OUTPUT/summary.json; returns its path."""
    try:
        summary = json.loads(read_bytes(join(output, "summary.json"), storage_options))
    except FileNotFoundError:
        raise ReportError(f"{output}: no summary.json; is this the output folder of a finished winnow run?") from None
    path = join(output, REPORT_NAME)
    write_bytes_atomic(path, build_report(summary, stages).encode("utf-8"), storage_options)
    return path
