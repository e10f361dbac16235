"""A run limited with --stages never rewrites what stages it does not run wrote: it reads their
current output as its input, or refuses in one line before any work. winnow's own shards given
as input are read where they are, not copied. Real CLI, real files, a real Prefect server."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

pytestmark = pytest.mark.slow

DOCUMENT_STAGES = ["lid", "quality", "pii"]
CORPUS_STAGES = ["dedup", "pack"]
DEMO_STAGES = DOCUMENT_STAGES + CORPUS_STAGES  # what examples/demo.yaml enables
OUTPUTS = ["documents", "rejected", "deduped", "packed"]
SUBSETS = [list(c) for n in range(1, len(DEMO_STAGES) + 1) for c in itertools.combinations(DEMO_STAGES, n)]


@pytest.fixture(scope="module")
def env(tmp_path_factory, prefect_server_api):
    from helpers.servers import prefect_env

    return prefect_env(tmp_path_factory.mktemp("home"), prefect_server_api)


@pytest.fixture(scope="module")
def base(tmp_path_factory, env):
    from helpers.servers import REPO, winnow

    out = tmp_path_factory.mktemp("base") / "out"
    winnow("run", str(REPO / "examples" / "demo.yaml"), "-o", str(out), env=env)
    return out


def cli(*args, env):
    from helpers.servers import REPO, winnow

    return winnow("run", str(REPO / "examples" / "demo.yaml"), *args, env=env, check=False)


def contents(out: Path) -> dict[str, str]:
    """Every file of the four outputs (data, markers, manifest) -> digest of its bytes."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in OUTPUTS for p in sorted((out / folder).rglob("*")) if p.is_file()}


def rows(folder: Path) -> int:
    return sum(pq.read_metadata(p).num_rows for p in folder.glob("*.parquet"))


def demo_config(tmp_path: Path, **sections) -> Path:
    """examples/demo.yaml with absolute paths and some settings changed."""
    from helpers.servers import REPO

    data = yaml.safe_load((REPO / "examples" / "demo.yaml").read_text())
    data["input"] = [str(REPO / "examples" / "data" / "warc")]
    data["ingest"]["url_filter"]["blocked_domains_file"] = str(REPO / "examples" / "blocklists" / "domains.txt")
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("stages", SUBSETS, ids=lambda s: "+".join(s))
def test_a_stage_subset_on_an_existing_output_never_replaces_other_stages_output(base, env, tmp_path, stages):
    out = tmp_path / "out"
    shutil.copytree(base, out)
    before = contents(out)
    proc = cli("-o", str(out), "--stages", ",".join(stages), env=env)
    document_stages = [s for s in stages if s in DOCUMENT_STAGES]
    if document_stages and document_stages != DOCUMENT_STAGES:
        # It would rewrite documents/ with fewer stages than made it: refused, before any work.
        assert proc.returncode == 2, proc.stderr[-3000:]
        error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(error) == 1 and "would replace" in error[0], proc.stderr[-3000:]
        assert "lid, quality, pii" in error[0] and "--stages" in error[0]
        assert "Beginning flow run" not in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr[-3000:]
    # Nothing changed in the config: whatever ran found its output current, and nothing else
    # (curated documents, rejected documents, dedup, packing) was rewritten or emptied.
    assert contents(out) == before
    if "pack" in stages and proc.returncode == 0:
        manifest = json.loads((out / "packed" / "__meta__" / "manifest.json").read_text())
        assert all("/deduped/" in p for p in manifest["inputs"])  # packed from the dedup output
        assert manifest["documents"] == rows(out / "deduped") < rows(out / "documents")


def test_a_pack_setting_with_stages_pack_repacks_the_deduplicated_documents(base, env, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(base, out)
    before = contents(out)
    from helpers.servers import winnow

    proc = winnow("run", str(demo_config(tmp_path, pack={"seq_len": 1024})), "-o", str(out), "--stages", "pack",
                  env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = contents(out)
    assert {k: v for k, v in after.items() if not k.startswith("packed/")} == \
           {k: v for k, v in before.items() if not k.startswith("packed/")}
    manifest = json.loads((out / "packed" / "__meta__" / "manifest.json").read_text())
    assert manifest["seq_len"] == 1024 and manifest["documents"] == rows(out / "deduped")
    assert all(len(r) <= 1024 for p in (out / "packed").glob("train-*.parquet")
               for r in pq.read_table(p).column("input_ids").to_pylist())
    assert "redone: settings changed: pack.seq_len 2048 -> 1024" in proc.stderr


def test_stages_that_would_read_an_out_of_date_dedup_output_are_refused(base, env, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(base, out)
    before = contents(out)
    from helpers.servers import winnow

    # The document stages are run (with another LID threshold: documents/ is redone, which is
    # theirs to do), but dedup is not: pack would read a deduped/ made from other documents.
    proc = winnow("run", str(demo_config(tmp_path, lid={"threshold": 0.5})), "-o", str(out),
                  "--stages", "lid,quality,pii,pack", env=env, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "does not run dedup" in error[0] and "out of date" in error[0], proc.stderr
    assert contents(out) == before


def test_winnow_shards_as_input_are_read_in_place_not_copied(base, env, tmp_path):
    packed_only = tmp_path / "out-pack"
    proc = cli("-i", str(base / "deduped"), "-o", str(packed_only), "--stages", "pack", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (packed_only / "documents").exists() and not (packed_only / "deduped").exists()
    manifest = json.loads((packed_only / "packed" / "__meta__" / "manifest.json").read_text())
    assert manifest["documents"] == rows(base / "deduped")
    assert manifest["inputs"] == [str(p) for p in sorted((base / "deduped").glob("part-*.parquet"))]
    # Same input, same settings: the same sequences as the full run's.
    assert pq.read_table(packed_only / "packed").column("input_ids").to_pylist() == \
           pq.read_table(base / "packed").column("input_ids").to_pylist()
    assert "skipped" not in proc.stderr  # the markers beside the shards are not reported as inputs

    deduped_only = tmp_path / "out-dedup"
    proc = cli("-i", str(base / "documents"), "-o", str(deduped_only), "--stages", "dedup", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (deduped_only / "documents").exists()
    assert pq.read_table(deduped_only / "deduped").column("text").to_pylist() == \
           pq.read_table(base / "deduped").column("text").to_pylist()

    # The shards cannot be the folder the run writes: dedup would overwrite what it reads.
    before = contents(base)
    proc = cli("-i", str(base / "deduped"), "-o", str(base), "--stages", "dedup", env=env)
    assert proc.returncode == 2 and "is where dedup writes" in proc.stderr, proc.stderr[-3000:]
    assert contents(base) == before


def test_shards_of_an_earlier_layout_are_never_replaced_by_a_partial_run(base, env, tmp_path):
    """winnow 0.2 kept markers in _done/: they do not match (the work is redone by a full run),
    and a --stages run must not take the unmarked curated shards for its own to rewrite."""
    out = tmp_path / "out"
    shutil.copytree(base, out)
    for folder in OUTPUTS:
        if (out / folder / "__done__").is_dir():
            (out / folder / "__done__").rename(out / folder / "_done")
    before = contents(out)
    proc = cli("-o", str(out), "--stages", "pack", env=env)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "without a done-marker" in proc.stderr and "rerun without --stages" in proc.stderr
    assert contents(out) == before
