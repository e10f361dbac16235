"""Which word tokenizer each language gets: datatrove's assignment, as FineWeb-2 filtered with it.

datatrove (``datatrove/assets/tokenizer_assignment.csv``, read through its own
``load_tokenizer_assignments``) splits most languages with plain spaCy; those get winnow's cached
spaCy tokenizer (the same tokens, faster). Chinese (jieba), Japanese (SudachiPy), Vietnamese (pyvi),
Korean (Kiwi), Thai (PyThaiNLP) and Hindi (indic-nlp) need packages of their own: the first five
are winnow's ``multilingual`` extra (in the default install), and with them datatrove's own
tokenizer class is used, unchanged. Where a package is missing (a minimal install), a stated
fallback is used and the quality settings that depend on the missing words are switched off.

:func:`tokenizer_key` names a tokenizer with the versions of the packages that make its words, for
the quality stage's done-marker key: a different segmenter (or dictionary) gives other words.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import threading
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from types import MappingProxyType

from datatrove.utils.word_tokenizers import WordTokenizer, load_tokenizer_assignments, load_word_tokenizer

from winnow.filters.words import CachedSpacyTokenizer, import_spacy_without_torch

EXTRA = "multilingual"  # pip install 'winnow[multilingual]'
_INSTALL = f"(install winnow[{EXTRA}])"

# Distributions whose code or data make a tokenizer's words, per datatrove class (and spaCy
# language): their versions go into tokenizer_key.
_SPACY_NEEDS: dict[str, tuple[str, ...]] = {"ja": ("sudachipy", "sudachidict-core"), "zh": ("jieba",),
                                            "vi": ("pyvi",)}
_CLASS_NEEDS: dict[str, tuple[str, ...]] = {"KiwiTokenizer": ("kiwipiepy", "kiwipiepy-model"),
                                            "ThaiTokenizer": ("pythainlp",),
                                            "IndicNLPTokenizer": ("indic-nlp-library",)}
# Import names of those distributions (looked up without importing them).
_MODULES = {"sudachipy": "sudachipy", "sudachidict-core": "sudachidict_core", "jieba": "jieba", "pyvi": "pyvi",
            "kiwipiepy": "kiwipiepy", "kiwipiepy-model": "kiwipiepy_model", "pythainlp": "pythainlp",
            "indic-nlp-library": "indicnlp"}
# Where a segmenter is missing: the fallback, why, and the Gopher quality checks switched off
# because their statistics mean nothing on those words (see multilingual.SWITCHES).
_FALLBACKS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "ja": ("spacy:zh", "SudachiPy + SudachiDict-core not installed: every character is a word (spaCy's zh "
                       f"character segmentation) instead of Sudachi words {_INSTALL}", ()),
    "zh": ("spacy:zh", f"jieba not installed: spaCy's character segmentation instead of jieba words {_INSTALL}", ()),
    "vi": ("spacy:xx", f"pyvi not installed: syllables (whitespace) instead of pyvi words {_INSTALL}", ()),
    "KiwiTokenizer": ("spacy:xx", "kiwipiepy<0.22 not installed: whitespace words (eojeol); FineWeb-2's Korean stop "
                                  "words are Kiwi morphemes that such words never equal, so the stop-word rule is "
                                  f"off {_INSTALL}", ("stop_words",)),
    "ThaiTokenizer": ("spacy:xx", "PyThaiNLP not installed: Thai is not split into words (whitespace separates "
                                  "phrases), so Gopher quality's word statistics are off: stop words, word length, "
                                  f"non-alphabetic words {_INSTALL}", ("stop_words", "word_length", "non_alpha")),
}


class TokenizerError(ValueError):
    """A word tokenizer that cannot be loaded or is unknown."""


@dataclass(frozen=True)
class Choice:
    """The tokenizer a language gets here: ``spec`` (``spacy:LANG`` or ``datatrove:NAME``), why it
    differs from datatrove's (None: it does not), and the settings switched off because of that."""
    spec: str
    fallback: str | None = None
    switched_off: tuple[str, ...] = ()


@lru_cache(maxsize=1)
def assignments() -> MappingProxyType[str, tuple[str, str]]:
    """datatrove's language -> (tokenizer class, its language argument), with datatrove's keys
    (``deu_Latn``, ``deu``, ``de``). Its factories are ``partial(factory, class, argument)``."""
    try:
        return MappingProxyType({lang: tuple(f.args) for lang, f in load_tokenizer_assignments().items()})
    except (OSError, KeyError, ValueError, AttributeError) as exc:
        raise TokenizerError(f"cannot read datatrove's tokenizer assignments: {exc}") from None


def assigned(label: str) -> tuple[str, str]:
    """(datatrove class, language argument) for a label; ("", "") when datatrove assigns none."""
    return assignments().get(label, ("", ""))


def describe(dt_class: str, dt_lang: str) -> str:
    return f"{dt_class}({dt_lang})" if dt_lang else dt_class or "none assigned"


def _have(*distributions: str) -> bool:
    """Whether distributions are installed, without importing them."""
    return all(importlib.util.find_spec(_MODULES.get(d, d)) is not None for d in distributions)


