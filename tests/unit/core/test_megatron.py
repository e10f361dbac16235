"""Megatron-LM indexed datasets: the writer and reader of winnow.megatron, checked against a
hand-computed byte layout, real tokenized text, a real (moto) S3 endpoint, and megatron-core's
own reader and builder when megatron-core is installed."""

from __future__ import annotations

import gzip
import os
import socket
import struct
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from winnow import megatron
from winnow.megatron import (
    MegatronFormatError,
    MegatronWriteError,
    MegatronWriter,
    iter_sequences,
    read_documents,
    read_index,
    token_dtype,
)
from winnow.tokenizer import load_tokenizer

TEXT = Path(__file__).resolve().parents[2] / "data" / "text"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tokenized() -> list[list[int]]:
    """Paragraphs of two public-domain novels as cl100k token ids (+ end-of-text)."""
    tok = load_tokenizer()
    assert tok.eos_id is not None
    paras: list[str] = []
    for name in ("austen-persuasion.txt.gz", "chesterton-thursday.txt.gz"):
        text = gzip.decompress((TEXT / name).read_bytes()).decode("utf-8")
        paras += [p for p in text.split("\n\n") if p.strip()][:300]
    return [ids + [tok.eos_id] for ids in tok.encode_batch(paras)]


def pack_like_winnow(segments: list[list[int]], seq_len: int) -> list[list[list[int]]]:
    """Greedy bins of whole segments, at most ``seq_len`` tokens each (the shape the pack
    stage hands to the writer: each bin a list of segments)."""
    bins: list[list[list[int]]] = [[]]
    used = 0
    for s in segments:
        s = s[:seq_len]
        if used + len(s) > seq_len:
            bins.append([])
            used = 0
        bins[-1].append(s)
        used += len(s)
    return bins


def write_bins(prefix: str, bins: list[list[list[int]]], vocab: int, **kw: Any) -> dict[str, Any]:
    with MegatronWriter(prefix, vocab, **kw) as w:
        for b in bins:
            for seg in b:
                w.add_sequence(seg)
            w.end_document()
    return w.finish()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------- byte layout


def test_byte_layout_matches_hand_computed_uint16(tmp_path: Path) -> None:
    """Two documents: [1,2,3] + [4,5] and [6]; vocabulary 1000 -> uint16 (code 8)."""
    prefix = str(tmp_path / "tiny")
    with MegatronWriter(prefix, vocab_size=1000) as w:
        w.add_sequence([1, 2, 3])
        w.add_sequence(np.array([4, 5]))
        w.end_document()
        w.add_document([6])
    info = w.finish()
    idx = (tmp_path / "tiny.idx").read_bytes()
    expected = (
        b"MMIDIDX\x00\x00"                      # 0: magic
        b"\x01\x00\x00\x00\x00\x00\x00\x00"      # 9: version 1
        b"\x08"                                  # 17: dtype code 8 = uint16
        b"\x03\x00\x00\x00\x00\x00\x00\x00"      # 18: 3 sequences
        b"\x03\x00\x00\x00\x00\x00\x00\x00"      # 26: 3 document indices (2 documents + 1)
        b"\x03\x00\x00\x00" b"\x02\x00\x00\x00" b"\x01\x00\x00\x00"  # 34: lengths 3, 2, 1
        b"\x00\x00\x00\x00\x00\x00\x00\x00"      # 46: pointers 0,
        b"\x06\x00\x00\x00\x00\x00\x00\x00"      #     6 (3 tokens x 2 bytes),
        b"\x0a\x00\x00\x00\x00\x00\x00\x00"      #     10
        b"\x00\x00\x00\x00\x00\x00\x00\x00"      # 70: document indices 0,
        b"\x02\x00\x00\x00\x00\x00\x00\x00"      #     2,
        b"\x03\x00\x00\x00\x00\x00\x00\x00"      #     3
    )
    assert len(expected) == 94
    assert idx == expected
    assert (tmp_path / "tiny.bin").read_bytes() == b"\x01\x00\x02\x00\x03\x00\x04\x00\x05\x00\x06\x00"
    assert info["sequences"] == 3 and info["documents"] == 2 and info["tokens"] == 6
    assert info["bin_bytes"] == 12 and info["idx_bytes"] == 94 and info["bytes"] == 106
    assert info["dtype"] == "uint16"


