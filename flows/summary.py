"""The end of a run: summary.json, summary.md, the run report, the Prefect artifacts, and the
funnel on the terminal."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from rich.console import Console
from rich.table import Table
from rich.text import Text

from winnow.config import PipelineConfig
from winnow.report import write_report
from winnow.stats import StageStats, funnel_markdown, funnel_rows, plural
from winnow.storage import join, write_bytes_atomic
from winnow.tasks.pipeline import discover
from winnow.text_safety import markdown_code, printable


def report_sections() -> list[tuple[str, str, Any]]:
    """(name, kind, report_section) of every registered stage, for the run report."""
    return [(s.name, s.kind, s.report_section) for s in discover()]


def run_markdown(output: str, summary: Mapping[str, Any], stats: dict[str, StageStats]) -> str:
    """summary.md: the shards, the funnel, then each stage's own paragraph."""
    markdown = (
        f"# winnow curate\n\nOutput: {markdown_code(output)}  \nShards: {summary['shards']} "
        f"({summary['shards_skipped_as_done']} already done, {summary['shards_failed']} failed)  \n"
        f"Documents written: {summary['rows']:,}\n\n" + funnel_markdown(stats)
    )
    return markdown + "".join(f"\n{part}\n" for part in (s.summary_markdown(summary) for s in discover()) if part)


def write_summary(cfg: PipelineConfig, summary: dict[str, Any], stats: dict[str, StageStats],
                   failures: list[str]) -> None:
    so = cfg.storage_options
    logger = get_run_logger()
    markdown = run_markdown(cfg.output, summary, stats)
    try:
        write_bytes_atomic(join(cfg.output, "summary.json"), json.dumps(summary, indent=1).encode(), so)
        write_bytes_atomic(join(cfg.output, "summary.md"), markdown.encode(), so)
    except OSError as exc:
        # A full disk or a lost bucket: say so, and still say which shards failed.
        if not failures:
            raise
        logger.error("could not write the run summary: %s", exc)
    try:
        report = write_report(cfg.output, so, report_sections())
        create_link_artifact(key="winnow-report", link=report if "://" in report else f"file://{report}",
                             link_text=report, description="run report (HTML): funnel, languages, lengths, "
                                                           "duplicates, packing")
    except Exception as exc:  # noqa: BLE001 - the report is a view of the data, never a reason to fail the run
        logger.warning("could not write the run report: %s", exc)
    create_markdown_artifact(key="winnow-funnel", markdown=markdown, description="winnow run summary")
    create_table_artifact(key="winnow-funnel-table", table=funnel_rows(stats),
                          description="documents and bytes per stage and drop reason")
    final_dir = summary["final_output"]
    create_link_artifact(key="winnow-output", link=final_dir if "://" in final_dir else f"file://{final_dir}",
                         link_text=final_dir, description="where this run wrote its final output")
    for artifact in (s.artifact(summary) for s in discover()):
        if artifact is not None:
            create_markdown_artifact(key=artifact.key, markdown=artifact.markdown, description=artifact.description)


def print_summary(summary: Mapping[str, Any], stats: dict[str, StageStats], console: Console) -> None:
    """The funnel table, the shard line and each stage's own line, on the terminal."""
    # Every cell and line as literal text: reasons and paths come from data, never markup.
    table = Table(title=Text(printable(f"winnow curate: {plural(summary['rows'], 'document')} -> "
                                       f"{summary['output']}")), title_justify="left")
    for col in ("stage", "what", "docs_in", "docs_out", "kept", "bytes_in", "bytes_out"):
        table.add_column(col, no_wrap=col == "what", justify="left" if col in ("stage", "what") else "right")
    for row in funnel_rows(stats):
        table.add_row(*(Text(printable(v)) for v in row.values()))
    wide = Console(stderr=True, width=max(120, console.width), soft_wrap=True)
    wide.print(table)
    wide.print(Text(f"shards: {summary['shards']} ({summary['shards_skipped_as_done']} already done, "
                    f"{summary['shards_failed']} failed)"))
    for line in (s.summary_line(summary) for s in discover()):
        if line:
            wide.print(Text(printable(line)))
