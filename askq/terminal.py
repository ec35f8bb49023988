"""Untrusted text (item ids, questions, answers, provider errors, file names) on its way to a terminal.

Two dangers. Rich parses markup in the strings it is given: an id ``[link=https://evil]x`` becomes a
link, ``[bold red]`` a style, and ``[/]`` raises MarkupError on every ``askq status``. And a terminal
obeys the control characters it is sent: ESC starts CSI and OSC sequences that move the cursor, rewrite
what was shown, retitle the window or plant hyperlinks (``\\x1b]8;;http://evil\\x07``); BEL rings,
backspace and carriage return overwrite; some terminals read the C1 range (``\\x9b`` is a CSI) as
controls; bidi overrides reorder what the eye sees against what is there.

So text from outside is shown, never obeyed: each control becomes a visible stand-in (``␛`` for ESC,
``\\x9b`` for a C1, ``\\u202e`` for a bidi override) so that the reader sees something was there. Newlines
and tabs stay: answers are paragraphs. Cells are ``Text`` objects, which rich neither parses for markup
nor for ``:emoji:`` codes; a string spliced into markup goes through :func:`markup`.
"""

from __future__ import annotations

import os

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from common.untrusted import json_line, visible

__all__ = ["cell", "json_line", "make_console", "markup", "no_color", "visible"]


def markup(text: str) -> str:
    """``text`` made safe to splice into a rich markup string: controls shown, brackets escaped."""
    return escape(visible(text))


def cell(text: str, style: str = "") -> Text:
    """A table cell or title of untrusted text: no markup, no emoji codes, controls shown."""
    return Text(visible(text), style=style)


def no_color() -> bool:
    """NO_COLOR (https://no-color.org), set and not empty, asks for no styling at all."""
    return os.environ.get("NO_COLOR", "") != ""


def make_console(*, stderr: bool = False) -> Console:
    """The consoles askq prints with. Rich honours NO_COLOR for colour only, keeping bold, dim and
    italic; with no colour system rich writes no style escape at all. Emoji codes are off: ids and
    answers may hold ``:name:`` text that is not ours to turn into pictures."""
    return Console(
        stderr=stderr,
        highlight=False,
        emoji=False,
        color_system=None if no_color() else "auto",
    )
