"""Untrusted text on the terminal: markup in item ids, control characters in answers and provider errors.

Every test goes the real way: a file submitted with ``askq submit``, answered by ``askq worker --burst``
against the simulator, which answers (``[sim:echo]``) or refuses (``[sim:echo-error]``) with the
question's own hostile text; then the bytes ``askq`` writes, into a pipe or onto a pseudo-terminal.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from tests.conftest import Simulator
from tests.helpers import ASKQ, REPO, askq, on_tty

# A window title, a hyperlink, colour, backspaces, a carriage return that overwrites, a C1 CSI and a
# right-to-left override; then a newline and a tab, which answers need and which stay.
HOSTILE = (
    "title \x1b]0;pwned\x07 link \x1b]8;;http://evil\x07click\x1b]8;;\x07 red \x1b[31mX\x1b[0m "
    "bs\x08\x08 cr\rOVER c1 \x9b2J bidi \u202eevil\u202c\nnext\ttab"
)
SHOWN = (
    "title ␛]0;pwned␇ link ␛]8;;http://evil␇click␛]8;;␇ red ␛[31mX␛[0m "
    "bs␈␈ cr␍OVER c1 \\x9b2J bidi \\u202eevil\\u202c\nnext\ttab"
)
FIRST_LINE, SECOND_LINE = SHOWN.split("\n")
OBEYED = ("\x1b", "\x07", "\x08", "\r", "\x9b", "\u202e")
"""What a terminal would act on: none of it may reach one from the hostile text."""
ITEMS = (
    ("[/]", "[sim:echo]" + HOSTILE),
    ("[bold red]x", "[sim:echo-error]" + HOSTILE),
    ("[link=https://evil]x[/link]", "What is a queue?"),
)
WIDE = {"COLUMNS": "400"}
"""Wide enough that rich wraps no line: the checks read whole lines."""
# What rich itself sends to draw a live progress bar (hide/show the cursor, erase a line, move up).
CURSOR_CONTROL = re.compile(rb"\r?\x1b\[(\?25[lh]|2K|\d*A)")


async def _answered_batch(
    redis: Redis, sim: Simulator, write: Any, name: str = "items.jsonl", *, keep_events: bool = False
) -> Path:
    """The batch answered; with ``keep_events``, its events kept for a replay (``--follow``)."""
    lines = "".join(json.dumps({"id": item, "question": question}) + "\n" for item, question in ITEMS)
    path: Path = write(name, lines)
    submitted = askq("submit", str(path), "--batch", "h")
    assert submitted.returncode == 0, submitted.stderr
    env = (
        {"ASKQ_CONFIG": str(write("keep.yaml", "stream: {keep_ended_events: true}\n"))} if keep_events else {}
    )
    worker = askq("worker", "--burst", env=env)
    assert worker.returncode == 0, worker.stderr
    return path


def _nothing_obeyed(text: str) -> None:
    for control in OBEYED:
        assert control not in text, f"{control!r} reached the output"


def _only_cursor_controls(written: bytes) -> str:
    """The text a terminal was sent once rich's own cursor moves are taken out; no other ESC is left."""
    text = CURSOR_CONTROL.sub(b"", written).decode()
    _nothing_obeyed(text)
    return text


async def test_status_shows_markup_ids_and_a_hostile_file_name_as_text(
    redis: Redis, sim: Simulator, write: Any
) -> None:
    """askq status lists ids like `[/]` literally (no MarkupError, no style, no link) and shows controls."""
    await _answered_batch(redis, sim, write, name="q\x1b]0;pwned\x07.jsonl")
    shown = askq("status", "h", env=WIDE)
    assert shown.returncode == 0, shown.stderr
    assert "h:[/], h:[bold red]x, h:[link=https://evil]x[/link]" in shown.stdout
    assert "q␛]0;pwned␇.jsonl" in shown.stdout
    _nothing_obeyed(shown.stdout)
    styled = askq("status", "h", env={**WIDE, "FORCE_COLOR": "1"})
    assert styled.returncode == 0, styled.stderr
    assert "\x1b[1m" in styled.stdout  # rich styles its own labels...
    assert "h:[/], h:[bold red]x, h:[link=https://evil]x[/link]" in styled.stdout  # ...never an id
    assert "\x1b]8;" not in styled.stdout
    assert "\x1b]0;" not in styled.stdout


