"""The docs' "Adding a stage" (docs/contributing.md): one file dropped into winnow/tasks is a stage of the pipeline,
with its config section, its place in `winnow stages`, and its funnel counters (in a fresh
process, so the test stage never joins the registry of the other tests)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap


def readme_stage_module(readme: str) -> str:
    block = re.search(r"```python\n# tasks/ellipsis.py\n(.*?)```", readme, re.S)
    assert block, "the stage example of docs/contributing.md is missing"
    return block.group(1)


def test_the_readme_stage_example_is_a_working_stage(tmp_path, repo, demo_warcs):
    (tmp_path / "ellipsis.py").write_text(readme_stage_module((repo / "docs" / "contributing.md").read_text()))
    script = textwrap.dedent(f"""
        import winnow.tasks
        winnow.tasks.__path__.append({str(tmp_path)!r})  # as if the file were in tasks/
        from winnow.inputs import list_inputs
        from winnow.stage import get
        from winnow.tasks.pipeline import WinnowConfig, load_config
        from winnow.tasks.shard import ShardJob, ShardPlan, process_shard

        assert "ellipsis" in WinnowConfig.model_fields
        cfg = load_config(None, {{"input": [{str(demo_warcs)!r}], "output": {str(tmp_path / "out")!r},
                                 "ellipsis.enabled": True, "ellipsis.max_ratio": 0.0}})
        assert get("ellipsis").order == 25
        job = ShardJob(0, tuple(list_inputs([{str(demo_warcs / "govuk-BL-20140325121225068-00000.warc.gz")!r}]).files),
                       {str(tmp_path / "out" / "documents" / "part-00000.parquet")!r})
        stats = process_shard(job, ShardPlan.from_config(cfg)).stats
        print(json.dumps({{"order": list(stats), "ellipsis": stats["ellipsis"]}}))
    """)
    proc = subprocess.run([sys.executable, "-c", "import json\n" + script], capture_output=True, text=True, cwd=repo)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["order"] == ["ingest", "lid", "quality", "ellipsis"]  # placed by its order, after quality
    st = result["ellipsis"]
    assert st["docs_in"] > 0 and st["docs_in"] == st["docs_out"] + st["dropped_docs"].get("too_many_ellipses", 0)
