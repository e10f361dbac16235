"""The run report: built from a real demo run, rendered in a real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import yaml
from helpers.servers import BIN, REPO, prefect_env

pytestmark = pytest.mark.slow
ARTIFACTS = REPO / "test-artifacts"  # screenshots kept for people to look at (CI artifacts)


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.tags: dict[str, int] = {}
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if "id" in a:
            self.ids.add(a["id"])
        for key in ("src", "href"):
            if a.get(key):
                self.external.append(a[key])


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, prefect_server_api) -> Path:
    out = tmp_path_factory.mktemp("report") / "out"
    proc = subprocess.run([str(BIN / "winnow"), "run", str(REPO / "examples" / "demo.yaml"), "-o", str(out)],
                          env=prefect_env(tmp_path_factory.mktemp("home"), prefect_server_api), cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "report: " in proc.stderr
    return out


def test_report_has_every_section_and_no_external_resources(demo_run):
    report = demo_run / "report.html"
    assert report.is_file()  # the flow writes it
    report.unlink()
    proc = subprocess.run([str(BIN / "winnow"), "report", str(demo_run)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    html = report.read_text()
    parsed = _Elements()
    parsed.feed(html)
    assert {"overview", "funnel-chart", "funnel-table", "rules-chart", "languages-chart", "lengths-chart",
            "dedup-chart", "packing-chart", "packing-table", "pii-chart"} <= parsed.ids
    assert parsed.tags["svg"] >= 6 and not parsed.external  # self-contained: no scripts, images or links out
    summary = json.loads((demo_run / "summary.json").read_text())
    # Numbers on the page are the run's: documents written, every drop reason, the languages seen.
    assert f"<b>{summary['rows']:,}</b> documents" in html
    for stage, st in summary["stages"].items():
        for reason in st["dropped_docs"]:
            assert f"{stage}: {reason}" in html
    assert ">en</text>" in html  # the language chart has the demo's main language


def test_report_of_a_folder_without_a_run_is_a_clear_error(tmp_path):
    proc = subprocess.run([str(BIN / "winnow"), "report", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "no summary.json" in proc.stderr and "Traceback" not in proc.stderr


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_report_renders_in_headless_chromium(demo_run, tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (`make system-deps` installs Debian's chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    url = (demo_run / "report.html").resolve().as_uri()
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = _Elements()
    parsed.feed(dom.stdout)
    # What the browser built from the page: every chart and table is in its DOM.
    assert {"funnel-chart", "rules-chart", "languages-chart", "lengths-chart", "dedup-chart", "packing-chart",
            "funnel-table"} <= parsed.ids
    assert parsed.tags.get("rect", 0) > 20
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    run = subprocess.run([chromium, *flags, "--hide-scrollbars", "--window-size=900,2600",
                          f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (900, 2600)
    assert len(png) > 30_000  # a blank page compresses to a few KB; charts and text do not


def _table_cells(line: str) -> list[str]:
    """The cells of a GFM table row: split on pipes that are not backslash-escaped."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_values_from_data_are_escaped_in_markdown_and_the_funnel_is_narrow(tmp_path, test_data,
                                                                           prefect_server_api):
    """An evaluation set whose `benchmark` is HTML with a pipe: summary.md and the winnow-funnel
    artifact show it as text (no tag, the table keeps its columns), and the funnel table has five
    short columns, so it fits the Prefect UI at 1,400 px."""
    evil = "<img src=x onerror=alert(1)>|`x`*y*[z](http://e.invalid)"
    rows = [json.loads(line) for line in (test_data / "decontam" / "gutenberg_cloze.jsonl").read_text().splitlines()]
    evals = tmp_path / "evals.jsonl"
    evals.write_text("".join(json.dumps({**r, "benchmark": evil}) + "\n" for r in rows))
    out = tmp_path / "out"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"input": [str(test_data / "decontam" / "corpus.jsonl")], "output": str(out),
                                   "decontam": {"enabled": True, "eval_sets": [str(evals)]}}))
    proc = subprocess.run([str(BIN / "winnow"), "run", str(cfg), "--stages", "decontam"], cwd=REPO,
                          env=prefect_env(tmp_path / "home", prefect_server_api), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["stages"]["decontam"]["dropped_docs"]  # it matched
    markdown = (out / "summary.md").read_text()
    artifact = httpx.get(f"{prefect_server_api}/artifacts/winnow-funnel/latest", timeout=30).json()["data"]
    for text in (markdown, artifact):
        assert not re.search(r"(?<!\\)[<>|`*\[\]]", text.split("Removed, by reason:")[1])  # every one escaped
        assert "\\<img src=x onerror=alert(1)\\>\\|" in text
        table = [line for line in text.splitlines() if line.startswith("|")]
        widths = {len(_table_cells(line)) for line in table}
        assert widths == {5}, table
        assert max(len(c) for line in table for c in _table_cells(line)) <= 12, table
