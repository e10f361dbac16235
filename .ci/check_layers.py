"""Import-layer check: core <- filters <- tasks <- flows <- cli.

A module may import from its own layer and the layers below it, never above: the core
(``winnow.*`` other than the four packages and ``winnow.cli``) knows no stage, the filters know
no pipeline, stages know no Prefect flow, and only the CLI imports the flows. Every import
counts, also inside functions and under ``TYPE_CHECKING``; modules of sub-packages (a stage's
own package, ``tasks/dedup/``) are in the layer of their folder, and every package must be one
the wheel ships. Exit 1 listing the violations.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# import package -> folder of the checkout (setuptools package-dir in pyproject.toml)
FOLDERS = {"winnow.filters": "filters", "winnow.tasks": "tasks", "winnow.flows": "flows", "winnow": "winnow"}
LAYERS = ["core", "winnow.filters", "winnow.tasks", "winnow.flows", "winnow.cli"]


def layer_of(module: str) -> int:
    for name in ("winnow.cli", "winnow.flows", "winnow.tasks", "winnow.filters"):
        if module == name or module.startswith(name + "."):
            return LAYERS.index(name)
    return 0


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            # `from winnow import flows` imports a package by name: record it as winnow.flows.
            out += [(node.lineno, f"{name}.{a.name}") for a in node.names
                    if not node.module or node.level or name == "winnow"]
    return out


def unpackaged(found: dict[str, Path]) -> list[str]:
    """Packages of the checkout (a stage's own package such as tasks/dedup/ too) that
    pyproject.toml does not list: setuptools leaves them out of the wheel, and a stage missing
    there is missing from `winnow stages` without an error."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {m for m, path in found.items() if path.name == "__init__.py"}
    return [f"{found[m].relative_to(REPO)}: package {m} is not in pyproject.toml [tool.setuptools] packages"
            for m in sorted(packages - listed)]


def main() -> int:
    problems = []
    found = modules()
    problems += unpackaged(found)
    for module, path in found.items():
        own = layer_of(module)
        for line, name in imports_of(module, path):
            if not (name == "winnow" or name.startswith("winnow.")) and name.split(".")[0] not in (
                    "tasks", "flows", "filters"):
                continue
            if name.split(".")[0] in ("tasks", "flows", "filters"):
                problems.append(f"{path.relative_to(REPO)}:{line}: imports {name!r}: use winnow.{name} "
                                "(one import package)")
                continue
            target = layer_of(name)
            if target > own:
                problems.append(f"{path.relative_to(REPO)}:{line}: {module} ({LAYERS[own]}) imports {name} "
                                f"({LAYERS[target]}), a layer above it")
    for p in problems:
        print(p)
    print(f"layer check: {len(found)} modules, {len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
