"""Megatron-LM indexed datasets (``PREFIX.bin`` + ``PREFIX.idx``): a streaming writer and a reader.

Megatron-LM trains from the ``MMapIndexedDataset`` format that its ``tools/preprocess_data.py``
writes (``megatron/core/datasets/indexed_dataset.py``: ``IndexedDatasetBuilder`` /
``_IndexWriter`` / ``_IndexReader``). This module writes and reads that format without
importing Megatron, torch or anything beyond numpy and fsspec, so local paths and
``s3://bucket/key`` work the same way.

Format (all integers little-endian)
-----------------------------------
``PREFIX.bin`` is the token ids of every sequence, back to back, in the index's dtype, with no
header and no separators. ``PREFIX.idx`` is::

    offset        size     field
    0             9        magic b"MMIDIDX\\x00\\x00"
    9             8        version, uint64 = 1
    17            1        dtype code, uint8 (1 uint8, 2 int8, 3 int16, 4 int32, 5 int64,
                           6 float64, 7 float32, 8 uint16)
    18            8        S = sequence count, uint64
    26            8        D = document-index count, uint64 (number of documents + 1)
    34            4*S      sequence lengths in tokens, int32
    34+4S         8*S      sequence pointers: byte offset of each sequence in .bin, int64
    34+12S        8*D      document indices: sequence index at which each document starts,
                           int64; the first is 0 and the last is S
    (34+12S+8D    S        sequence modes, int8: only in multimodal datasets; never written here)

A Megatron *document* is a run of consecutive *sequences*: document ``k`` is sequences
``document_indices[k] .. document_indices[k+1]-1``. ``preprocess_data.py`` writes one sequence
per document, or one per sentence with ``--split-sentences``. The token dtype is chosen as
``DType.optimal_dtype(vocab_size)`` does: uint16 when ``vocab_size < 65500``, else int32.
(The file's dtype code is what readers use; only Megatron's ``--per-dataset-sequences-path``
fast path guesses the dtype from the tokenizer instead, as uint16 up to 65536, so a vocabulary
of 65500..65536 must not use that option.)

How winnow maps packed data onto it
-----------------------------------
The pack stage writes one ``.bin/.idx`` pair per pack task (a group of input shards). Each
packed training sequence (a list of document segments, at most L tokens in all) becomes one
Megatron *document*, and each of its segments one Megatron *sequence*, so both the segment
boundaries (``sequence_lengths``) and the packed bins (``document_indices``) are in the files;
``read_documents`` gives the bins back, ``iter_sequences`` the segments.

How Megatron-LM consumes it
---------------------------
Train with ``--data-path PREFIX [PREFIX ...]`` (each prefix without ``.bin``/``.idx``;
optionally ``W1 PREFIX1 W2 PREFIX2 ...`` to weight them, or ``--data-args-path FILE`` holding
that list), plus ``--split`` and ``--seq-length L``. ``GPTDataset`` (megatron-core 0.16,
``gpt_dataset.py``) treats every *sequence* of the IndexedDataset as a "document": its
train/valid/test split is over sequence indices (``numel_low_level_dataset`` is
``len(sequence_lengths)``), it shuffles those sequences each epoch, concatenates them and cuts
the stream into windows of ``seq_length + 1`` tokens (``add_extra_token_to_sequence``) that
cross sequence boundaries. It never reads ``document_indices`` (BERT/T5 datasets split by
them). So, under GPTDataset:

* the segments survive as units (each segment is read whole and in order), and the EOS token
  winnow appends to a document's last segment is what ``--reset-attention-mask`` /
  ``--reset-position-ids`` / ``--eod-mask-loss`` use to find document ends;
* the packed bins do *not* survive: segments of one bin are shuffled apart and windows are
  cut without regard to them. A trainer that wants winnow's bins as its samples must read
  ``document_indices`` itself (``read_documents``), or the bins must be written as single
  sequences of exactly L tokens (padded with the tokenizer's pad id), which GPTDataset with
  ``--seq-length L`` then returns one per sample (its extra label token is the first token of
  the next, shuffled, bin).

Writes are atomic: both files are written to hidden temp files beside their final names
(the pattern ``storage.remove_stale_temp_files`` cleans up) and renamed into place by
``finish()``: first any old ``.idx`` is removed, then the ``.bin`` and last the ``.idx`` are
renamed, so an ``.idx`` under its final name always describes the ``.bin`` beside it.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import numpy as np

from winnow.storage import StorageOptions, atomic_put, discard, ensure_parent, filesystem, open_binary, temp_path

INDEX_MAGIC = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
HEADER_SIZE = 34  # magic 9 + version 8 + dtype code 1 + sequence count 8 + document count 8
UINT16_VOCAB_LIMIT = 65500  # DType.optimal_dtype: uint16 below this vocabulary size, else int32
INT32_MAX = 2**31 - 1

# Megatron's DType enum (indexed_dataset.py): code -> numpy dtype.
DTYPE_CODES: dict[int, np.dtype[Any]] = {
    1: np.dtype(np.uint8), 2: np.dtype(np.int8), 3: np.dtype(np.int16), 4: np.dtype(np.int32),
    5: np.dtype(np.int64), 6: np.dtype(np.float64), 7: np.dtype(np.float32), 8: np.dtype(np.uint16),
}
CODE_OF_DTYPE = {dt: code for code, dt in DTYPE_CODES.items()}
_READ_CHUNK = 8 << 20

if sys.byteorder != "little":  # the format is little-endian and arrays are written raw
    raise ImportError("winnow.megatron needs a little-endian machine")


class MegatronFormatError(ValueError):
    """A ``.bin/.idx`` pair that is not a valid Megatron indexed dataset (corrupt, truncated)."""


class MegatronWriteError(ValueError):
    """Bad input to ``MegatronWriter`` (token id out of range, empty sequence, misuse)."""


def bin_path(prefix: str) -> str:
    """PREFIX.bin: the tokens."""
    return prefix + ".bin"


def idx_path(prefix: str) -> str:
    """PREFIX.idx: the index."""
    return prefix + ".idx"


def token_dtype(vocab_size: int) -> np.dtype[Any]:
    """The dtype Megatron-LM's ``preprocess_data.py`` picks for a vocabulary: uint16 halves the
    file for vocabularies that fit it."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size <= 0:
        raise MegatronWriteError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    if vocab_size > INT32_MAX + 1:
        raise MegatronWriteError(f"vocab_size {vocab_size} does not fit int32 token ids")
    return np.dtype(np.uint16) if vocab_size < UINT16_VOCAB_LIMIT else np.dtype(np.int32)


