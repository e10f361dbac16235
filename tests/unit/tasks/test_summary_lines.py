"""The end of a run comes from the stages' hooks (winnow.stage.Stage.summary_line and the
others): the lines, summary.md, the manifest artifact and the single-stage deployments are
the same, byte for byte, as when the flow and the CLI formatted dedup and pack themselves (the
expected strings below are what that code wrote)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from winnow import cli
from winnow.flows.curate import _listed_summaries
from winnow.flows.summary import print_summary, run_markdown
from winnow.stage import CorpusStage, get
from winnow.stats import StageStats
from winnow.tasks.pipeline import discover, load_config

REPO = Path(__file__).resolve().parents[3]

PACKED = {"tokenizer": "tiktoken:gpt2", "seq_len": 2048, "strategy": "best_fit", "documents": 10, "tokens": 12345,
          "sequences": 7, "lower_bound_sequences": 6, "padding_fraction": 0.01234, "truncated_documents": 1,
          "shards": ["a", "b"], "megatron": None, "output": "/out/packed"}
DEDUP = {"clusters": 1, "documents_in_clusters": 8, "removed": 5, "cluster_size_histogram": {"2": 2}, "rounds": 1}


def _summary(dedup=DEDUP, packed=PACKED) -> dict:
    return {"output": "/out/documents", "final_output": "/out/packed", "shards": 2, "input_files": 2,
            "skipped_files": 0, "shards_skipped_as_done": 0, "shards_redone": 0, "shards_failed": 0, "failures": [],
            "rows": 10, "dedup": dedup, "packed": packed, "stages": {}}


def test_summary_json_keeps_dedup_and_packed_where_they_were() -> None:
    discover()
    summaries = {"rephrase": {"rows": 3}, "packed": PACKED}
    assert list(_listed_summaries(summaries).items()) == [("dedup", None), ("packed", PACKED)]
    assert summaries == {"rephrase": {"rows": 3}}  # after them, only when its stage ran


def test_the_line_under_the_funnel(capsys) -> None:
    from rich.console import Console

    stats = {"ingest": StageStats(docs_in=10, docs_out=10)}
    print_summary(_summary(), stats, Console(stderr=True))
    lines = capsys.readouterr().err.splitlines()
    assert lines[-2:] == ["shards: 2 (0 already done, 0 failed)",
                          "packed: 7 sequences x 2,048 tokens (best_fit, padding 1.234%, 1 document split) -> "
                          "/out/packed"]
    print_summary(_summary(None, None), stats, Console(stderr=True))
    assert capsys.readouterr().err.splitlines()[-1] == "shards: 2 (0 already done, 0 failed)"


def test_summary_md_ends_with_the_packing_paragraph() -> None:
    stats = {"ingest": StageStats(docs_in=10, docs_out=10)}
    plain = run_markdown("/out", _summary(None, None), stats)
    assert run_markdown("/out", _summary(), stats) == plain + (
        "\nPacked: 7 sequences of <= 2,048 tokens (12,345 tokens, padding 1.234%, 1 document split) in "
        "`/out/packed`\n")


def test_the_manifest_artifact() -> None:
    discover()
    found = [a for a in (s.artifact(_summary()) for s in discover()) if a is not None]
    assert [(a.key, a.description) for a in found] == [("winnow-manifest", "packed dataset manifest")]
    assert found[0].markdown == (
        '# Packed output\n\n`/out/packed`\n\n```json\n{\n "tokenizer": "tiktoken:gpt2",\n "seq_len": 2048,\n '
        '"strategy": "best_fit",\n "documents": 10,\n "tokens": 12345,\n "sequences": 7,\n '
        '"lower_bound_sequences": 6,\n "padding_fraction": 0.01234,\n "truncated_documents": 1,\n "shards": [\n'
        '  "a",\n  "b"\n ],\n "megatron": null,\n "output": "/out/packed"\n}\n```\n')
    assert not [s for s in discover() if s.artifact(_summary(None, None)) is not None]


def test_what_winnow_run_says_last(capsys, monkeypatch) -> None:
    monkeypatch.setattr(cli._Options, "quiet", False)
    cfg = load_config(REPO / "examples" / "demo.yaml", {"output": "/out"})
    cli._done(_summary(), cfg)
    assert capsys.readouterr().err.splitlines() == [
        "", "done. 10 documents in /out/documents",
        "deduplicated: 5 near-duplicates removed (1 cluster) -> /out/deduped",
        "training sequences: /out/packed (2 files, __meta__/manifest.json)",
        "run summary: /out/summary.md, report: /out/report.html"]
    cli._done(_summary(None, None), cfg)
    assert "deduplicated" not in capsys.readouterr().err


@pytest.mark.parametrize("name", ["dedup", "pack"])
def test_a_stage_deployed_alone_reads_and_writes_beside_the_run(name, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = cli._prefect_file_for(None, str(REPO / "examples" / "demo.yaml"), None, None, "winnow")
    deployments = {d["name"]: d for d in yaml.safe_load(spec.read_text())["deployments"]}
    out = load_config(REPO / "examples" / "demo.yaml").output.rstrip("/")
    params = deployments[name]["parameters"]
    expected = {"dedup": ([f"{out}/documents"], f"{out}-dedup"), "pack": ([f"{out}/deduped"], f"{out}-packed")}
    assert (params["input"], params["output"]) == expected[name]
    assert "input" not in deployments["curate"]["parameters"]
    stage = get(name)
    assert issubclass(stage, CorpusStage) and stage.deployed_alone(out) == (expected[name][0][0], expected[name][1])
