"""The config: one strict model assembled from the stage registry, loaded from YAML once."""

from __future__ import annotations

import pytest

from winnow.config import ConfigError, RunnerConfig, output_settings
from winnow.stage import registered
from winnow.tasks.pipeline import WinnowConfig, load_config, switchable_stages


def test_demo_config_loads_with_paths_relative_to_file(repo):
    cfg = load_config(repo / "examples" / "demo.yaml")
    assert cfg.input == [str(repo / "examples" / "data" / "warc")]
    assert cfg.ingest.extractor == "resiliparse"
    assert cfg.ingest.url_filter.blocked_domains_file == str(repo / "examples" / "blocklists" / "domains.txt")


def test_paths_inside_lists_of_models_are_relative_to_the_file_too(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "input: in\noutput: out\nclassify:\n  classifiers:\n"
        "    - {kind: fasttext, name: q, model_path: models/q.bin, threshold: 0.5}\n"
        "    - {kind: transformers, name: e, model_path: /abs/edu, threshold: 2.5}\n", encoding="utf-8")
    cfg = load_config(tmp_path / "c.yaml")
    assert [c.model_path for c in cfg.classify.classifiers] == [str(tmp_path / "models" / "q.bin"), "/abs/edu"]


def test_overrides_replace_config_values_and_stages_switch_exactly(repo, tmp_path):
    cfg = load_config(repo / "examples" / "demo.yaml", {"output": str(tmp_path), "runner.workers": 3,
                                                        "input": "x.warc.gz"}, stages=["dedup"])
    assert cfg.output == str(tmp_path) and cfg.runner.workers == 3
    assert cfg.input == [str(tmp_path.parent.parent / "x.warc.gz")] or cfg.input[0].endswith("/x.warc.gz")
    assert [name for name in switchable_stages() if getattr(cfg, name).enabled] == ["dedup"]
    with pytest.raises(ConfigError, match="unknown stage"):
        load_config(repo / "examples" / "demo.yaml", stages=["dedupe"])


def test_every_stage_has_a_section_named_after_it():
    fields = set(WinnowConfig.model_fields)
    for stage in registered():
        assert (stage.name in fields) == (stage.config_model is not None), stage.name
    assert {"input", "output", "runner", "storage_options", "shard_size_mb"} <= fields


@pytest.mark.parametrize("yaml_text, expected", [
    ("input: a\noutput: b\ningest:\n  extractr: resiliparse\n", "ingest.extractr: unknown field"),
    ("input: a\noutput: b\ningest:\n  extractor: soup\n", "ingest.extractor"),
    ("input: a\noutput: b\nrunner:\n  workers: 0\n", "runner.workers"),
    ("output: b\n", "input: Field required"),
    ("input: [a\n", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping"),
    ("input: a\noutput: b\ningest:\n  url_filter: {safety_lists: [adultt]}\n", "unknown safety list"),
])
def test_bad_configs_name_the_problem(tmp_path, yaml_text, expected):
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[")):
        load_config(path)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent/winnow.yaml")


def test_runtime_fields_stay_out_of_the_output_settings():
    cfg = load_config(None, {"input": ["a"], "output": "b", "rephrase.concurrency": 7, "rephrase.model": "m"})
    settings = output_settings(cfg.rephrase)
    assert "concurrency" not in settings and "timeout_s" not in settings and settings["model"] == "m"
    assert "runner" not in output_settings(cfg) and "storage_options" not in output_settings(cfg)


def test_batches_bound_the_task_count():
    assert RunnerConfig(workers=2).batches(12) == [[k] for k in range(12)]
    batches = RunnerConfig(workers=16, max_tasks=1000).batches(100_000)
    assert len(batches) == 1000 and sum(map(len, batches)) == 100_000
    assert RunnerConfig(workers=2).batches(40, tasks_per_worker=4) == [list(range(k, k + 5)) for k in range(0, 40, 5)]
    assert RunnerConfig(workers=2, shards_per_task=7).batches(10) == [list(range(7)), [7, 8, 9]]


def test_a_yaml_syntax_error_is_one_line_with_file_line_and_column_and_exit_2(tmp_path):
    """The real CLI: PyYAML's multi-line message quoted the broken YAML (`[/data/warc`), which the
    terminal printer read as markup and crashed on, exit 1 after a 40-line traceback."""
    import subprocess
    import sys
    from pathlib import Path

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("input: [/data/warc\noutput: out\n")
    proc = subprocess.run([str(Path(sys.executable).parent / "winnow"), "run", str(cfg)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"{cfg}, line 2, column 7: not valid YAML" in lines[0]
    assert "starts at line 1, column 8" in lines[0] and "Traceback" not in proc.stderr
    with pytest.raises(ConfigError, match=r"line 3, column 1: not valid YAML: found unexpected end of stream"):
        load_config(_write(tmp_path / "quote.yaml", 'input: a\noutput: "b\n'))


def _write(path, text):
    path.write_text(text)
    return path
