"""Benchmark decontamination: find documents that share a long word n-gram with an evaluation set.

The index is built once per run from user-supplied evaluation files (JSONL/Parquet of question +
answer text), saved to one file, and loaded by every worker. A document is contaminated by a
benchmark when one of its word n-grams (13 by default) is also an n-gram of one of that
benchmark's items, after both are normalised the same way.

Normalisation follows datatrove's ``simplify_text`` (``datatrove/pipeline/decont/n_grams.py``,
itself in the GPT-3 / lm-eval line): lower-case; strip diacritics (NFD, drop combining marks);
every number (digits with at most one ``.``/``,`` group, e.g. ``3.14``, ``1,000``) becomes
``0``; punctuation becomes a word break. Two deliberate differences, both cheap and local (the
words of a span do not depend on the text around it, so an item reads the same inside a document):

* datatrove strips its own list of ~100 punctuation characters and then runs spaCy's English
  tokenizer; here every character that is not a letter or digit (``[^\\W_]``: all Unicode
  punctuation and symbols, underscore included) is a word break. So a left single quote
  (U+2018) and ``®`` are stripped (datatrove leaves both glued to the word), and spaCy's tokenizer
  exceptions are not applied (``cannot`` stays one word; spaCy makes ``can not``).
* punctuation is a word break whether it is in datatrove's list or not; combining marks are
  dropped first, so a decomposed accent never becomes a break (datatrove: same words).

On the 1,555 article and book texts of ``benchmarks/decontam.py`` the words equal datatrove's
``simplify_text`` + ``[^\\W_]+`` exactly, and equal its spaCy words for 70% of the documents and
99.8% of the words (the rest: spaCy's ``cannot``/``wont``/``id``/``gonna`` splits and unit
suffixes such as ``0gb``); the benchmark measures the effect on which documents are flagged.

Hashing: each vocabulary word gets a 64-bit hash (blake2b); an n-gram's key is a polynomial
hash of its word hashes modulo 2**64, computed for all windows of a document at once with
prefix sums in numpy. Two different n-grams share a key with probability about 2**-64, as
with datatrove's xxh64 of the joined n-gram (at most 2**-59 for two n-grams that differ by a
swap of two words, the multiplier being 3 mod 8). Expected false matches = (document n-grams
checked) x (index n-grams) / 2**64: about 0.05 documents wrongly flagged in a billion documents
of 1,000 words against a 1M-n-gram index. Document words that appear in no evaluation item cannot
be part of a matching n-gram; windows containing one are skipped without a lookup.

Eval items shorter than ``n`` words: datatrove drops them (they have no n-gram). Here an item
of at least ``min_words`` (default 8, the minimum n of GPT-3's per-benchmark n) but fewer than
``n`` words contributes its whole text as one shorter n-gram, so a short question + answer
copied verbatim is still caught; shorter items are skipped and counted (a whole item of a few
words is a common phrase more often than a copy; 8 is also where GPT-3's n stopped going down).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import posixpath
import re
import sys
import unicodedata
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import fsspec
import numpy as np
import pyarrow.parquet as pq

from winnow.storage import StorageOptions

DEFAULT_N = 13
DEFAULT_MIN_WORDS = 8

#: Columns whose text makes up an eval item, in the order they are concatenated (context before
#: question before answers, so n-grams across the question/answer boundary are indexed too).
TEXT_FIELDS: tuple[str, ...] = (
    "context", "passage", "article", "ctx", "question", "query", "prompt", "problem", "instruction",
    "input", "text", "choices", "options", "endings", "answer", "answers", "target", "targets",
    "solution", "label_text", "output", "completion",
)
BENCHMARK_FIELD = "benchmark"
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")
PARQUET_SUFFIXES = (".parquet", ".pq")

_FORMAT = "winnow-ngram-index/1"
_MASK64 = (1 << 64) - 1
# Odd multiplier (invertible mod 2**64, so prefix sums can be re-based to any window start);
# 3 mod 8 keeps 2-adic valuations of P**d - 1 at <= 5 for d <= 12, so n-grams differing by a
# swap of two words collide with probability <= 2**-59.
_P = 0x9E3779B97F4A7C13  # the golden-ratio constant, odd and 3 mod 8
_Q = pow(_P, -1, 1 << 64)
_BLOCK = 1 << 14  # words per numpy pass: bounds memory on huge documents, gives early exit a step
# datatrove's NUMBERS_PATTERN with re's Unicode \d (= \p{Nd}) and its decimal separators
_NUMBER = re.compile(r"\d+(?:[.,،٫⎖⎗⎘]\d+)?")
# ASCII text, twice as fast again: its letters and digits are [A-Za-z0-9], so one bytes.translate
# lower-cases and turns every other character into a space.
_ASCII_NUMBER = re.compile(r"[0-9]+(?:[.,][0-9]+)?")
_ASCII_TABLE = bytes((c | 0x20) if chr(c).isalnum() else 0x20 for c in range(128)) + b" " * 128


class DecontamError(ValueError):
    """Bad evaluation-set or index input; the message names the file."""


class EvalSetError(DecontamError):
    """An evaluation file that cannot be used (missing, unsupported, no text fields)."""
    pass


class IndexFileError(DecontamError):
    """A saved index that is missing, truncated or not an index."""
    pass


# --------------------------------------------------------------------------- normalisation


@functools.cache
def _char_tables() -> tuple[np.ndarray, np.ndarray]:
    """(combining mark?, letter or digit?) per code point: 2.2 MB, built on the first non-ASCII
    text (about 0.4 s), not at import."""
    chars = [chr(c) for c in range(sys.maxunicode + 1)]
    marks = np.fromiter((unicodedata.category(c) == "Mn" for c in chars), dtype=bool, count=len(chars))
    word = np.fromiter((c.isalnum() for c in chars), dtype=bool, count=len(chars))
    return marks, word


def normalized_words(text: str) -> list[str]:
    """The words n-grams are made of: lower-cased, accents and punctuation removed, numbers as
    ``0``. Every step is local to a few characters, so an eval item copied into a document yields
    the same words inside the document as on its own (the property matching relies on).

    Non-ASCII text goes through numpy on its UTF-32 code points (drop combining marks, blank
    every character that is not ``str.isalnum``, split): the words of ``str.translate`` +
    ``re.findall(r"[^\\W_]+")``, 3x faster."""
    if text.isascii():
        return _ASCII_NUMBER.sub("0", text).encode("ascii").translate(_ASCII_TABLE).decode("ascii").split()
    marks, word = _char_tables()
    nfd = unicodedata.normalize("NFD", _NUMBER.sub("0", text.lower()))
    cp = np.frombuffer(nfd.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    cp = cp[~marks[cp]]
    cp = np.where(word[cp], cp, np.uint32(32))
    return cp.tobytes().decode("utf-32-le", "surrogatepass").split()


def _word_hash(word: str) -> int:
    digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8, person=b"winnow-dc").digest()
    return int.from_bytes(digest, "little") or 1  # 0 marks a word outside the vocabulary


@functools.cache
def _length_salt(k: int) -> np.uint64:
    # Keys of whole short items (k < n words) live in the same array as n-gram keys.
    digest = hashlib.blake2b(b"len%d" % k, digest_size=8, person=b"winnow-dc").digest()
    return np.uint64(int.from_bytes(digest, "little"))


def _poly_key(hashes: Sequence[int]) -> int:
    """The key of one n-gram, with Python ints: what ``_window_keys`` computes for every window."""
    acc = 0
    for h in hashes:
        acc = (acc * _P + h) & _MASK64
    return (acc + int(_length_salt(len(hashes)))) & _MASK64


def _powers(base: int, count: int) -> np.ndarray:
    arr = np.full(count, base, dtype=np.uint64)
    arr[0] = 1
    return np.cumprod(arr, out=arr)  # uint64 products wrap modulo 2**64, as intended


MAX_N = 256
_PPOW = _powers(_P, _BLOCK + MAX_N)
_QPOW = _powers(_Q, _BLOCK + MAX_N)


def _window_keys(tokens: np.ndarray, lengths: Sequence[int]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(k, keys, in-vocabulary mask) of every window of k words, for each k.

    S_i = sum_{j=i}^{i+k-1} t_j Q^j from one prefix sum; multiplying by P^(i+k-1) gives
    sum t_j P^(i+k-1-j), the polynomial hash of the window: a few vector operations per length
    instead of a Python loop over windows. Keys of windows holding an out-of-vocabulary word
    (mask False) are garbage."""
    count = len(tokens)
    prefix = np.zeros(count + 1, dtype=np.uint64)
    np.cumsum(tokens * _QPOW[:count], out=prefix[1:])
    oov = np.zeros(count + 1, dtype=np.int32)
    np.cumsum(tokens == 0, out=oov[1:])
    for k in lengths:
        m = count - k + 1
        if m <= 0:
            continue
        keys = prefix[k:] - prefix[:m]
        keys *= _PPOW[k - 1 : count]
        keys += _length_salt(k)
        yield k, keys, oov[k:] == oov[:m]