async def test_no_color_turns_off_bold_too(redis: Redis, sim: Simulator, write: Any) -> None:
    """NO_COLOR set and not empty: askq status writes no escape at all, even with FORCE_COLOR."""
    await _answered_batch(redis, sim, write)
    for value, styled in (("", True), ("1", False)):
        shown = askq("status", "h", env={**WIDE, "FORCE_COLOR": "1", "NO_COLOR": value})
        assert shown.returncode == 0, shown.stderr
        assert ("\x1b[" in shown.stdout) is styled
        assert "h:[bold red]x" in shown.stdout


async def test_tail_on_a_terminal_shows_controls_and_keeps_newlines_and_tabs(
    redis: Redis, sim: Simulator, write: Any
) -> None:
    """On a tty, askq tail writes the answer and the provider's error with each control made visible."""
    await _answered_batch(redis, sim, write)
    assert on_tty("tail", "h:[/]", env={"NO_COLOR": "1"}) == (0, (SHOWN + "\n").encode())
    status, written = on_tty("tail", "h:[bold red]x", env={"NO_COLOR": "1"})
    assert status == 1
    # A notice goes through rich, which lays a tab out as spaces to the next stop.
    assert written.decode() == f"\nfailed after 1 attempt: HTTP 400: {SHOWN.expandtabs()}\n"


async def test_tail_into_a_file_holds_the_raw_answer_and_shows_notices(
    redis: Redis, sim: Simulator, write: Any
) -> None:
    """Piped, stdout is exactly the stored answer (data), while stderr, a terminal's, shows its controls."""
    await _answered_batch(redis, sim, write)
    # Bytes, not text: text mode would read the answer's \r as a newline.
    tailed = subprocess.run([*ASKQ, "tail", "h:[/]"], capture_output=True, cwd=REPO, timeout=60)
    assert (tailed.returncode, tailed.stdout) == (0, HOSTILE.encode())
    assert json.loads(askq("results", "h").stdout.splitlines()[0])["answer"] == HOSTILE
    failed = askq("tail", "h:[bold red]x", env=WIDE)
    assert (failed.returncode, failed.stdout) == (1, "")
    assert f"failed after 1 attempt: HTTP 400: {SHOWN.expandtabs()}\n" in failed.stderr
    _nothing_obeyed(failed.stderr)


async def test_tail_json_escapes_controls_and_keeps_the_text(
    redis: Redis, sim: Simulator, write: Any
) -> None:
    """tail --json (a job, a batch) writes no raw control, C1 or bidi character; the decoded text is whole."""
    await _answered_batch(redis, sim, write)
    job = askq("tail", "h:[/]", "--json")
    batch = askq("tail", "--batch", "h", "--json")
    for written in (job.stdout, batch.stdout):
        _nothing_obeyed(written)
    events = [json.loads(line) for line in job.stdout.splitlines()]
    assert "".join(event.get("text", "") for event in events if event["type"] == "delta") == HOSTILE
    ended = {
        line["job_id"]: line
        for line in map(json.loads, batch.stdout.splitlines())
        if line["type"] == "result"
    }
    assert ended["h:[/]"]["answer"] == HOSTILE
    assert ended["h:[bold red]x"]["error"] == f"HTTP 400: {HOSTILE}"


async def test_tail_batch_into_a_file_shows_ids_and_controls_as_text(
    redis: Redis, sim: Simulator, write: Any
) -> None:
    """askq tail --batch, piped, with and without --follow: ids as written, every control made visible."""
    await _answered_batch(redis, sim, write, keep_events=True)
    ended = askq("tail", "--batch", "h", env=WIDE)
    assert ended.returncode == 1, ended.stderr
    assert re.search(r"── \[/\] ✓ \(1 attempt, \d+ tokens\)\n" + re.escape(SHOWN + "\n"), ended.stdout)
    assert f"── [bold red]x ✗ failed after 1 attempt: HTTP 400: {SHOWN}\n" in ended.stdout
    assert "── [link=https://evil]x[/link] ✓" in ended.stdout
    followed = askq("tail", "--batch", "h", "--follow", env=WIDE)
    assert followed.returncode == 1, followed.stderr
    assert f"[/] │ {FIRST_LINE}\n" in followed.stdout
    assert f"[/] │ {SECOND_LINE}\n" in followed.stdout
    for written in (ended.stdout, ended.stderr, followed.stdout, followed.stderr):
        _nothing_obeyed(written)