def test_byte_layout_int32_pointers_and_reader_on_hand_made_files(tmp_path: Path) -> None:
    """A pair built by hand (not by the writer) reads back; int32 pointers step by 4 bytes."""
    lengths, tokens, docs = [2, 1], [70000, 1, 99999], [0, 1, 2]
    idx = (b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + bytes([4]) + struct.pack("<QQ", 2, 3)
           + struct.pack("<2i", *lengths) + struct.pack("<2q", 0, 8) + struct.pack("<3q", *docs))
    (tmp_path / "hand.idx").write_bytes(idx)
    (tmp_path / "hand.bin").write_bytes(struct.pack("<3i", *tokens))
    index = read_index(str(tmp_path / "hand"))
    assert index.dtype == np.int32 and index.sequences == 2 and index.documents == 2 and index.tokens == 3
    assert [s.tolist() for s in iter_sequences(str(tmp_path / "hand"))] == [[70000, 1], [99999]]
    assert [[s.tolist() for s in d] for d in read_documents(str(tmp_path / "hand"))] == [[[70000, 1]], [[99999]]]
    # and the writer makes exactly these bytes from the same content
    with MegatronWriter(str(tmp_path / "ours"), vocab_size=100277) as w:
        w.add_document([70000, 1])
        w.add_document([99999])
    assert (tmp_path / "ours.idx").read_bytes() == idx
    assert (tmp_path / "ours.bin").read_bytes() == (tmp_path / "hand.bin").read_bytes()


@pytest.mark.parametrize(("vocab", "dtype"), [(1, np.uint16), (65499, np.uint16), (65500, np.int32),
                                              (100277, np.int32), (2**31, np.int32)])
def test_token_dtype_is_megatrons_choice(vocab: int, dtype: type) -> None:
    assert token_dtype(vocab) == dtype


@pytest.mark.parametrize("vocab", [0, -5, 2**31 + 1, 3.5, True])
def test_bad_vocab_size_is_refused(vocab: Any) -> None:
    with pytest.raises(MegatronWriteError, match="vocab_size"):
        token_dtype(vocab)


# ----------------------------------------------------------------------------- round trips


def test_real_text_round_trip_int32_packed_layout(tmp_path: Path, tokenized: list[list[int]]) -> None:
    """cl100k ids (vocab 100277 -> int32) in winnow's layout: bins = documents, segments =
    sequences; segments, bins and the decoded text all come back exactly."""
    tok = load_tokenizer()
    bins = pack_like_winnow(tokenized, seq_len=512)
    prefix = str(tmp_path / "packed" / "part-00000")
    info = write_bins(prefix, bins, tok.vocab_size)
    assert info["dtype"] == "int32"
    assert info["documents"] == len(bins) and info["sequences"] == sum(len(b) for b in bins)
    assert info["tokens"] == sum(len(s) for b in bins for s in b)
    assert os.path.getsize(prefix + ".bin") == 4 * info["tokens"] == info["bin_bytes"]

    index = read_index(prefix)
    assert index.sequence_lengths.tolist() == [len(s) for b in bins for s in b]
    assert np.diff(index.document_indices).tolist() == [len(b) for b in bins]
    got = [[s.tolist() for s in d] for d in read_documents(prefix)]
    assert got == bins
    assert all(sum(len(s) for s in d) <= 512 for d in got)
    first = [s for b in bins for s in b][:50]
    assert [tok.decode(s.tolist()) for s in list(iter_sequences(prefix))[:50]] == [tok.decode(s) for s in first]
    assert listing(tmp_path / "packed") == ["part-00000.bin", "part-00000.idx"]  # no temp files left


def test_real_text_round_trip_uint16(tmp_path: Path, tokenized: list[list[int]]) -> None:
    """The same text with its ids relabelled densely (first seen = 0), so the vocabulary is
    < 65500 and the file is uint16: every id and the decoded text survive."""
    tok = load_tokenizer()
    relabel: dict[int, int] = {}
    dense = [[relabel.setdefault(t, len(relabel)) for t in s] for s in tokenized]
    back = {v: k for k, v in relabel.items()}
    vocab = len(relabel)
    assert 1000 < vocab < 65500
    prefix = str(tmp_path / "u16")
    with MegatronWriter(prefix, vocab) as w:
        for s in dense:
            w.add_document(np.asarray(s, dtype=np.int64))
    assert w.finish()["dtype"] == "uint16"
    assert os.path.getsize(prefix + ".bin") == 2 * sum(map(len, dense))
    seqs = list(iter_sequences(prefix))
    assert all(s.dtype == np.uint16 for s in seqs)
    assert [s.tolist() for s in seqs] == dense
    assert max(int(s.max()) for s in seqs) == vocab - 1
    texts = [tok.decode([back[t] for t in s.tolist()]) for s in seqs[:40]]
    assert texts == [tok.decode(s) for s in tokenized[:40]]


