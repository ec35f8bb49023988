"""The documentation: a short README, links that resolve, and every setting and command documented."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from askq.cli import build_parser
from common.config import AskqConfig
from common.knowledge import KnowledgeConfig
from common.schedules import ScheduleConfig

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
README_MAX_LINES = 150

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_ROW = re.compile(r"^\|\s*`([^`|]+)`\s*\|\s*([^|]*?)\s*\|")


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _prose(page: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of the page's lines outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield number, line


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces as hyphens."""
    seen: Counter[str] = Counter()
    anchors = set()
    for _, line in _prose(page):
        heading = _HEADING.match(line)
        if heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(2).replace("`", "").lower()).replace(" ", "-")
        anchors.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return anchors


def _relative_links(page: Path) -> Iterator[tuple[int, str]]:
    for number, line in _prose(page):
        for target in _LINK.findall(_INLINE_CODE.sub("", line)):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                yield number, target


def test_readme_is_a_five_minute_page() -> None:
    """README.md stays under 150 lines; the reference lives in docs/."""
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; move reference material to docs/"


def test_every_relative_link_resolves() -> None:
    """Each relative link in README.md and docs/*.md names an existing file, and a heading if it has #."""
    broken = []
    for page in _pages():
        for number, target in _relative_links(page):
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(REPO)}:{number}: {target}"
            if not linked.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{where} (no such heading)")
    assert not broken, "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme_and_the_index() -> None:
    """Each docs/*.md page is reachable from README.md and from docs/README.md."""
    readme = {target.partition("#")[0] for _, target in _relative_links(README)}
    index = {target.partition("#")[0] for _, target in _relative_links(DOCS / "README.md")}
    pages = [page.name for page in sorted(DOCS.glob("*.md")) if page.name != "README.md"]
    assert pages
    assert [name for name in pages if f"docs/{name}" not in readme] == []
    assert [name for name in pages if name not in index] == []


def _documented_defaults(page: Path) -> dict[str, str]:
    """Table rows starting with a `key` cell: key -> the next cell, as written."""
    return {row.group(1): row.group(2) for _, line in _prose(page) if (row := _ROW.match(line)) is not None}


def _leaf_settings(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, default) for every setting of the model, descending into sections."""
    for name, field in model.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            yield from _leaf_settings(section, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field.get_default(call_default_factory=True)


_LITERAL = re.compile(r"`([^`]+)`")


def _differs(shown: str, default: Any) -> bool:
    """Whether a cell holding one `literal` names another value than the default. It is read as YAML,
    as jobs.yaml is (`0.60` is 0.6, `true` is True); prose ("the folder of jobs.yaml") is not compared."""
    literal = _LITERAL.fullmatch(shown)
    if literal is None or not isinstance(default, int | float | str):
        return False
    return bool(yaml.safe_load(literal.group(1)) != default)


def _check_defaults(page: Path, model: type[BaseModel], prefix: str = "") -> list[str]:
    documented = _documented_defaults(page)
    wrong = []
    for key, default in _leaf_settings(model):
        shown = documented.get(f"{prefix}{key}")
        if shown is None:
            wrong.append(f"{prefix}{key}: not in {page.name}")
        elif _differs(shown, default):
            wrong.append(f"{prefix}{key}: {page.name} says {shown}, the default is {default!r}")
    return wrong


def test_every_jobs_yaml_key_is_documented_with_its_default() -> None:
    """docs/configuration.md has a row for each jobs.yaml setting, whose default matches common/config.py."""
    config = DOCS / "configuration.md"
    wrong = [
        problem
        for problem in _check_defaults(config, AskqConfig)
        if not problem.startswith(("job_types:", "schedules:", "knowledge:"))
    ]
    documented = _documented_defaults(config)
    for mapping in ("job_types.NAME.system_prompt", "schedules.NAME.*", "knowledge.NAME.*"):
        if mapping not in documented:
            wrong.append(f"{mapping}: not in configuration.md")
    assert not wrong, "\n".join(wrong)


def test_every_schedule_key_is_documented_with_its_default() -> None:
    """docs/schedules.md has a row for each key of a schedule, whose default matches common/schedules.py."""
    wrong = _check_defaults(DOCS / "schedules.md", ScheduleConfig)
    assert not wrong, "\n".join(wrong)


def test_every_knowledge_key_is_documented_with_its_default() -> None:
    """docs/knowledge.md has a row for each key of a base, whose default matches common/knowledge.py."""
    wrong = _check_defaults(DOCS / "knowledge.md", KnowledgeConfig)
    assert not wrong, "\n".join(wrong)


def test_every_command_is_documented() -> None:
    """Each askq command has its section in docs/commands.md and a row in the README's table."""
    parser = build_parser()
    commands = list(parser._subparsers._group_actions[0].choices or [])  # type: ignore[union-attr]
    reference = {line for _, line in _prose(DOCS / "commands.md")}
    readme = README.read_text(encoding="utf-8")
    missing = [f"docs/commands.md: ## askq {name}" for name in commands if f"## askq {name}" not in reference]
    missing += [f"README.md: `askq {name}" for name in commands if f"`askq {name}" not in readme]
    assert not missing, "\n".join(missing)


def test_every_simulator_flag_is_documented() -> None:
    """docs/simulator.md has a row for each of the simulator's settings, as its `--flag`."""
    from simulator.settings import SimulatorSettings

    flags = {
        flag
        for _, line in _prose(DOCS / "simulator.md")
        if line.startswith("| `--")
        for flag in re.findall(r"`(--[a-z0-9-]+)`", line.split("|")[1])
    }
    missing = [
        f"--{name.replace('_', '-')}"
        for name in SimulatorSettings.model_fields
        if f"--{name.replace('_', '-')}" not in flags
    ]
    assert not missing, f"not in simulator.md: {', '.join(missing)}"