# --------------------------------------------------------------------------- eval sets


def _strip_suffixes(name: str) -> tuple[str, str | None]:
    """(benchmark stem, 'jsonl' | 'parquet' | None) of a file name."""
    low = name.lower()
    for comp in COMPRESSION_SUFFIXES:
        if low.endswith(comp):
            low, name = low[: -len(comp)], name[: -len(comp)]
            break
    for suffix, kind in [(s, "jsonl") for s in JSONL_SUFFIXES] + [(s, "parquet") for s in PARQUET_SUFFIXES]:
        if low.endswith(suffix):
            return name[: -len(suffix)], kind
    return name, None


def _expand(path: str, storage_options: StorageOptions) -> list[tuple[str, str]]:
    """(file, benchmark name) pairs: a file is named after its stem, each file of a glob after
    its own stem, and a folder is one benchmark named after the folder (Hugging Face datasets
    ship one benchmark as several shards, ``test-00000-of-00002.parquet``)."""
    fs, root = fsspec.core.url_to_fs(path, **(storage_options or {}))
    proto = path.split("://", 1)[0] + "://" if "://" in path else ""
    if any(c in root for c in "*?["):
        files = [(f, _strip_suffixes(posixpath.basename(f))[0]) for f in sorted(fs.glob(root))
                 if not fs.isdir(f)]
    elif fs.isdir(root):
        name = posixpath.basename(root.rstrip("/"))
        files = [(f, name) for f in sorted(fs.find(root)) if not posixpath.basename(f).startswith((".", "_"))]
    elif fs.exists(root):
        files = [(root, _strip_suffixes(posixpath.basename(root))[0])]
    else:
        raise EvalSetError(f"{path}: no such evaluation file or folder")
    out = []
    for f, name in files:
        full = proto + f if proto and not f.startswith(proto) else f
        if _strip_suffixes(posixpath.basename(f))[1] is None:
            if len(files) == 1:
                raise EvalSetError(f"{full}: unsupported evaluation-set format (expected "
                                   f"{'/'.join(JSONL_SUFFIXES)} [+ {'/'.join(COMPRESSION_SUFFIXES)}] or "
                                   f"{'/'.join(PARQUET_SUFFIXES)})")
            continue  # a README or checksum file beside the shards
        out.append((full, name))
    if not out:
        raise EvalSetError(f"{path}: no .jsonl or .parquet evaluation files found")
    return out


