"""Megatron-LM's preprocess-and-merge and bin-reader tests, with winnow writing the indexed datasets.

Ported from NVIDIA/Megatron-LM ``tests/unit_tests/data/test_preprocess_data.py`` at 00caa53 (the
stored version). Inputs unchanged: the three dummy JSONL files (``numbers``: 1..100;
``numbers_ascending``: "1", "1 2", ... up to 100 numbers; ``test``: every line of this test
file), one document per line. The steps are upstream's with winnow's calls: each file is
tokenized (winnow's tokenizer, ``--append-eod``: end-of-text appended) and written with
``MegatronWriter`` instead of ``tools/preprocess_data.py``; the files are merged with
megatron-core's ``IndexedDatasetBuilder.add_index`` (what ``tools/merge_datasets.py`` calls); then
upstream's checks run through megatron-core's ``IndexedDataset``: each dataset's document indices
equal the merged dataset's slice, and every raw document equals both its processed and merged
tokens, decoded. GPT-2's BPE files (downloaded upstream) are not on this machine: winnow's
default tokenizer stands in. The BERT variant (sentence splitting with nltk data, WordPiece) has
no winnow counterpart and is not ported. ``test_bin_reader`` ports
``tests/unit_tests/data/test_bin_reader.py`` (same commit) on the same files. Needs megatron-core
(and torch): skipped without them.
"""

from __future__ import annotations

import json
import os
import random
import warnings
from pathlib import Path

import pytest

from winnow.megatron import MegatronWriter, iter_sequences
from winnow.tokenizer import load_tokenizer


def dummy_jsonl(odir: Path) -> None:
    # numbers
    list_numbers = [json.dumps({"text": str(i + 1)}) + "\n" for i in range(100)]
    with open(os.path.join(odir, "numbers.jsonl"), "w") as writer:
        writer.writelines(list_numbers)
    # numbers ascending
    list_numbers_ascending = [
        json.dumps({"text": " ".join([str(j + 1) for j in range(i + 1)])}) + "\n" for i in range(100)
    ]
    with open(os.path.join(odir, "numbers_ascending.jsonl"), "w") as writer:
        writer.writelines(list_numbers_ascending)
    # test
    list_test = []
    with open(__file__) as reader:
        for line in reader:
            list_test.append(json.dumps({"text": line}) + "\n")
    with open(os.path.join(odir, "test.jsonl"), "w") as writer:
        writer.writelines(list_test)


def megatron_core():
    pytest.importorskip("megatron.core")
    with warnings.catch_warnings():  # megatron-core warns about missing Apex/Transformer Engine
        warnings.simplefilter("ignore")
        from megatron.core.datasets import indexed_dataset
    return indexed_dataset


def build_datasets(path_to_raws: Path, path_to_data: Path):
    """Upstream's build_datasets (tools/preprocess_data.py, GPT, --append-eod; output
    PREFIX_text_document), written by winnow's MegatronWriter. Returns (tokenizer, encode)."""
    tok = load_tokenizer()
    assert tok.eos_id is not None

    def encode(json_line: str) -> list[int]:
        return tok.encode_batch([json.loads(json_line)["text"]])[0] + [tok.eos_id]  # --append-eod

    for name in sorted(os.listdir(path_to_raws)):
        prefix = str(path_to_data / f"{os.path.splitext(name)[0]}_text_document")
        with MegatronWriter(prefix, tok.vocab_size) as writer, open(path_to_raws / name) as reader:
            for json_line in reader:
                writer.add_document(encode(json_line))
    return tok, encode


