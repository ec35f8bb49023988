"""jobs.yaml's knowledge: bases, job types that use them, and their files, refused at load by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import AskqConfig, load_config
from common.errors import ConfigError
from common.knowledge import fill_knowledge

MENU_TYPE = (
    "job_types:\n  menu:\n    system_prompt: |\n      Use only the menu.\n      {knowledge}\n"
    "    knowledge: menu\n    top_k: 3\ndefault_job_type: menu\n"
)
MENU_BASE = 'knowledge:\n  menu:\n    files: "kb/**/*.md"\n'


def _menu_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "kb" / "drinks"
    folder.mkdir(parents=True)
    (folder / "coffee.md").write_text("# Coffee\n\nAmericano 2,000 won.\n", encoding="utf-8")
    return folder


def test_a_base_and_its_job_type_load_with_the_defaults(tmp_path: Path) -> None:
    """A base gets 300-token chunks overlapping by 40 and text-embedding-3-small; top_k is the job type's."""
    _menu_folder(tmp_path)
    config = load_config_text(tmp_path, MENU_BASE + MENU_TYPE)
    base = config.knowledge["menu"]
    assert (base.chunk_tokens, base.chunk_overlap_tokens) == (300, 40)
    assert (base.embedding_model, base.dimensions) == ("text-embedding-3-small", None)
    assert (config.job_types["menu"].knowledge, config.job_types["menu"].top_k) == ("menu", 3)


def load_config_text(tmp_path: Path, text: str) -> AskqConfig:
    path = tmp_path / "jobs.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, check_files=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MENU_TYPE, "job_types.menu.knowledge: unknown knowledge base 'menu' (knowledge: defines none)"),
        (
            MENU_BASE + "job_types:\n  menu:\n    system_prompt: Use the menu.\n    knowledge: menu\n"
            "default_job_type: menu\n",
            "job_types.menu.system_prompt: must contain {knowledge}",
        ),
        (
            MENU_BASE + "job_types:\n  qa:\n    system_prompt: 'Use {knowledge}'\n",
            "job_types.qa.system_prompt: has {knowledge} but the job type names no knowledge base",
        ),
        (
            'knowledge:\n  menu:\n    files: "/etc/**/*.md"\n',
            "knowledge.menu.files: '/etc/**/*.md' must be relative to the root folder",
        ),
        ('knowledge:\n  menu:\n    files: "../kb/*.md"\n', "leaves the root folder"),
        (
            'knowledge:\n  menu:\n    files: "kb/*.md"\n    chunk_tokens: 50\n    chunk_overlap_tokens: 50\n',
            "chunk_overlap_tokens must be smaller than chunk_tokens",
        ),
        ('knowledge:\n  menu:\n    file: "kb/*.md"\n', "knowledge.menu.file: unknown key"),
        ('knowledge:\n  "a b":\n    files: "kb/*.md"\n', "knowledge.a b: a base's name is 1-64 letters"),
    ],
)
def test_bad_knowledge_config_names_its_key(tmp_path: Path, text: str, expected: str) -> None:
    """Each mistake is refused at load, naming the file and the key."""
    _menu_folder(tmp_path)
    with pytest.raises(ConfigError) as refused:
        load_config_text(tmp_path, text)
    assert str(refused.value).startswith(str(tmp_path / "jobs.yaml") + ": ")
    assert expected in str(refused.value)


@pytest.mark.parametrize(
    ("glob", "expected"),
    [
        ("missing/**/*.md", "knowledge.menu.files: the folder 'missing' does not exist"),
        ("kb/**/*.rst", "knowledge.menu.files: 'kb/**/*.rst' matches no .md, .markdown, .txt file"),
        ("kb/**/*", "knowledge.menu.files: 'kb/drinks/logo.png' are not text files"),
        ("kb/**/*.md", "knowledge.menu.files: 'kb/drinks/out.md' lead out of the root folder"),
    ],
)
def test_files_of_a_base_are_checked_at_load(tmp_path: Path, glob: str, expected: str) -> None:
    """A missing folder, a glob matching nothing, another kind of file or a link out are refused."""
    folder = _menu_folder(tmp_path)
    if "*.rst" not in glob:
        (folder / "logo.png").write_bytes(b"\x89PNG")
    if glob == "kb/**/*.md":
        outside = tmp_path.parent / f"{tmp_path.name}-outside.md"
        outside.write_text("secret", encoding="utf-8")
        (folder / "out.md").symlink_to(outside)
    with pytest.raises(ConfigError, match=r"knowledge\.menu\.files") as refused:
        load_config_text(tmp_path, f'knowledge:\n  menu:\n    files: "{glob}"\n')
    assert expected in str(refused.value)


def test_only_a_load_that_asks_checks_the_files(tmp_path: Path) -> None:
    """Workers and most commands load without the files (the index is in Redis); submit's load checks."""
    path = tmp_path / "jobs.yaml"
    path.write_text(MENU_BASE + MENU_TYPE, encoding="utf-8")
    assert load_config(path).knowledge["menu"].files == "kb/**/*.md"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(path, check_files=True)


def test_knowledge_fills_only_its_placeholder() -> None:
    """{knowledge} is replaced; other braces in the prompt stay as written."""
    assert fill_knowledge('JSON like {"a": 1}\n{knowledge}', "menu") == 'JSON like {"a": 1}\nmenu'