class MegatronWriter:
    """Stream sequences into ``PREFIX.bin`` and keep the index in memory (about 4 bytes per
    sequence and 8 per document) until ``finish()`` writes ``PREFIX.idx``.

    Use as a context manager, or call ``finish()`` (success) / ``abort()`` (failure) yourself:
    on an exception inside ``with`` the temp files are removed and nothing appears under the
    final names; leaving the block normally finishes the dataset if ``finish()`` was not called.
    """

    def __init__(self, prefix: str, vocab_size: int, storage_options: StorageOptions = None) -> None:
        self.prefix = prefix
        self.dtype = token_dtype(vocab_size)
        self.vocab_size = int(vocab_size)
        self.storage_options = storage_options
        self.fs, self._bin_final = filesystem(bin_path(prefix), storage_options)
        self._idx_final = filesystem(idx_path(prefix), storage_options)[1]
        ensure_parent(self.fs, self._bin_final)  # local only: s3fs would create a missing bucket
        self._bin_tmp = temp_path(self._bin_final)
        self._idx_tmp = temp_path(self._idx_final)
        self._lengths = array("i")  # int32, as in the .idx
        self._doc_starts = array("q", [0])  # int64 document indices
        self.tokens = 0
        self._closed = False
        self._result: dict[str, Any] | None = None
        self._fh: Any = self.fs.open(self._bin_tmp, "wb")

    # ------------------------------------------------------------------ writing

    @property
    def sequences(self) -> int:
        """Sequences written so far."""
        return len(self._lengths)

    @property
    def documents(self) -> int:
        """Documents closed so far."""
        return len(self._doc_starts) - 1

    def _check_open(self) -> None:
        if self._closed:
            raise MegatronWriteError(f"{self.prefix}: writer is already finished or aborted")

    def _as_tokens(self, tokens: Sequence[int] | np.ndarray) -> np.ndarray:
        try:
            arr = np.asarray(tokens)
        except (OverflowError, ValueError, TypeError) as exc:
            raise MegatronWriteError(f"{self.prefix}: tokens are not a flat list of integer ids ({exc})") from None
        if arr.size == 0:
            raise MegatronWriteError(f"{self.prefix}: empty sequence (sequence {self.sequences}); "
                                     f"Megatron sequences must hold at least one token")
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise MegatronWriteError(f"{self.prefix}: tokens must be a 1-D sequence of integer ids, "
                                     f"got shape {arr.shape} of {arr.dtype}")
        if arr.size > INT32_MAX:
            raise MegatronWriteError(f"{self.prefix}: a sequence of {arr.size} tokens does not fit the "
                                     f"int32 length field")
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= self.vocab_size:
            bad_pos = int(np.flatnonzero((arr < 0) | (arr >= self.vocab_size))[0])
            raise MegatronWriteError(
                f"{self.prefix}: token id {int(arr[bad_pos])} at position {bad_pos} of sequence "
                f"{self.sequences} is outside [0, {self.vocab_size}) (vocab_size {self.vocab_size}, "
                f"dtype {self.dtype})")
        return arr.astype(self.dtype, copy=False)

    def add_sequence(self, tokens: Sequence[int] | np.ndarray) -> None:
        """Append one Megatron sequence (for winnow: one segment of a packed bin)."""
        self._check_open()
        arr = self._as_tokens(tokens)
        self._fh.write(arr.tobytes())
        self._lengths.append(arr.size)
        self.tokens += arr.size

    def end_document(self) -> None:
        """Close the current Megatron document: the sequences added since the last one
        (for winnow: the segments of one packed bin)."""
        self._check_open()
        if self._doc_starts[-1] == self.sequences:
            raise MegatronWriteError(f"{self.prefix}: end_document() with no sequence since the last "
                                     f"document ({self.documents} documents so far)")
        self._doc_starts.append(self.sequences)

    def add_document(self, tokens: Sequence[int] | np.ndarray) -> None:
        """One document holding one sequence: the layout ``preprocess_data.py`` writes."""
        self.add_sequence(tokens)
        self.end_document()

    # ------------------------------------------------------------------ closing

    def _index_bytes(self) -> bytes:
        lengths = np.frombuffer(self._lengths, dtype=np.int32) if self._lengths else np.zeros(0, np.int32)
        pointers = np.zeros(lengths.size, dtype=np.int64)
        if lengths.size > 1:
            np.cumsum(lengths[:-1], dtype=np.int64, out=pointers[1:])
        pointers *= self.dtype.itemsize
        docs = np.frombuffer(self._doc_starts, dtype=np.int64)
        header = INDEX_MAGIC + struct.pack("<QBQQ", INDEX_VERSION, CODE_OF_DTYPE[self.dtype],
                                           lengths.size, docs.size)
        return b"".join((header, lengths.tobytes(), pointers.tobytes(), docs.tobytes()))

    def finish(self) -> dict[str, Any]:
        """Write the index and move both files into place. A document left open (sequences
        after the last ``end_document()``) is closed first. Returns what was written."""
        if self._result is not None:
            return self._result
        self._check_open()
        self._closed = True
        try:
            if self._doc_starts[-1] != self.sequences:
                self._doc_starts.append(self.sequences)
            self._fh.close()
            index = self._index_bytes()
            with self.fs.open(self._idx_tmp, "wb") as fh:
                fh.write(index)
            # An old .idx must not outlive its .bin: remove it before the new .bin lands.
            if self.fs.exists(self._idx_final):
                self.fs.rm_file(self._idx_final)
            atomic_put(self.fs, self._bin_tmp, self._bin_final)
            atomic_put(self.fs, self._idx_tmp, self._idx_final)
        except BaseException:
            self._cleanup()
            raise
        bin_bytes = self.tokens * self.dtype.itemsize
        self._result = {
            "prefix": self.prefix,
            "bin_path": bin_path(self.prefix),
            "idx_path": idx_path(self.prefix),
            "dtype": str(self.dtype),
            "vocab_size": self.vocab_size,
            "sequences": self.sequences,
            "documents": self.documents,
            "tokens": self.tokens,
            "bin_bytes": bin_bytes,
            "idx_bytes": len(index),
            "bytes": bin_bytes + len(index),
        }
        return self._result

    def _cleanup(self) -> None:
        try:
            self._fh.close()
        except Exception:  # noqa: BLE001 - the error that made us abort says more
            pass
        discard(self.fs, self._bin_tmp)
        discard(self.fs, self._idx_tmp)

    def abort(self) -> None:
        """Drop everything written so far; nothing appears under the final names."""
        if self._closed:
            return
        self._closed = True
        self._cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.abort()
        elif self._result is None and not self._closed:
            self.finish()


