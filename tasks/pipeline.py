"""The assembled pipeline: every stage module of this package, the full config model built
from their sections, and config loading.

Stages register themselves when their module is imported (``@register``); ``discover`` imports
every module of ``winnow.tasks`` (a package such as ``dedup`` registers its stage from its
``__init__``), so a new stage is picked up by adding its file.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from typing import TYPE_CHECKING, Any

from pydantic import Field, create_model

from winnow.config import ConfigError, PipelineConfig, load_yaml_config
from winnow.stage import Stage, by_kind, registered
from winnow.storage import StorageOptions

# Modules of this package that drive stages rather than define them.
_DRIVERS = {"pipeline", "shard"}


def discover() -> list[type[Stage[Any]]]:
    """Import every stage module and package of winnow.tasks; the registry in pipeline order."""
    package = __name__.rsplit(".", 1)[0]
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if info.name not in _DRIVERS and not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
    return registered()


def _build_config_model() -> type[PipelineConfig]:
    sections: dict[str, Any] = {
        s.name: (s.config_model, Field(default_factory=s.config_model, description=s.summary))
        for s in discover() if s.config_model is not None
    }
    model: type[PipelineConfig] = create_model(
        "WinnowConfig", __base__=PipelineConfig, __module__=__name__,
        __doc__="The whole run: run-level settings plus one section per stage.", **sections)
    return model


if TYPE_CHECKING:
    WinnowConfig = PipelineConfig
else:
    WinnowConfig = _build_config_model()


def switchable_stages() -> list[str]:
    """Stages that `--stages` can turn on and off (sources always run: they make the documents)."""
    return [s.name for s in registered() if not s.always_on and s.config_model is not None]


def stage_overrides(stages: list[str]) -> dict[str, Any]:
    """Overrides that run exactly ``stages`` (plus the sources)."""
    known = {s.name for s in registered()}
    unknown = sorted(set(stages) - known)
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}; stages are: {', '.join(s.name for s in registered())}")
    return {f"{name}.enabled": name in stages for name in switchable_stages()}


def load_config(path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None,
                storage_options: StorageOptions = None, stages: list[str] | None = None) -> PipelineConfig:
    """The validated config of a YAML file plus overrides (``{"runner.workers": 4}``); ``stages``
    runs only those stages. One validation: the flow and tasks use the result as it is."""
    merged = dict(overrides or {})
    if stages:
        merged.update(stage_overrides(stages))
        merged["only_stages"] = list(stages)
    return load_yaml_config(WinnowConfig, path, merged, storage_options)


def document_stages() -> list[type[Stage[Any]]]:
    """The per-document stages, in pipeline order."""
    return by_kind("document")


def source_stages() -> list[type[Stage[Any]]]:
    """The stages that read input files."""
    return by_kind("source")


def corpus_stages() -> list[type[Stage[Any]]]:
    """The stages over all shards, in pipeline order (the flow runs them in this order)."""
    return by_kind("corpus")