def _read_rows(path: str, storage_options: StorageOptions) -> tuple[list[dict[str, Any]], list[str]]:
    kind = _strip_suffixes(posixpath.basename(path))[1]
    try:
        with fsspec.open(path, "rb", compression="infer", **(storage_options or {})) as f:
            if kind == "parquet":
                table = pq.read_table(f)
                return table.to_pylist(), table.column_names
            rows, columns = [], {}
            for lineno, line in enumerate(io.TextIOWrapper(f, encoding="utf-8"), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise EvalSetError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise EvalSetError(f"{path}:{lineno}: expected one JSON object per line")
                rows.append(row)
                columns.update(dict.fromkeys(row))
            return rows, list(columns)
    except DecontamError:
        raise
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise EvalSetError(f"{path}: cannot read evaluation file ({type(e).__name__}: {e})") from e
    except Exception as e:  # pyarrow raises its own types for a corrupt Parquet file
        raise EvalSetError(f"{path}: cannot read evaluation file ({type(e).__name__}: {e})") from e


def _texts(value: object) -> Iterator[str]:
    """Strings inside a field value: lists of choices, SQuAD-style {"text": [...]} answers, numbers."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        yield str(value)
    elif isinstance(value, dict):
        if "text" in value:
            yield from _texts(value["text"])
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _texts(v)


def load_eval_sets(paths: Iterable[str], storage_options: StorageOptions = None,
                   fields: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Eval items per benchmark, as text, from JSONL(.gz) / Parquet files, folders or globs.

    Why a concatenation: contamination is any copy of the item a model would see at eval time,
    question and answer alike (GPT-3's and lm-eval's definition); n-grams across the boundary
    catch a question copied with its answer. A ``benchmark`` column, where present, names each
    row's benchmark (one file holding several). ``fields`` replaces the auto-detected columns
    (``TEXT_FIELDS`` found in the file, in that order). Rows with no text are skipped."""
    out: dict[str, list[str]] = {}
    for path in paths:
        for file, name in _expand(path, storage_options):
            rows, columns = _read_rows(file, storage_options)
            if fields is not None:
                missing = [f for f in fields if f not in columns]
                if missing:
                    raise EvalSetError(f"{file}: field(s) {', '.join(missing)} not found; "
                                       f"columns: {', '.join(columns) or '(none)'}")
                use = list(fields)
            else:
                use = [f for f in TEXT_FIELDS if f in columns]
                if not use:
                    raise EvalSetError(f"{file}: no question/answer text fields found (looked for "
                                       f"{', '.join(TEXT_FIELDS)}); columns: {', '.join(columns) or '(none)'}"
                                       "; pass fields=[...]")
            for row in rows:
                text = "\n".join(t for f in use for t in _texts(row.get(f)) if t.strip())
                if text:
                    bench = row.get(BENCHMARK_FIELD)
                    out.setdefault(str(bench) if bench not in (None, "") else name, []).append(text)
    return out


# --------------------------------------------------------------------------- index


@dataclass(frozen=True)
class Match:
    """The first contaminated window of a document: which benchmarks, and the words."""

    benchmarks: tuple[str, ...]
    ngram: str
    word_offset: int


@dataclass
class BenchmarkStats:
    """What one benchmark contributed to the index."""
    items: int = 0
    short_items: int = 0  # min_words <= words < n: indexed as one whole-item key
    too_short: int = 0  # fewer than min_words: not indexed
    n_grams: int = 0  # distinct keys


@dataclass
class NGramIndex:
    """Sorted 64-bit n-gram keys with the benchmark of each (a key in two benchmarks appears
    twice), a prefilter of 1-2 bytes per n-gram, and the eval vocabulary's word hashes: 11-12
    bytes per n-gram plus the vocabulary.
    Keys of whole short items sit in their own segment per length, so the lookups of those
    windows search a small array.

    Built once (``build``), saved (``save``) and loaded by each worker (``load``)."""

    n: int
    min_words: int
    benchmarks: tuple[str, ...]
    keys: np.ndarray  # uint64; one sorted segment per window length
    bench_ids: np.ndarray  # uint16, parallel to keys
    vocab: dict[str, int]  # word -> 64-bit hash (non-zero)
    lengths: tuple[int, ...]  # window lengths to check: n, then the short items' lengths
    offsets: tuple[int, ...]  # segment of lengths[i] = keys[offsets[i]:offsets[i + 1]]
    stats: dict[str, BenchmarkStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._segments = {k: (self.offsets[i], self.offsets[i + 1]) for i, k in enumerate(self.lengths)}
        # Prefilter: one bit per top-bits bucket, 8-16 buckets per key (1-2 bytes per n-gram,
        # L2-sized at 1M n-grams). Clean windows pass it with probability <= 1/8 and skip the
        # binary search, which is cache-miss bound on a large index: lookups 3x faster at 1M.
        bits = max(int(np.ceil(np.log2(max(self.keys.size, 1) * 8))), 6)
        self._shift = np.uint64(64 - bits)
        present = np.zeros(1 << bits, dtype=bool)
        present[(self.keys >> self._shift).astype(np.intp)] = True
        self._bitmap = np.packbits(present, bitorder="little")

    # ----------------------------------------------------------------- build / persist

    @classmethod
    def build(cls, eval_sets: Mapping[str, Iterable[str]], n: int = DEFAULT_N,
              min_words: int = DEFAULT_MIN_WORDS) -> NGramIndex:
        """Index every n-gram of every item; items of ``min_words`` to n-1 words as one key each.

        One numpy pass per benchmark over all its items, joined with an out-of-vocabulary
        separator so that no window spans two items."""
        if not 1 <= n <= MAX_N:
            raise ValueError(f"n must be between 1 and {MAX_N}, got {n}")
        if not 1 <= min_words <= n:
            raise ValueError(f"min_words must be between 1 and n={n}, got {min_words}")
        if len(eval_sets) > np.iinfo(np.uint16).max:
            raise ValueError(f"at most {np.iinfo(np.uint16).max} benchmarks per index")
        vocab: dict[str, int] = {}
        names = tuple(sorted(eval_sets))
        by_length: dict[int, list[tuple[np.ndarray, int]]] = {}
        stats: dict[str, BenchmarkStats] = {}
        for bid, name in enumerate(names):
            st = stats[name] = BenchmarkStats()
            flat: list[int] = []
            short: dict[int, list[int]] = {}
            for item in eval_sets[name]:
                st.items += 1
                words = normalized_words(item)
                if len(words) < min_words:
                    st.too_short += 1
                    continue
                hashes = []
                for w in words:
                    h = vocab.get(w)
                    if h is None:
                        h = vocab[w] = _word_hash(w)
                    hashes.append(h)
                if len(words) >= n:
                    flat.extend(hashes)
                    flat.append(0)
                else:
                    st.short_items += 1
                    short.setdefault(len(words), []).append(_poly_key(hashes))
            tokens = np.array(flat, dtype=np.uint64)
            parts = [keys[valid] for start in range(0, max(len(tokens) - n + 1, 0), _BLOCK)
                     for _, keys, valid in _window_keys(tokens[start : start + _BLOCK + n - 1], (n,))]
            if parts:
                by_length.setdefault(n, []).append((np.unique(np.concatenate(parts)), bid))
            for k, ks in short.items():
                by_length.setdefault(k, []).append((np.unique(np.array(ks, dtype=np.uint64)), bid))
        lengths = (n, *sorted((k for k in by_length if k != n), reverse=True))
        keys_out, ids_out, offsets = [], [], [0]
        for k in lengths:
            parts_k = by_length.get(k, [])
            for keys, bid in parts_k:
                stats[names[bid]].n_grams += int(keys.size)
            keys = np.concatenate([p for p, _ in parts_k]) if parts_k else np.zeros(0, np.uint64)
            ids = (np.concatenate([np.full(p.size, b, dtype=np.uint16) for p, b in parts_k]) if parts_k
                   else np.zeros(0, np.uint16))
            order = np.argsort(keys, kind="stable")
            keys_out.append(keys[order])
            ids_out.append(ids[order])
            offsets.append(offsets[-1] + int(keys.size))
        return cls(n=n, min_words=min_words, benchmarks=names, keys=np.concatenate(keys_out),
                   bench_ids=np.concatenate(ids_out), vocab=vocab, lengths=lengths, offsets=tuple(offsets),
                   stats=stats)

    def save(self, path: str, storage_options: StorageOptions = None) -> None:
        """One .npz file (local or any fsspec URL), written to a temp name and renamed, so a
        worker never loads a half-written index."""
        words = list(self.vocab)
        meta = {"format": _FORMAT, "n": self.n, "min_words": self.min_words, "benchmarks": list(self.benchmarks),
                "lengths": list(self.lengths), "offsets": list(self.offsets),
                "stats": {k: vars(v) for k, v in self.stats.items()}}
        buf = io.BytesIO()
        np.savez(buf, keys=self.keys, bench_ids=self.bench_ids,
                 vocab_hashes=np.fromiter(self.vocab.values(), dtype=np.uint64, count=len(words)),
                 vocab_words=np.frombuffer("\n".join(words).encode("utf-8"), dtype=np.uint8),
                 meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8))
        fs, final = fsspec.core.url_to_fs(path, **(storage_options or {}))
        parent, name = posixpath.split(final)
        if parent:
            fs.makedirs(parent, exist_ok=True)
        tmp = posixpath.join(parent, f".{name}.tmp-{uuid.uuid4().hex[:12]}")
        try:
            with fs.open(tmp, "wb") as f:
                f.write(buf.getbuffer())
            fs.mv(tmp, final)
        except BaseException:
            try:
                if fs.exists(tmp):
                    fs.rm_file(tmp)
            except Exception:  # noqa: BLE001 - the original error says more
                pass
            raise

    @classmethod
    def load(cls, path: str, storage_options: StorageOptions = None) -> NGramIndex:
        """Read an index written by ``save``; a missing, truncated or foreign file is an
        ``IndexFileError`` naming it."""
        try:
            with fsspec.open(path, "rb", **(storage_options or {})) as f:
                data = f.read()
        except (OSError, ValueError) as e:
            raise IndexFileError(f"{path}: cannot read n-gram index ({type(e).__name__}: {e})") from e
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes())
                if meta.get("format") != _FORMAT:
                    raise IndexFileError(f"{path}: not a {_FORMAT} file (format {meta.get('format')!r})")
                keys, ids = z["keys"], z["bench_ids"]
                hashes = z["vocab_hashes"].tolist()
                words = z["vocab_words"].tobytes().decode("utf-8").split("\n") if hashes else []
            offsets, lengths = tuple(meta["offsets"]), tuple(meta["lengths"])
            if (len(words) != len(hashes) or keys.shape != ids.shape or keys.dtype != np.uint64
                    or ids.dtype != np.uint16 or len(offsets) != len(lengths) + 1 or offsets[-1] != keys.size):
                raise IndexFileError(f"{path}: inconsistent n-gram index arrays")
            return cls(n=meta["n"], min_words=meta["min_words"], benchmarks=tuple(meta["benchmarks"]), keys=keys,
                       bench_ids=ids, vocab=dict(zip(words, hashes, strict=True)), lengths=lengths, offsets=offsets,
                       stats={k: BenchmarkStats(**v) for k, v in meta["stats"].items()})
        except IndexFileError:
            raise
        except Exception as e:  # zip/npy/json/field errors of a damaged or foreign file
            raise IndexFileError(f"{path}: not a readable n-gram index ({type(e).__name__}: {e})") from e

    # ----------------------------------------------------------------- properties

    @property
    def n_grams(self) -> int:
        """Index entries (distinct n-grams per benchmark, summed)."""
        return int(self.keys.size)

    @property
    def nbytes(self) -> int:
        """Memory held by the index: the arrays plus the vocabulary dict (strings, ints, table)."""
        vocab = sys.getsizeof(self.vocab) + sum(sys.getsizeof(w) + sys.getsizeof(h) for w, h in self.vocab.items())
        return int(self.keys.nbytes + self.bench_ids.nbytes + self._bitmap.nbytes) + vocab

    # ----------------------------------------------------------------- matching

    def _hits(self, words: list[str], first: bool) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(window length, word offsets, positions in ``keys``) of the matching windows, per block
        (in text order) and window length. ``first``: stop after the first block with a hit."""
        shortest = self.lengths[-1]
        if self.keys.size == 0 or len(words) < shortest:
            return
        tokens = np.fromiter(map(self.vocab.get, words, repeat(0)), dtype=np.uint64, count=len(words))
        for start in range(0, len(words) - shortest + 1, _BLOCK):
            found_any = False
            for k, keys, valid in _window_keys(tokens[start : start + _BLOCK + self.n - 1], self.lengths):
                lo, hi = self._segments[k]
                if lo == hi:
                    continue
                if k < self.n and valid.size > _BLOCK:
                    valid[_BLOCK:] = False  # shorter windows starting in the overlap: next block's
                bucket = (keys >> self._shift).astype(np.intp)
                cand = np.flatnonzero(((self._bitmap[bucket >> 3] >> (bucket & 7)) & 1).astype(bool) & valid)
                if cand.size == 0:
                    continue
                query = keys[cand]
                segment = self.keys[lo:hi]
                idx = np.searchsorted(segment, query)
                np.minimum(idx, hi - lo - 1, out=idx)
                hit = np.flatnonzero(segment[idx] == query)
                if hit.size:
                    found_any = True
                    yield k, cand[hit] + start, idx[hit] + lo
            if first and found_any:
                return

    def _benchmark_ids(self, idx: np.ndarray) -> np.ndarray:
        """Benchmark ids of matched keys, one per (window, benchmark). A key in several
        benchmarks is stored once per benchmark, next to each other; searchsorted gives the first."""
        out = [self.bench_ids[idx]]
        last = self.keys.size - 1
        cur = idx
        while cur.size:
            nxt = np.minimum(cur + 1, last)
            cur = nxt[(nxt > cur) & (self.keys[nxt] == self.keys[cur])]
            out.append(self.bench_ids[cur])
        return np.concatenate(out)

    def match(self, text: str, first: bool = False) -> list[str]:
        """Benchmarks sharing an n-gram with ``text`` (sorted; empty when clean). ``first=True``
        is filter mode: it stops at the first hit (a drop needs one), so it may list fewer of
        the benchmarks a document shares n-grams with."""
        found: set[int] = set()
        for _, _, idx in self._hits(normalized_words(text), first):
            found.update(np.unique(self._benchmark_ids(idx)).tolist())
            if first:
                break
        return sorted(self.benchmarks[b] for b in found)

    def match_counts(self, text: str) -> dict[str, int]:
        """Matching windows per benchmark: how much of the document is benchmark text."""
        counts = np.zeros(len(self.benchmarks), dtype=np.int64)
        for _, _, idx in self._hits(normalized_words(text), first=False):
            counts += np.bincount(self._benchmark_ids(idx), minlength=len(self.benchmarks))
        return {self.benchmarks[b]: int(c) for b, c in enumerate(counts) if c}

    def first_match(self, text: str) -> Match | None:
        """The earliest contaminated window (words as normalised), for annotating a document."""
        words = normalized_words(text)
        best: tuple[int, int, int] | None = None
        for k, pos, idx in self._hits(words, first=True):
            i = int(np.argmin(pos))
            if best is None or int(pos[i]) < best[0]:
                best = (int(pos[i]), k, int(idx[i]))
        if best is None:
            return None
        offset, k, i = best
        names = tuple(sorted(self.benchmarks[b] for b in set(self._benchmark_ids(np.array([i])).tolist())))
        return Match(benchmarks=names, ngram=" ".join(words[offset : offset + k]), word_offset=offset)