# ---------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class MegatronIndex:
    """The parsed ``.idx`` of a dataset, checked against the size of its ``.bin``."""

    prefix: str
    dtype: np.dtype[Any]
    sequence_lengths: np.ndarray  # int32, one per sequence
    sequence_pointers: np.ndarray  # int64 byte offsets into .bin
    document_indices: np.ndarray  # int64, documents + 1 entries, first 0, last = sequences
    has_modes: bool  # a multimodal trailer of int8 modes follows (ignored here)

    @property
    def sequences(self) -> int:
        """Number of sequences in the dataset."""
        return int(self.sequence_lengths.size)

    @property
    def documents(self) -> int:
        """Number of documents in the dataset."""
        return int(self.document_indices.size) - 1

    @property
    def tokens(self) -> int:
        """Number of tokens in the dataset."""
        return int(self.sequence_lengths.sum(dtype=np.int64))


def parse_index(data: bytes, name: str = "<index>") -> tuple[np.dtype[Any], np.ndarray, np.ndarray,
                                                              np.ndarray, bool]:
    """Parse and check the bytes of an ``.idx`` file; ``name`` goes into error messages."""
    if len(data) < HEADER_SIZE:
        raise MegatronFormatError(f"{name}: {len(data)} bytes is shorter than the {HEADER_SIZE}-byte header "
                                  f"(truncated or not a Megatron index)")
    if data[:9] != INDEX_MAGIC:
        raise MegatronFormatError(f"{name}: bad magic {data[:9]!r}, expected {INDEX_MAGIC!r} "
                                  f"(not a Megatron MMapIndexedDataset index)")
    version, code, n_seq, n_doc = struct.unpack_from("<QBQQ", data, 9)
    if version != INDEX_VERSION:
        raise MegatronFormatError(f"{name}: index version {version}, only version {INDEX_VERSION} exists")
    if code not in DTYPE_CODES:
        raise MegatronFormatError(f"{name}: unknown dtype code {code} (known: {sorted(DTYPE_CODES)})")
    expected = HEADER_SIZE + 12 * n_seq + 8 * n_doc
    if len(data) == expected:
        has_modes = False
    elif len(data) == expected + n_seq:
        has_modes = True
    else:
        raise MegatronFormatError(f"{name}: {len(data)} bytes, but the header's {n_seq} sequences and "
                                  f"{n_doc} document indices need {expected} (truncated or corrupt)")
    lengths = np.frombuffer(data, dtype="<i4", count=n_seq, offset=HEADER_SIZE)
    pointers = np.frombuffer(data, dtype="<i8", count=n_seq, offset=HEADER_SIZE + 4 * n_seq)
    docs = np.frombuffer(data, dtype="<i8", count=n_doc, offset=HEADER_SIZE + 12 * n_seq)
    if n_seq and int(lengths.min()) < 0:
        raise MegatronFormatError(f"{name}: negative sequence length at sequence "
                                  f"{int(np.flatnonzero(lengths < 0)[0])}")
    itemsize = DTYPE_CODES[code].itemsize
    want = np.zeros(n_seq, dtype=np.int64)
    if n_seq > 1:
        np.cumsum(lengths[:-1], dtype=np.int64, out=want[1:])
    want *= itemsize
    if not np.array_equal(pointers, want):
        bad = int(np.flatnonzero(pointers != want)[0])
        raise MegatronFormatError(f"{name}: sequence {bad} points to byte {int(pointers[bad])}, expected "
                                  f"{int(want[bad])} (sequences are stored back to back)")
    if n_doc == 0 or docs[0] != 0 or docs[-1] != n_seq or (n_doc > 1 and bool(np.any(np.diff(docs) < 0))):
        raise MegatronFormatError(f"{name}: document indices must rise from 0 to the sequence count "
                                  f"{n_seq}; got {n_doc} entries starting {docs[:3].tolist()} and ending "
                                  f"{docs[-3:].tolist()}")
    return DTYPE_CODES[code], lengths, pointers, docs, has_modes


