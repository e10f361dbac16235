"""Per-language quality settings, FineWeb-2 style, keyed by the language-ID label.

The quality rules are English-tuned; FineWeb-2 re-tuned them per language. This module maps a
LID label (lid.176's ``de``, GlotLID's ``deu_Latn``) to that language's settings: stop words,
thresholds, the word tokenizer, and the rule sets to run, as ``params`` ready for
:func:`winnow.filters.quality.build_rulesets`. Where each setting comes from:

* **FineWeb-2 config** (``data/fineweb2/<name>.yml``, copied from huggingface/fineweb-2
  ``configs/``; commits in ``data/fineweb2/index.yml`` and README.md there): ``dup_line_frac``,
  ``top_n_grams``, ``dup_n_grams`` (Gopher repetition); ``line_punct_thr``, ``new_line_ratio``
  (FineWeb); ``min_avg_word_length``, ``max_avg_word_length``, ``max_non_alpha_words_ratio``,
  ``stopwords`` (Gopher quality). ``language_score`` is FineWeb-2's minimum GlotLID confidence:
  the LID stage applies it to GlotLID labels (:func:`glotlid_language_scores`), never to
  lid.176's, whose scores are on another scale.
* **FineWeb-2 pipeline** (``fineweb-2-pipeline.py``, the same for every language): Gopher
  repetition's paragraph and line-character rules off (``dup_para_frac``, ``dup_para_char_frac``,
  ``dup_line_char_frac`` = 0), FineWeb's short-line rule off (``short_line_thr`` = 999) and
  ``char_duplicates_ratio`` 0.1, ``min_stop_words`` 2, and no C4 rule set; the rule order is
  Gopher repetition, FineWeb, Gopher quality.
* **datatrove 0.10.1 defaults**: every other parameter (e.g. ``min_doc_words`` 50).
* **English** (FineWeb-2 has no English): FineWeb's settings, i.e. datatrove's defaults with
  Gopher's English stop words, plus winnow's C4 setting (no terminal-punctuation rule), all four
  rule sets in FineWeb's order: exactly what winnow's quality stage does today.
* **Word tokenizer**: datatrove's assignment, chosen in :mod:`winnow.filters.word_tokenizers`.
  Languages datatrove splits with plain spaCy use winnow's cached spaCy tokenizer (same tokens);
  Japanese (SudachiPy), Chinese (jieba), Vietnamese (pyvi), Korean (Kiwi) and Thai (PyThaiNLP)
  use datatrove's own tokenizer, whose packages are the ``multilingual`` extra (in the default
  install). Without them (and for Hindi, whose indic-nlp-library is not shipped) a fallback is
  used and the settings that depend on the missing tokenizer are switched off
  (``LanguageSettings.fallback`` says which and why).

A language without settings never meets the English stop-word rule: :func:`settings_for`
gives it datatrove's default thresholds with FineWeb-2's pipeline constants and the stop-word
rule switched off (``min_stop_words: None``), not English stop words.
"""

from __future__ import annotations

import copy
import importlib.resources
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Any

import yaml
from datatrove.pipeline.filters.gopher_quality_filter import (
    STOP_WORDS as GOPHER_STOP_WORDS,
)
from datatrove.utils.word_tokenizers import WordTokenizer

from winnow.filters import word_tokenizers as wt
from winnow.filters.quality import DATATROVE_CLASSES, DEFAULT_PARAMS, RULESETS, RuleSet

DATA_DIR = ("data", "fineweb2")
INDEX_FILE = "index.yml"
ENGLISH = "eng_Latn"

FINEWEB_RULES = RULESETS
FINEWEB2_RULES: tuple[RuleSet, ...] = ("gopher_repetition", "fineweb", "gopher_quality")

# FineWeb-2 config key -> (rule set, datatrove keyword argument).
CONFIG_KEYS: dict[str, tuple[str, str]] = {
    "dup_line_frac": ("gopher_repetition", "dup_line_frac"),
    "top_n_grams": ("gopher_repetition", "top_n_grams"),
    "dup_n_grams": ("gopher_repetition", "dup_n_grams"),
    "line_punct_thr": ("fineweb", "line_punct_thr"),
    "new_line_ratio": ("fineweb", "new_line_ratio"),
    "min_avg_word_length": ("gopher_quality", "min_avg_word_length"),
    "max_avg_word_length": ("gopher_quality", "max_avg_word_length"),
    "max_non_alpha_words_ratio": ("gopher_quality", "max_non_alpha_words_ratio"),
    "stopwords": ("gopher_quality", "stop_words"),
}
INFO_KEYS = ("language_score",)