def test_preprocess_data_gpt(tmp_path: Path) -> None:
    mc = megatron_core()
    DType, IndexedDataset, IndexedDatasetBuilder = mc.DType, mc.IndexedDataset, mc.IndexedDatasetBuilder

    path_to_raws, path_to_data = tmp_path / "sample_raws", tmp_path / "sample_data"
    path_to_raws.mkdir()
    path_to_data.mkdir()
    dummy_jsonl(path_to_raws)
    tok, encode = build_datasets(path_to_raws, path_to_data)
    vocab = tok.vocab_size

    # merge the datasets (upstream: tools/merge_datasets.py)
    basenames = sorted(n for n in os.listdir(path_to_data) if n.endswith(".idx") and not n.startswith("merge"))
    builder = IndexedDatasetBuilder(str(path_to_data / "merge.bin"), dtype=DType.optimal_dtype(vocab))
    for basename in basenames:
        builder.add_index(str(path_to_data / basename[: -len(".idx")]))
    builder.finalize(str(path_to_data / "merge.idx"))

    merged_index = 0
    merged_dataset = IndexedDataset(str(path_to_data / "merge"))
    merged_doc_index_index = 0
    for basename in basenames:
        realpath_raw = f"{os.path.join(path_to_raws, '_'.join(basename.split('_')[:-2]))}.jsonl"
        realpath_doc = os.path.join(path_to_data, basename.split(".")[-2])

        dataset_index = 0
        dataset = IndexedDataset(realpath_doc)

        merged_doc_idx = merged_dataset.document_indices[
            merged_doc_index_index : merged_doc_index_index + len(dataset.document_indices)
        ]
        merged_doc_idx = merged_doc_idx - merged_doc_idx[0]
        assert (dataset.document_indices == merged_doc_idx).all(), f"{basename}: merged document indices mismatch"
        merged_doc_index_index += len(dataset.document_indices) - 1

        with open(realpath_raw) as reader:
            for json_line in reader:
                toks = encode(json_line)
                raw = tok.decode(toks)

                processed_toks: list[int] = []
                while len(processed_toks) < len(toks):
                    processed_toks.extend(dataset[dataset_index].tolist())
                    dataset_index += 1
                assert raw == tok.decode(processed_toks), f"{basename}: raw and processed documents do not match"

                merged_toks: list[int] = []
                while len(merged_toks) < len(toks):
                    merged_toks.extend(merged_dataset[merged_index].tolist())
                    merged_index += 1
                assert raw == tok.decode(merged_toks), f"{basename}: raw and merged documents do not match"


def test_bin_reader(tmp_path: Path) -> None:
    """Megatron-LM ``tests/unit_tests/data/test_bin_reader.py`` at 00caa53: megatron-core's file and
    mmap readers agree on every dataset (upstream also reads through mocked S3 and
    multi-storage clients; winnow's S3 round trip runs against a real moto server in
    tests/unit/core/test_megatron.py instead), and winnow's own reader reads the same sequences."""
    mc = megatron_core()
    path_to_raws, path_to_data = tmp_path / "sample_raws", tmp_path / "sample_data"
    path_to_raws.mkdir()
    path_to_data.mkdir()
    dummy_jsonl(path_to_raws)
    build_datasets(path_to_raws, path_to_data)

    prefixes = {os.path.join(path_to_data, path.split(".")[0]) for path in os.listdir(path_to_data)
                if path.endswith(".bin") or path.endswith(".idx")}
    assert len(prefixes) == 3
    rng = random.Random(0)
    for prefix in sorted(prefixes):
        indexed_dataset_file = mc.IndexedDataset(prefix, multimodal=False, mmap=False)
        assert isinstance(indexed_dataset_file.bin_reader, mc._FileBinReader)
        indexed_dataset_mmap = mc.IndexedDataset(prefix, multimodal=False, mmap=True)
        assert isinstance(indexed_dataset_mmap.bin_reader, mc._MMapBinReader)
        assert len(indexed_dataset_mmap) == len(indexed_dataset_file)

        ours = list(iter_sequences(prefix))  # winnow's reader
        assert len(ours) == len(indexed_dataset_file)
        indices = rng.sample(list(range(len(indexed_dataset_file))), min(100, len(indexed_dataset_file)))
        for idx in indices:
            assert (indexed_dataset_mmap[idx] == indexed_dataset_file[idx]).all()
            assert (ours[idx] == indexed_dataset_file[idx]).all()