def read_index(prefix: str, storage_options: StorageOptions = None) -> MegatronIndex:
    """Read ``PREFIX.idx`` and check it against ``PREFIX.bin``'s size, so a truncated or
    mismatched pair fails here with the file named rather than later inside a trainer."""
    ipath, bpath = idx_path(prefix), bin_path(prefix)
    fs, ilocal = filesystem(ipath, storage_options)
    try:
        data = fs.cat_file(ilocal)
    except FileNotFoundError:
        raise MegatronFormatError(f"{ipath}: no such index file") from None
    dtype, lengths, pointers, docs, has_modes = parse_index(data, ipath)
    try:
        size = fs.size(filesystem(bpath, storage_options)[1])
    except FileNotFoundError:
        raise MegatronFormatError(f"{bpath}: no such data file (the index {ipath} exists)") from None
    want = int(lengths.sum(dtype=np.int64)) * dtype.itemsize
    if size != want:
        raise MegatronFormatError(f"{bpath}: {size} bytes, but {ipath} describes {want} "
                                  f"({'truncated' if size < want else 'trailing data'})")
    return MegatronIndex(prefix, dtype, lengths, pointers, docs, has_modes)


def _iter_index_sequences(index: MegatronIndex, storage_options: StorageOptions) -> Iterator[np.ndarray]:
    path = bin_path(index.prefix)
    itemsize = index.dtype.itemsize
    with open_binary(path, storage_options) as fh:
        buf = b""
        pos = 0
        for i, n in enumerate(index.sequence_lengths.tolist()):
            need = n * itemsize
            while len(buf) - pos < need:
                chunk = fh.read(max(_READ_CHUNK, need))
                if not chunk:
                    raise MegatronFormatError(f"{path}: ends inside sequence {i} (file shrank while being read)")
                buf = buf[pos:] + chunk
                pos = 0
            yield np.frombuffer(buf, dtype=index.dtype, count=n, offset=pos)
            pos += need


def iter_sequences(prefix: str, storage_options: StorageOptions = None) -> Iterator[np.ndarray]:
    """Every sequence's tokens, in file order, streamed from ``.bin`` (read-only arrays of the
    file's dtype). The index is checked before the first one is yielded."""
    index = read_index(prefix, storage_options)
    return _iter_index_sequences(index, storage_options)


def read_documents(prefix: str, storage_options: StorageOptions = None) -> Iterator[list[np.ndarray]]:
    """Every Megatron document as the list of its sequences (for winnow's output: each packed
    bin as its segments), streamed from ``.bin``."""
    index = read_index(prefix, storage_options)
    return _iter_documents(index, storage_options)


def _iter_documents(index: MegatronIndex, storage_options: StorageOptions) -> Iterator[list[np.ndarray]]:
    seqs = _iter_index_sequences(index, storage_options)
    for count in np.diff(index.document_indices).tolist():
        yield [next(seqs) for _ in range(count)]