def test_reader_reassembles_sequences_across_read_chunks(tmp_path: Path, tokenized: list[list[int]],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The .bin is read in chunks; a chunk far smaller than a sequence (and not a multiple of
    the item size) must still give every sequence whole."""
    prefix = str(tmp_path / "chunks")
    write_bins(prefix, [[s] for s in tokenized[:60]], 100277)
    monkeypatch.setattr(megatron, "_READ_CHUNK", 7)
    assert [s.tolist() for s in iter_sequences(prefix)] == tokenized[:60]


def test_empty_dataset_round_trips(tmp_path: Path) -> None:
    """A pack task whose inputs were all filtered away still leaves a valid (empty) pair."""
    info = MegatronWriter(str(tmp_path / "empty"), 50000).finish()
    assert (info["sequences"], info["documents"], info["tokens"], info["bin_bytes"]) == (0, 0, 0, 0)
    assert (tmp_path / "empty.idx").stat().st_size == megatron.HEADER_SIZE + 8
    assert list(iter_sequences(str(tmp_path / "empty"))) == []
    assert read_index(str(tmp_path / "empty")).documents == 0


def test_finish_closes_an_open_document(tmp_path: Path) -> None:
    with MegatronWriter(str(tmp_path / "open"), 100) as w:
        w.add_document([1])
        w.add_sequence([2, 3])
        w.add_sequence([4])
    assert [[s.tolist() for s in d] for d in read_documents(str(tmp_path / "open"))] == [[[1]], [[2, 3], [4]]]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.lists(st.integers(0, 65499), min_size=1, max_size=30), min_size=1, max_size=5),
                max_size=12),
       st.sampled_from([65500, 256]))
def test_property_round_trip(bins: list[list[list[int]]], vocab: int) -> None:
    bins = [[[t % vocab for t in s] for s in b] for b in bins]
    with tempfile.TemporaryDirectory() as d:
        prefix = os.path.join(d, "p")
        info = write_bins(prefix, bins, vocab)
        assert info["documents"] == len(bins)
        assert [[s.tolist() for s in doc] for doc in read_documents(prefix)] == bins


# ----------------------------------------------------------------------------- S3


def test_s3_round_trip(s3_server: dict[str, Any], tokenized: list[list[int]]) -> None:
    import s3fs

    bins = pack_like_winnow(tokenized[:200], seq_len=1024)
    prefix = "s3://winnow-test/megatron-tests/run1/megatron/part-00003"
    info = write_bins(prefix, bins, 100277, storage_options=s3_server)
    assert info["bin_path"] == prefix + ".bin"
    fs = s3fs.S3FileSystem(**s3_server)
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls("winnow-test/megatron-tests/run1/megatron", refresh=True)) == \
        ["part-00003.bin", "part-00003.idx"]
    assert fs.size("winnow-test/megatron-tests/run1/megatron/part-00003.bin") == info["bin_bytes"]
    index = read_index(prefix, s3_server)
    assert index.documents == len(bins) and index.tokens == info["tokens"]
    assert [[s.tolist() for s in d] for d in read_documents(prefix, s3_server)] == bins


def test_s3_failed_write_leaves_nothing(s3_server: dict[str, Any]) -> None:
    import s3fs

    prefix = "s3://winnow-test/megatron-tests/run2/megatron/part-00000"
    with pytest.raises(MegatronWriteError, match="token id 70000"), \
            MegatronWriter(prefix, 50000, storage_options=s3_server) as w:
        w.add_document(list(range(1000)))
        w.add_document([1, 70000])
    fs = s3fs.S3FileSystem(**s3_server)
    assert not fs.exists("winnow-test/megatron-tests/run2/megatron/part-00000.bin")
    assert not fs.exists("winnow-test/megatron-tests/run2/megatron/part-00000.idx")
    fs.invalidate_cache()
    left = fs.find("winnow-test/megatron-tests/run2") if fs.exists("winnow-test/megatron-tests/run2") else []
    assert left == []


# ----------------------------------------------------------------------------- atomicity


class Boom(RuntimeError):
    pass


def test_exception_mid_write_leaves_no_files(tmp_path: Path, tokenized: list[list[int]]) -> None:
    out = tmp_path / "megatron"
    with pytest.raises(Boom), MegatronWriter(str(out / "part-00000"), 100277) as w:
        for s in tokenized[:50]:
            w.add_document(s)
        assert listing(out)[0].startswith(".part-00000.bin.tmp-")  # data really went to a temp file
        raise Boom
    assert listing(out) == []


def test_failed_rewrite_keeps_old_pair_and_rewrite_replaces_it(tmp_path: Path) -> None:
    prefix = str(tmp_path / "p")
    write_bins(prefix, [[[1, 2]], [[3]]], 100)
    with pytest.raises(Boom), MegatronWriter(prefix, 100) as w:
        w.add_document([9, 9, 9])
        raise Boom
    assert [s.tolist() for s in iter_sequences(prefix)] == [[1, 2], [3]]
    write_bins(prefix, [[[7], [8, 8]]], 100)
    assert [[s.tolist() for s in d] for d in read_documents(prefix)] == [[[7], [8, 8]]]
    assert listing(tmp_path) == ["p.bin", "p.idx"]


def test_abort_and_use_after_finish(tmp_path: Path) -> None:
    w = MegatronWriter(str(tmp_path / "a"), 100)
    w.add_document([1])
    w.abort()
    assert listing(tmp_path) == []
    with pytest.raises(MegatronWriteError, match="already finished or aborted"):
        w.add_document([2])
    w2 = MegatronWriter(str(tmp_path / "b"), 100)
    w2.add_document([1])
    assert w2.finish() == w2.finish()  # idempotent: a caller may finish and then leave a with block
    with pytest.raises(MegatronWriteError, match="already finished"):
        w2.add_sequence([3])


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("tokens", "vocab", "match"), [
    ([1, 2, 65535], 50000, "token id 65535 at position 2 of sequence 0 is outside \\[0, 50000\\)"),
    ([5, -1], 50000, "token id -1 at position 1"),
    ([100277], 100277, "token id 100277 at position 0"),
    ([], 100, "empty sequence"),
    (np.zeros(0, dtype=np.int32), 100, "empty sequence"),
    ([1.0, 2.0], 100, "integer ids"),
    ([[1, 2], [3, 4]], 100, "1-D"),
    ([2**70], 100, "integer ids"),
    (["a"], 100, "integer ids"),
])
def test_bad_tokens_are_refused_with_a_clear_error(tmp_path: Path, tokens: Any, vocab: int, match: str) -> None:
    with pytest.raises(MegatronWriteError, match=match), MegatronWriter(str(tmp_path / "bad"), vocab) as w:
        w.add_sequence(tokens)
    assert listing(tmp_path) == []


def test_empty_document_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MegatronWriteError, match="no sequence since the last document"), \
            MegatronWriter(str(tmp_path / "d"), 100) as w:
        w.add_document([1])
        w.end_document()


# ----------------------------------------------------------------------------- corruption


def _corrupt(prefix: Path, how: str) -> None:
    idx, bin_ = prefix.with_suffix(".idx"), prefix.with_suffix(".bin")
    data = bytearray(idx.read_bytes())
    if how == "idx_truncated":
        idx.write_bytes(bytes(data[:-5]))
    elif how == "idx_header_only":
        idx.write_bytes(bytes(data[:20]))
    elif how == "idx_empty":
        idx.write_bytes(b"")
    elif how == "bad_magic":
        data[0:3] = b"XYZ"
        idx.write_bytes(bytes(data))
    elif how == "bad_version":
        data[9] = 2
        idx.write_bytes(bytes(data))
    elif how == "bad_dtype":
        data[17] = 9
        idx.write_bytes(bytes(data))
    elif how == "sequence_count":
        data[18] += 1
        idx.write_bytes(bytes(data))
    elif how == "length_changed":
        data[34] ^= 0x01  # first sequence length: pointers no longer line up
        idx.write_bytes(bytes(data))
    elif how == "negative_length":
        data[34:38] = struct.pack("<i", -3)
        idx.write_bytes(bytes(data))
    elif how == "document_index":
        data[-8:] = struct.pack("<q", 1)  # last document index no longer = sequence count
        idx.write_bytes(bytes(data))
    elif how == "bin_truncated":
        bin_.write_bytes(bin_.read_bytes()[:-3])
    elif how == "bin_trailing":
        bin_.write_bytes(bin_.read_bytes() + b"\x00\x00")
    elif how == "bin_missing":
        bin_.unlink()
    elif how == "idx_missing":
        idx.unlink()


@pytest.mark.parametrize(("how", "match"), [
    ("idx_truncated", "truncated or corrupt"),
    ("idx_header_only", "shorter than the 34-byte header"),
    ("idx_empty", "shorter than the 34-byte header"),
    ("bad_magic", "bad magic"),
    ("bad_version", "index version 2"),
    ("bad_dtype", "unknown dtype code 9"),
    ("sequence_count", "truncated or corrupt"),
    ("length_changed", "points to byte"),
    ("negative_length", "negative sequence length at sequence 0"),
    ("document_index", "document indices"),
    ("bin_truncated", "truncated"),
    ("bin_trailing", "trailing data"),
    ("bin_missing", "no such data file"),
    ("idx_missing", "no such index file"),
])
def test_corrupt_or_truncated_pair_is_rejected(tmp_path: Path, tokenized: list[list[int]], how: str,
                                                match: str) -> None:
    prefix = tmp_path / "c"
    write_bins(str(prefix), pack_like_winnow(tokenized[:40], 256), 100277)
    _corrupt(prefix, how)
    name = "c.bin" if how.startswith("bin") else "c.idx"
    with pytest.raises(MegatronFormatError, match=match) as err:
        list(iter_sequences(str(prefix)))
    assert name in str(err.value)
    with pytest.raises(MegatronFormatError):
        read_index(str(prefix))


def test_multimodal_modes_trailer_is_accepted(tmp_path: Path) -> None:
    """Megatron's multimodal datasets append one int8 mode per sequence; those still read."""
    prefix = tmp_path / "mm"
    write_bins(str(prefix), [[[1, 2], [3]]], 100)
    (tmp_path / "mm.idx").write_bytes((tmp_path / "mm.idx").read_bytes() + b"\x00\x01")
    index = read_index(str(prefix))
    assert index.has_modes and [s.tolist() for s in iter_sequences(str(prefix))] == [[1, 2], [3]]


# ----------------------------------------------------------------------------- megatron-core


def test_megatron_core_reads_our_files_and_writes_the_same_bytes(tmp_path: Path,
                                                                  tokenized: list[list[int]]) -> None:
    """megatron-core's IndexedDataset reads what we write (both dtypes, mmap and file reads),
    and its IndexedDatasetBuilder writes byte-identical files from the same content."""
    pytest.importorskip("megatron.core")
    with warnings.catch_warnings():  # megatron-core warns about missing Apex/Transformer Engine
        warnings.simplefilter("ignore")
        import torch
        from megatron.core.datasets.indexed_dataset import (
            DType,
            IndexedDataset,
            IndexedDatasetBuilder,
        )

    for vocab in (60000, 100277):
        bins = [[[t % vocab for t in s] for s in b] for b in pack_like_winnow(tokenized[:200], 512)]
        seqs = [s for b in bins for s in b]
        prefix = str(tmp_path / f"ours{vocab}")
        write_bins(prefix, bins, vocab)
        for mmap in (True, False):
            ds = IndexedDataset(prefix, mmap=mmap)
            assert ds.index.dtype == DType.optimal_dtype(vocab)
            assert len(ds) == len(seqs)
            assert ds.sequence_lengths.tolist() == [len(s) for s in seqs]
            assert np.diff(ds.document_indices).tolist() == [len(b) for b in bins]
            assert [ds[i].tolist() for i in range(len(ds))] == seqs
            assert [a.tolist() for a in ds[2:7]] == seqs[2:7]
        builder = IndexedDatasetBuilder(str(tmp_path / f"mc{vocab}.bin"), dtype=DType.optimal_dtype(vocab))
        for b in bins:
            for s in b:
                builder.add_item(torch.tensor(s))
            builder.end_document()
        builder.finalize(str(tmp_path / f"mc{vocab}.idx"))
        for ext in (".bin", ".idx"):
            assert (tmp_path / f"mc{vocab}{ext}").read_bytes() == Path(prefix + ext).read_bytes()