@lru_cache(maxsize=1)
def _spacy_lang_dir() -> Path | None:
    spec = importlib.util.find_spec("spacy")  # top-level: found, not imported
    return Path(spec.origin).parent / "lang" if spec is not None and spec.origin else None


def spacy_has(lang: str) -> bool:
    """Whether spaCy ships a language, looked up on disk: ``find_spec("spacy.lang.x")`` would
    import spaCy, and with it torch through thinc (seconds, hundreds of MB per process)."""
    folder = _spacy_lang_dir()
    return bool(lang) and folder is not None and (folder / lang / "__init__.py").is_file()


def _kiwi_usable() -> bool:
    # datatrove 0.10.1 asks Kiwi for its "sbg" model, which kiwipiepy dropped in 0.22.
    if not _have("kiwipiepy", "kiwipiepy-model"):
        return False
    try:
        major, minor = (int(x) for x in importlib.metadata.version("kiwipiepy").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) < (0, 22)


def choose(name: str, dt_class: str, dt_lang: str) -> Choice:
    """The tokenizer for FineWeb-2 config ``name`` whose datatrove assignment is ``dt_class(dt_lang)``."""
    if dt_class == "SpaCyTokenizer":
        if dt_lang in _SPACY_NEEDS:
            if _have(*_SPACY_NEEDS[dt_lang]):
                return Choice(f"datatrove:{name}")
            return Choice(*_FALLBACKS[dt_lang])
        if spacy_has(dt_lang):
            return Choice(f"spacy:{dt_lang}")
        return Choice("spacy:xx", f"spaCy has no language {dt_lang!r}: spaCy's multi-language tokenizer")
    if dt_class in _CLASS_NEEDS:
        usable = _kiwi_usable() if dt_class == "KiwiTokenizer" else _have(*_CLASS_NEEDS[dt_class])
        if usable:
            return Choice(f"datatrove:{name}")
        if dt_class in _FALLBACKS:
            return Choice(*_FALLBACKS[dt_class])
        lang = dt_lang if spacy_has(dt_lang) else "xx"
        return Choice(f"spacy:{lang}", f"indic-nlp-library not installed: spaCy's {lang} tokenizer (whitespace and "
                                       "punctuation, like indic-nlp's trivial tokenizer)")
    return Choice("spacy:xx", f"datatrove's {dt_class or 'missing'} tokenizer is not supported here: spaCy's "
                              "multi-language tokenizer")


@cache
def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def tokenizer_key(spec: str) -> str:
    """``spec`` with the versions of what makes its words, e.g. ``datatrove:cmn_Hani
    SpaCyTokenizer(zh) jieba==0.42.1 spacy==3.8.18 datatrove==0.10.1``."""
    kind, _, lang = spec.partition(":")
    dists: tuple[str, ...] = ("spacy",)
    what = ""
    if kind == "datatrove":
        dt_class, dt_lang = assigned(lang)
        what = " " + describe(dt_class, dt_lang)
        needs = _SPACY_NEEDS.get(dt_lang, ()) if dt_class == "SpaCyTokenizer" else _CLASS_NEEDS.get(dt_class, ())
        dists = (*needs, *(("spacy",) if dt_class == "SpaCyTokenizer" else ()), "datatrove")
    return spec + what + "".join(f" {d}=={_version(d)}" for d in dists)


class _MemoTokenizer(WordTokenizer):
    """datatrove's tokenizer, remembering the last text's words: the rule sets of one document
    then tokenize it once (winnow's cached spaCy tokenizer does the same)."""

    def __init__(self, inner: WordTokenizer) -> None:
        super().__init__(inner.language)
        self.inner = inner
        self._memo = threading.local()

    def word_tokenize(self, text: str) -> list[str]:
        memo = self._memo
        if getattr(memo, "text", None) is text:
            return memo.words
        words = self.inner.word_tokenize(text)
        memo.text, memo.words = text, words
        return words

    def sent_tokenize(self, text: str) -> list[str]:
        return self.inner.sent_tokenize(text)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return self.inner.span_tokenize(text)


@lru_cache(maxsize=32)
def make_word_tokenizer(spec: str) -> WordTokenizer:
    """A word tokenizer from a spec, once per process (its caches make it fast).

    ``spacy:LANG``: winnow's cached spaCy tokenizer; ``datatrove:NAME``: datatrove's own
    tokenizer for that language, checked on a probe sentence so a broken install fails here.
    """
    kind, _, lang = spec.partition(":")
    if kind == "spacy" and lang:
        try:
            return CachedSpacyTokenizer(lang)
        except (ImportError, OSError, ValueError) as exc:
            raise TokenizerError(f"word tokenizer {spec}: {exc}") from None
    if kind == "datatrove" and lang:
        try:
            import_spacy_without_torch()  # datatrove's spaCy tokenizers import spaCy; keep torch out
            tok = load_word_tokenizer(lang)
            tok.word_tokenize("probe 1 2 3.")
        except Exception as exc:  # noqa: BLE001 - third-party tokenizers raise anything on a bad install
            raise TokenizerError(f"word tokenizer {spec} (datatrove's): {type(exc).__name__}: {exc}") from None
        return _MemoTokenizer(tok)
    raise TokenizerError(f"unknown word tokenizer {spec!r} (expected spacy:LANG or datatrove:NAME)")

