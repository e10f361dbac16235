"""Every output folder loads where the README says it loads: datasets.load_dataset on its
shards and pyarrow.parquet.read_table on the folder (markers, manifests and cards are `_` files)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory, prefect_server_api):
    from helpers.servers import REPO, prefect_env, winnow

    out = tmp_path_factory.mktemp("outputs") / "out"
    winnow("run", str(REPO / "examples" / "demo.yaml"), "-o", str(out),
           env=prefect_env(tmp_path_factory.mktemp("home"), prefect_server_api))
    return out


@pytest.mark.parametrize("folder", ["documents", "deduped", "rejected", "packed"])
def test_output_loads_with_datasets_and_pyarrow(demo_output, folder, tmp_path, monkeypatch):
    for var, value in (("HF_DATASETS_OFFLINE", "1"), ("HF_HUB_OFFLINE", "1"), ("HF_HOME", str(tmp_path / "hf"))):
        monkeypatch.setenv(var, value)
    import datasets

    path = demo_output / folder
    files = sorted(path.glob("*.parquet"))
    assert files, folder
    rows = sum(pq.read_metadata(f).num_rows for f in files)
    assert rows > 0
    table = pq.read_table(path)  # the whole folder, as people read it
    assert table.num_rows == rows
    ds = datasets.load_dataset("parquet", data_files=str(path / "*.parquet"), split="train")
    assert len(ds) == rows
    if folder != "packed":
        import json

        first = json.loads(ds[0]["annotations"])  # annotations: a JSON object per row
        assert isinstance(first, dict) and first
        assert "text" in ds.column_names and "id" in ds.column_names
    else:
        assert ds.features["input_ids"].feature.dtype == "int32"
