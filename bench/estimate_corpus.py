"""The questions the prompt-token estimate is measured on: natural English and Korean from the
repository, text no estimate can bound (random syllables, base64, emoji), and, where the machine has
them, the system's Korean translations as a larger set the estimate was not written against."""

from __future__ import annotations

import ast
import base64
import gettext
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HANGUL = re.compile("[\uac00-\ud7a3]")
KOREAN_WORD = re.compile("[\uac00-\ud7a3]{2,}")
"""Two syllables in a row: a string with none is a pattern's range ("[가-힣]"), not Korean text."""
SYSTEM_TRANSLATIONS = Path("/usr/share/locale/ko/LC_MESSAGES")
"""Debian's Korean message catalogues (coreutils, apt, git, GTK, ...): tens of thousands of short
English strings and their Korean translations, natural text and fragments alike."""


def _paragraphs(path: Path) -> Iterator[str]:
    for paragraph in path.read_text(encoding="utf-8").split("\n\n"):
        if paragraph.strip():
            yield paragraph.strip()


def _example_questions() -> Iterator[str]:
    for path in sorted((REPO / "askq" / "examples").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            yield str(json.loads(line)["question"])


def _korean_literals(folder: Path) -> Iterator[str]:
    """The Korean strings in a folder's Python files (tests' questions, the simulator's filler)."""
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and KOREAN_WORD.search(node.value)
            ):
                yield node.value


def english_questions() -> list[str]:
    """Every paragraph of docs/ without Hangul (prose, tables, code and commands as users paste
    them) and the examples' English questions."""
    texts = [text for path in sorted((REPO / "docs").glob("*.md")) for text in _paragraphs(path)]
    texts += _example_questions()
    return [text for text in texts if not HANGUL.search(text)]


def korean_questions() -> list[str]:
    """The café menu's lines with Hangul, the examples' Korean questions, docs' Korean lines, the
    tests' Korean strings and the simulator's Korean filler."""
    menu = sorted((REPO / "askq" / "examples" / "knowledge" / "menu").glob("*.md"))
    files = menu + sorted((REPO / "docs").glob("*.md"))
    lines = [line for path in files for line in path.read_text(encoding="utf-8").splitlines()]
    texts = [line.strip() for line in lines if HANGUL.search(line)]
    texts += [text for text in _example_questions() if HANGUL.search(text)]
    texts += _korean_literals(REPO / "tests")
    texts += _korean_literals(REPO / "simulator")
    return list(dict.fromkeys(text for text in texts if text.strip()))


def unbounded_texts(seed: int = 22) -> dict[str, list[str]]:
    """Text whose tokens no character class bounds: random Hangul syllables (rare ones take 2 or 3
    tokens), base64 and emoji; 40 of each, 10 to 400 characters."""
    rng = random.Random(seed)
    sizes = [10 + 10 * index for index in range(40)]
    emoji = [chr(code) for code in range(0x1F300, 0x1F650)] + ["👍🏽", "🇰🇷", "❤️‍🔥", "👩‍👩‍👧"]
    return {
        "random Hangul": ["".join(chr(rng.randint(0xAC00, 0xD7A3)) for _ in range(n)) for n in sizes],
        "base64": [base64.b64encode(rng.randbytes(n)).decode() for n in sizes],
        "emoji": ["".join(rng.choice(emoji) for _ in range(n)) for n in sizes],
    }


def system_translations() -> dict[str, list[str]]:
    """The system's Korean catalogues' strings, English originals and Korean translations, distinct;
    empty where the machine has none."""
    english: set[str] = set()
    korean: set[str] = set()
    for path in sorted(SYSTEM_TRANSLATIONS.glob("*.mo")):
        try:
            with path.open("rb") as file:
                catalogue = gettext.GNUTranslations(file)._catalog  # type: ignore[attr-defined]
        except (OSError, UnicodeDecodeError):
            continue  # a catalogue in another encoding: the others suffice
        for original, translation in catalogue.items():
            source = original[0] if isinstance(original, tuple) else original
            if source and source.isascii() and source.strip():
                english.add(source)
            if isinstance(translation, str) and HANGUL.search(translation):
                korean.add(translation)
    return {"English": sorted(english), "Korean": sorted(korean)}
