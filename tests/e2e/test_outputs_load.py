"""Every output folder loads where the README says it loads, with every reader people use:
``datasets.load_dataset`` with ``data_dir=``, with the folder path alone and with a
``data_files=`` glob, and ``pyarrow.parquet.read_table`` on the folder. Markers, the manifest
and the dataset card are in ``__done__/`` and ``__meta__/``, which all of them leave out."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow

FOLDERS = ["documents", "deduped", "rejected", "packed"]
READERS = ["data_dir", "path", "data_files", "pyarrow"]


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory, prefect_server_api):
    from helpers.servers import REPO, prefect_env, winnow

    out = tmp_path_factory.mktemp("outputs") / "out"
    winnow("run", str(REPO / "examples" / "demo.yaml"), "-o", str(out),
           env=prefect_env(tmp_path_factory.mktemp("home"), prefect_server_api))
    return out


def _load(reader, path):
    import datasets

    if reader == "data_dir":
        return datasets.load_dataset("parquet", data_dir=str(path), split="train")
    if reader == "path":
        return datasets.load_dataset(str(path), split="train")
    if reader == "data_files":
        return datasets.load_dataset("parquet", data_files=str(path / "*.parquet"), split="train")
    return pq.read_table(path)  # the whole folder, as people read it


@pytest.mark.parametrize("folder", FOLDERS)
@pytest.mark.parametrize("reader", READERS)
def test_output_loads_with_every_reader(demo_output, folder, reader, tmp_path, monkeypatch):
    for var, value in (("HF_DATASETS_OFFLINE", "1"), ("HF_HUB_OFFLINE", "1"), ("HF_HOME", str(tmp_path / "hf"))):
        monkeypatch.setenv(var, value)
    path = demo_output / folder
    files = sorted(path.glob("*.parquet"))
    assert files, folder
    # The metadata the readers must skip is there (a folder without markers would prove nothing).
    assert list(path.glob("__done__/*.json")) or folder == "rejected", folder
    rows = sum(pq.read_metadata(f).num_rows for f in files)
    assert rows > 0
    loaded = _load(reader, path)
    assert loaded.num_rows == rows
    columns = loaded.column_names
    if folder == "packed":
        assert "input_ids" in columns and (path / "__meta__" / "manifest.json").is_file()
        if reader != "pyarrow":
            assert loaded.features["input_ids"].feature.dtype == "int32"
    else:
        assert "text" in columns and "id" in columns
        first = loaded.column("annotations")[0].as_py() if reader == "pyarrow" else loaded[0]["annotations"]
        first = json.loads(first)  # a JSON object per row
        assert isinstance(first, dict) and first
