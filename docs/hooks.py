"""mkdocs hooks (mkdocs.yml `hooks:`).

* docs/deployment.md shows deploy/README.md, which stays where it is (it ships in the wheel and
  `winnow deploy` users read it there): the page's `<!-- include: deploy/README.md -->` line is
  replaced by that file, its headings one level down and its links to files beside it shown as
  paths (they are not pages of the site).
* The configuration reference is checked against the registry: a stale
  docs/configuration-reference.md is a warning, which fails the strict build (`make reference`
  rewrites it).
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r"^<!-- include: (?P<path>[\w./-]+) -->$", re.M)
LINK = re.compile(r"\[(?P<text>[^\]]+)\]\((?P<target>[^)#:\s]+)\)")
log = logging.getLogger("mkdocs.hooks.winnow")


def included(path: str) -> str:
    text = (ROOT / path).read_text("utf-8")
    folder = Path(path).parent
    text = re.sub(r"^(#+) ", r"#\1 ", text, flags=re.M)  # the page's own title stays the only h1

    def as_path(m: re.Match[str]) -> str:
        target = (folder / m["target"]).as_posix()
        return f"{m['text']} (`{target}`)" if m["text"].strip("`") != Path(target).name else f"`{target}`"

    return LINK.sub(as_path, text)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    return INCLUDE.sub(lambda m: included(m["path"]), markdown)


def on_pre_build(config: Any, **_: Any) -> None:
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import gen_reference  # noqa: PLC0415 - docs/ is put on the path just above
    finally:
        sys.path.pop(0)
    if gen_reference.PAGE.read_text("utf-8") != gen_reference.render():
        log.warning("docs/configuration-reference.md is stale (the stage registry changed): run `make reference`")
