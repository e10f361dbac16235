from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO
from filters.url import UrlFilter
from winnow.config import ConfigError, load_config


def test_demo_config_loads_with_paths_relative_to_file():
    cfg = load_config(REPO / "examples" / "demo.yaml")
    assert cfg.input == [str(REPO / "examples" / "data" / "warc")]
    assert cfg.ingest.extractor == "resiliparse"


def test_overrides_replace_config_values(tmp_path):
    cfg = load_config(REPO / "examples" / "demo.yaml", {"output": str(tmp_path), "runner.workers": 3})
    assert cfg.output == str(tmp_path) and cfg.runner.workers == 3


@pytest.mark.parametrize("yaml_text, expected", [
    ("input: a\noutput: b\ningest:\n  extractr: resiliparse\n", "ingest.extractr: unknown field"),
    ("input: a\noutput: b\ningest:\n  extractor: soup\n", "ingest.extractor"),
    ("input: a\noutput: b\nrunner:\n  workers: 0\n", "runner.workers"),
    ("output: b\n", "input: Field required"),
    ("input: [a\n", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping"),
])
def test_bad_configs_name_the_problem(tmp_path, yaml_text, expected):
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[")):
        load_config(path)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent/winnow.yaml")


def test_cli_config_error_exits_2_without_traceback(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("input: a\noutput: b\nbogus_field: 1\n")
    for args in ([str(path)], ["/nonexistent.yaml"]):
        proc = subprocess.run([sys.executable, "-m", "winnow.cli", "run", *args],
                              capture_output=True, text=True, cwd=REPO)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and "error" in proc.stderr


def test_cli_missing_input_exits_2(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"input: {tmp_path}/nothing-here\noutput: {tmp_path}/out\n")
    proc = subprocess.run([sys.executable, "-m", "winnow.cli", "run", str(path)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "no such file or directory" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_help_and_stages():
    proc = subprocess.run([sys.executable, "-m", "winnow.cli", "run", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--output" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "winnow.cli", "stages"], capture_output=True, text=True)
    assert proc.returncode == 0 and "ingest.extractor" in proc.stderr


def test_url_filter():
    f = UrlFilter(blocked_domains=["bad.example", "www.spam.example"],
                  blocked_urls=["https://ok.example/blocked/page/"], max_length=60)
    assert f.reason("https://ok.example/article") is None
    assert f.reason("https://news.bad.example/x") == "url_blocked_domain"
    assert f.reason("http://spam.example/") == "url_blocked_domain"
    assert f.reason("https://notbad.example/") is None  # suffix match is on label boundaries
    assert f.reason("http://www.ok.example/blocked/page#frag") == "url_blocked"
    assert f.reason("ftp://ok.example/file") == "url_scheme"
    assert f.reason("dns:ok.example") == "url_scheme"
    assert f.reason("https://ok.example/" + "a" * 100) == "url_too_long"
    assert f.reason("http://[::1") == "url_malformed"
    assert f.reason("") == "url_missing"