async def test_tail_batch_on_a_terminal_shows_ids_and_controls_as_text(
    redis: Redis, sim: Simulator, write: Any
) -> None:
    """On a tty, tail --batch (and --follow) sends no escape but rich's cursor moves for the bar."""
    await _answered_batch(redis, sim, write, keep_events=True)
    status, written = on_tty("tail", "--batch", "h", env={"NO_COLOR": "1"})
    assert status == 1
    text = _only_cursor_controls(written)
    # The bar is drawn again after each line printed above it: the answer follows it, not its heading.
    assert "── [/] ✓ (1 attempt, " in text
    assert SHOWN.expandtabs() + "\n" in text
    assert f"── [bold red]x ✗ failed after 1 attempt: HTTP 400: {SHOWN.expandtabs()}\n" in text
    status, written = on_tty("tail", "--batch", "h", "--follow", env={"NO_COLOR": "1"})
    assert status == 1
    text = _only_cursor_controls(written)
    assert f"[/] │ {FIRST_LINE}\n" in text
    assert f"[/] │ {SECOND_LINE}\n".expandtabs() in text


async def test_schedule_list_and_history_show_a_hostile_provider_error_as_text(
    redis: Redis, sim: Simulator, tmp_path: Path, write: Any
) -> None:
    """A scheduled run refused with a hostile message: schedule history and list show it, not obey it."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("[sim:echo-error]" + HOSTILE, encoding="utf-8")
    jobs_yaml = write(
        "jobs.yaml",
        "schedules:\n  nightly:\n    cron: '0 2 * * *'\n    timezone: UTC\n    prompt: Digest\n"
        "    source: {kind: files, glob: 'docs/*.md'}\n    output: out\n",
    )
    env = {"ASKQ_CONFIG": str(jobs_yaml), **WIDE}
    ran = askq("schedule", "run", "nightly", "--no-wait", env=env)
    assert ran.returncode == 0, ran.stderr
    worker = askq("worker", "--burst", env=env)
    assert worker.returncode == 0, worker.stderr
    history = askq("schedule", "history", "nightly", env=env)
    assert history.returncode == 0, history.stderr
    assert "failed" in history.stdout
    assert "␛]0;pwned␇" in history.stdout
    _nothing_obeyed(history.stdout)
    listed = askq("schedule", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "failed" in listed.stdout
    _nothing_obeyed(listed.stdout)


def test_demo_table_shows_markup_ids_and_controls_as_text(tmp_path: Path, write: Any) -> None:
    """askq demo on a tty with hostile questions: its live tail and results table obey nothing."""
    lines = "".join(json.dumps({"id": item, "question": question}) + "\n" for item, question in ITEMS)
    questions = write("items.jsonl", lines)
    env = {"NO_COLOR": "1", "COLUMNS": "250", "OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""}
    status, written = on_tty("demo", "--questions", str(questions), env=env, cwd=tmp_path, timeout_s=120)
    text = _only_cursor_controls(written)
    assert status == 0, text
    assert "askq tail items-" in text
    assert f"{SHOWN}\n" in text  # the live tail of the first job, [/]
    assert re.search(r"│ \[/\] +│ succeeded │", text)
    assert re.search(r"│ \[bold red\]x +│ failed +│", text)
    assert "HTTP 400: title ␛]0;pwned␇ link ␛]8;;http://evil␇click" in text


def test_echo_directives_answer_and_refuse_with_the_questions_text(sim: Simulator) -> None:
    """[sim:echo] answers with the question's text byte for byte; [sim:echo-error] refuses with it."""
    status, answer = _chat(sim, "[sim:echo]" + HOSTILE)
    assert (status, answer["choices"][0]["message"]["content"]) == (200, HOSTILE)
    status, refused = _chat(sim, "[sim:echo-error]" + HOSTILE)
    assert (status, refused["error"]["message"]) == (400, HOSTILE)


def _chat(sim: Simulator, question: str) -> tuple[int, dict[str, Any]]:
    body = {"model": "m", "messages": [{"role": "user", "content": question}]}
    request = urllib.request.Request(
        sim.base_url + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)