# What fineweb-2-pipeline.py passes for every language (besides the config values).
PIPELINE_PARAMS: dict[str, dict[str, Any]] = {
    "gopher_repetition": {"dup_para_frac": 0, "dup_line_char_frac": 0, "dup_para_char_frac": 0},
    "fineweb": {"short_line_thr": 999, "char_duplicates_ratio": 0.1},
    "gopher_quality": {"min_stop_words": 2},
    # FineWeb-2 runs no C4; if C4 is run anyway, FineWeb's setting (winnow's default).
    "c4": {"filter_no_terminal_punct": False},
}
STOP_WORD_OFF: dict[str, Any] = {"min_stop_words": None, "stop_words": []}
WORD_LENGTH_OFF: dict[str, Any] = {"min_avg_word_length": None, "max_avg_word_length": None}
NON_ALPHA_OFF: dict[str, Any] = {"max_non_alpha_words_ratio": None}
SWITCHES = {"stop_words": STOP_WORD_OFF, "word_length": WORD_LENGTH_OFF, "non_alpha": NON_ALPHA_OFF}


class LanguageSettingsError(ValueError):
    """A bundled settings file that is missing or malformed, or a tokenizer that cannot load."""


@dataclass(frozen=True, eq=False)  # eq=False: hashable by identity (settings are cached per language)
class LanguageSettings:
    """The quality settings of one language.

    ``params`` is read-only; :meth:`quality_params` gives plain dicts (for ``build_rulesets``
    or to merge a user's overrides on top). ``provenance`` maps ``rule_set.param`` to where its
    value comes from; ``fallback`` says what differs from FineWeb-2 because a tokenizer is
    missing here (None: nothing).
    """

    name: str  # FineWeb-2 config name (eng_Latn for English), or the label for a fallback
    source: str
    stop_words: tuple[str, ...]
    word_tokenizer: str  # "spacy:LANG" (winnow's cached spaCy tokenizer) or "datatrove:NAME"
    datatrove_tokenizer: str  # what datatrove assigns, e.g. "SpaCyTokenizer(de)", "KiwiTokenizer"
    rules: tuple[str, ...]
    params: Mapping[str, Mapping[str, Any]] = field(repr=False)
    provenance: Mapping[str, str] = field(repr=False)
    fallback: str | None = None
    switched_off: tuple[str, ...] = ()  # of "stop_words", "word_length", "non_alpha" (see SWITCHES)
    language_score: float | None = None  # FineWeb-2's GlotLID threshold (the LID stage applies it)

    @property
    def spacy_language(self) -> str | None:
        """The spaCy language for winnow's cached tokenizer, or None if datatrove's is used."""
        kind, _, lang = self.word_tokenizer.partition(":")
        return lang if kind == "spacy" else None

    def quality_params(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
        """``params`` for ``build_rulesets`` as plain dicts (a copy: callers may change it), with a
        user's ``quality.params`` laid over them per rule set, so an explicit setting wins."""
        out = {name: copy.deepcopy(dict(p)) for name, p in self.params.items()}
        for name, extra in (overrides or {}).items():
            out.setdefault(name, {}).update(copy.deepcopy(dict(extra)))
        return out

    def tokenizer(self) -> WordTokenizer:
        """The word tokenizer these settings were made for (one per process and language)."""
        try:
            return wt.make_word_tokenizer(self.word_tokenizer)
        except wt.TokenizerError as exc:
            raise LanguageSettingsError(str(exc)) from None

    @property
    def tokenizer_key(self) -> str:
        """The tokenizer with the versions of the packages that make its words (done-marker keys)."""
        return wt.tokenizer_key(self.word_tokenizer)


# ---------------------------------------------------------------- bundled data


def _data_dir() -> Any:  # importlib.resources Traversable
    return importlib.resources.files(__package__ or "winnow.filters").joinpath(*DATA_DIR)


def _read_yaml(name: str) -> Any:
    path = _data_dir().joinpath(name)
    if not path.is_file():
        raise LanguageSettingsError(f"bundled settings file {'/'.join(DATA_DIR)}/{name} is missing "
                                    f"from the winnow package ({path}); reinstall winnow")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LanguageSettingsError(f"{'/'.join(DATA_DIR)}/{name}: cannot read: {exc}") from None


@dataclass(frozen=True)
class _Index:
    repo: str
    pipeline: str
    commits: Mapping[str, str]
    labels: Mapping[str, str]  # lid.176 label or alias -> config name


@lru_cache(maxsize=1)
def _index() -> _Index:
    raw = _read_yaml(INDEX_FILE)
    where = f"{'/'.join(DATA_DIR)}/{INDEX_FILE}"
    try:
        repo = str(raw["repo"])
        pipeline = f"{raw['pipeline']['path']}@{str(raw['pipeline']['commit'])[:7]}"
        commits, labels = {}, {}
        for name, entry in raw["languages"].items():
            commits[name] = str(entry["commit"])
            for lab in entry["lid176"]:
                labels[str(lab).lower()] = name
        for alias, name in (raw.get("aliases") or {}).items():
            labels[str(alias).lower()] = str(name)
    except (KeyError, TypeError, AttributeError) as exc:
        raise LanguageSettingsError(f"{where}: malformed ({type(exc).__name__}: {exc})") from None
    for name in commits:
        if not _data_dir().joinpath(f"{name}.yml").is_file():
            raise LanguageSettingsError(f"{where} lists {name} but {'/'.join(DATA_DIR)}/{name}.yml is missing "
                                        "from the winnow package; reinstall winnow")
    unknown = sorted(set(labels.values()) - set(commits))
    if unknown:
        raise LanguageSettingsError(f"{where}: aliases point to unknown configs {unknown}")
    return _Index(repo, pipeline, MappingProxyType(commits), MappingProxyType(labels))


def _ngrams(value: Any, where: str) -> tuple[tuple[int, float], ...]:
    try:
        pairs = tuple((int(n), float(f)) for n, f in value)
    except (TypeError, ValueError):
        raise LanguageSettingsError(f"{where}: expected a list of [n, fraction] pairs, got {value!r}") from None
    if not pairs:
        raise LanguageSettingsError(f"{where}: empty")
    return pairs


def load_config(name: str) -> dict[str, Any]:
    """One bundled FineWeb-2 config, validated: its keys, with n-gram lists as tuples."""
    raw = _read_yaml(f"{name}.yml")
    where = f"{'/'.join(DATA_DIR)}/{name}.yml"
    if not isinstance(raw, dict):
        raise LanguageSettingsError(f"{where}: not a mapping")
    missing = sorted(set(CONFIG_KEYS) - set(raw))
    if missing:
        raise LanguageSettingsError(f"{where}: missing field(s) {missing}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in CONFIG_KEYS and key not in INFO_KEYS:
            raise LanguageSettingsError(f"{where}: unknown field {key!r}")
        if key in ("top_n_grams", "dup_n_grams"):
            out[key] = _ngrams(value, f"{where}: field {key}")
        elif key == "stopwords":
            if not isinstance(value, list) or not value or not all(isinstance(w, str) for w in value):
                raise LanguageSettingsError(f"{where}: field stopwords: expected a list of strings")
            out[key] = tuple(value)
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise LanguageSettingsError(f"{where}: field {key}: expected a number, got {value!r}")
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------- settings


def _defaults() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, cls in DATATROVE_CLASSES.items():
        out[name] = {p.name: p.default for p in inspect.signature(cls).parameters.values()
                     if p.name not in ("language", "exclusion_writer") and p.default is not p.empty}
    return out


def _provenance(params: Mapping[str, Mapping[str, Any]], sources: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for name, defaults in _defaults().items():
        for key in defaults:
            dotted = f"{name}.{key}"
            out[dotted] = sources.get(dotted, "datatrove 0.10.1 default")
    for name, p in params.items():
        for key in p:
            out.setdefault(f"{name}.{key}", sources.get(f"{name}.{key}", "winnow"))
    return out


def _switch_off(params: dict[str, dict[str, Any]], sources: dict[str, str], off: tuple[str, ...],
                why: str) -> None:
    for what in off:
        for key, value in SWITCHES[what].items():
            params["gopher_quality"][key] = value
            sources[f"gopher_quality.{key}"] = f"winnow: off ({why.split(':')[0]})"


def _freeze(params: dict[str, dict[str, Any]]) -> Mapping[str, Mapping[str, Any]]:
    return MappingProxyType({k: MappingProxyType(v) for k, v in params.items()})


@cache
def _english() -> LanguageSettings:
    params = copy.deepcopy(DEFAULT_PARAMS)  # FineWeb English: winnow's defaults
    sources = {"c4.filter_no_terminal_punct": "FineWeb (winnow's default C4 setting)"}
    return LanguageSettings(
        name=ENGLISH, source="FineWeb English: datatrove 0.10.1 defaults (Gopher's English stop words)",
        stop_words=tuple(GOPHER_STOP_WORDS), word_tokenizer="spacy:en", datatrove_tokenizer="SpaCyTokenizer(en)",
        rules=FINEWEB_RULES, params=_freeze(params), provenance=MappingProxyType(_provenance(params, sources)))


@cache
def _fineweb2(name: str) -> LanguageSettings:
    index = _index()
    cfg = load_config(name)
    where = f"{index.repo} configs/{name}.yml@{index.commits[name][:7]}"
    params = copy.deepcopy(PIPELINE_PARAMS)
    sources = {f"{rs}.{key}": f"FineWeb-2 pipeline ({index.pipeline})"
               for rs, p in PIPELINE_PARAMS.items() for key in p if rs != "c4"}
    sources["c4.filter_no_terminal_punct"] = "FineWeb (winnow's default C4 setting); FineWeb-2 runs no C4"
    for key, (rs, kwarg) in CONFIG_KEYS.items():
        value = cfg[key]
        params[rs][kwarg] = list(value) if key == "stopwords" else value
        sources[f"{rs}.{kwarg}"] = f"FineWeb-2 config ({where})"
    dt_class, dt_lang = wt.assigned(name)
    choice = wt.choose(name, dt_class, dt_lang)
    if choice.fallback:
        _switch_off(params, sources, choice.switched_off, choice.fallback)
    return LanguageSettings(
        name=name, source=where, stop_words=tuple(cfg["stopwords"]), word_tokenizer=choice.spec,
        datatrove_tokenizer=wt.describe(dt_class, dt_lang), rules=FINEWEB2_RULES, params=_freeze(params),
        provenance=MappingProxyType(_provenance(params, sources)), fallback=choice.fallback,
        switched_off=choice.switched_off if choice.fallback else (), language_score=cfg.get("language_score"))


def canonical_name(label: str) -> str | None:
    """The settings name of a LID label (``de``, ``__label__de``, ``deu_Latn``), or None."""
    lab = label.strip().removeprefix("__label__")
    if lab.lower() in ("en", "eng", "eng_latn"):
        return ENGLISH
    index = _index()
    if lab in index.commits:
        return lab
    return index.labels.get(lab.lower())


def language_settings(label: str) -> LanguageSettings | None:
    """The settings of the language a LID label names, or None when none are bundled.

    Why None rather than English settings: the English stop-word rule drops nearly every
    non-English document, so a caller must choose (see :func:`settings_for`)."""
    name = canonical_name(label)
    if name is None:
        return None
    return _english() if name == ENGLISH else _fineweb2(name)


@lru_cache(maxsize=256)
def fallback_settings(label: str) -> LanguageSettings:
    """Settings for a language without bundled ones: datatrove's default thresholds with
    FineWeb-2's pipeline constants and **no stop-word rule** (English stop words would drop
    every document of the language). The tokenizer is datatrove's assignment when it is plain
    spaCy, else spaCy's multi-language tokenizer."""
    lab = label.strip().removeprefix("__label__")
    params = copy.deepcopy(PIPELINE_PARAMS)
    sources = {f"{rs}.{key}": "FineWeb-2 pipeline (same for every language)"
               for rs, p in PIPELINE_PARAMS.items() for key in p if rs != "c4"}
    sources["c4.filter_no_terminal_punct"] = "FineWeb (winnow's default C4 setting); FineWeb-2 runs no C4"
    why = f"no bundled settings for {lab!r}: datatrove's default thresholds, stop-word rule off"
    _switch_off(params, sources, ("stop_words",), why)
    dt_class, dt_lang = wt.assigned(lab)
    spec = f"spacy:{dt_lang}" if dt_class == "SpaCyTokenizer" and dt_lang not in ("ja", "zh", "vi") \
        and wt.spacy_has(dt_lang) else "spacy:xx"
    return LanguageSettings(
        name=lab, source="fallback: datatrove 0.10.1 defaults + FineWeb-2 pipeline constants", stop_words=(),
        word_tokenizer=spec, datatrove_tokenizer=wt.describe(dt_class, dt_lang), rules=FINEWEB2_RULES,
        params=_freeze(params), provenance=MappingProxyType(_provenance(params, sources)), fallback=why,
        switched_off=("stop_words",))


def settings_for(label: str | None) -> LanguageSettings:
    """The settings to use for a document with this LID label: its language's, else the
    fallback (never English stop words for a non-English label). ``None``/``und``: fallback."""
    found = language_settings(label) if label else None
    return found if found is not None else fallback_settings(label or "und")


def supported_languages() -> list[str]:
    """lid.176 labels with bundled settings (GlotLID names such as ``deu_Latn`` work too)."""
    return sorted({"en", *(lab for lab in _index().labels if "_" not in lab)})


def bundled_configs() -> list[str]:
    """The FineWeb-2 config names bundled (``deu_Latn``, ...), English excluded."""
    return sorted(_index().commits)


def glotlid_language_scores() -> dict[str, float]:
    """FineWeb-2's minimum ``language_score`` per GlotLID label (``deu_Latn``: 0.821, ...): the
    labels are FineWeb-2's config names, which are GlotLID's labels. Aliases get none: FineWeb-2
    kept a document by the score of the very label it filtered on."""
    return {name: float(score) for name in bundled_configs()
            if (score := _fineweb2(name).language_score) is not None}
