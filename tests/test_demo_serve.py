"""`askq demo --serve`: after the demo its stack stays up behind askq serve, until Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from askq.demo_serve import CONSOLE, SERVING
from tests.helpers import ASKQ, REPO

pytestmark = pytest.mark.timeout(180)


def test_the_demo_serves_its_batches_until_interrupted(tmp_path: Path) -> None:
    """The URL it prints answers /api/batches with the demo's two batches; Ctrl-C stops it all."""
    process = _demo(tmp_path)
    try:
        assert process.stderr is not None
        said = []
        for line in process.stderr:  # the demo's own lines, until it says where it serves
            said.append(line)
            if SERVING in line:
                break
        url = re.search(r"http://127\.0\.0\.1:\d+", said[-1])
        assert url is not None, "".join(said)
        listed = httpx2.get(f"{url.group(0)}/api/batches").json()
        names = sorted(batch["batch"] for batch in listed["data"])
        assert [name.split("-")[0] for name in names] == ["menu_questions", "questions"]
        assert httpx2.get(f"{url.group(0)}/healthz").status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130  # as for any command stopped by Ctrl-C
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def test_the_demo_console_answers_an_upload(tmp_path: Path) -> None:
    """`--console` prints the console's address; its page lists the demo's batches, and a file
    uploaded there is answered by the demo's worker."""
    process = _demo(tmp_path, "--console")
    try:
        assert process.stderr is not None
        said = []
        for line in process.stderr:
            said.append(line)
            if SERVING in line:
                break
        console = next((line for line in said if CONSOLE in line), None)
        assert console is not None, "".join(said)
        url = re.search(r"http://127\.0\.0\.1:\d+/", console)
        assert url is not None, console
        page = httpx2.get(url.group(0))
        assert page.status_code == 200
        assert "menu_questions-" in page.text
        upload = httpx2.post(
            f"{url.group(0)}api/batches", files={"file": ("mine.txt", b"Redis?\n")}, data={"batch": "mine"}
        )
        assert upload.status_code == 201, upload.text
        with httpx2.stream("GET", f"{url.group(0)}api/batches/mine/events", timeout=60) as events:
            lines = list(events.iter_lines())  # the batch stream ends when the batch is done
        assert any(line.startswith("event: end") for line in lines)
        assert httpx2.get(f"{url.group(0)}api/batches/mine").json()["counts"]["succeeded"] == 1
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def test_a_terminated_demo_stops_what_it_started(tmp_path: Path) -> None:
    """SIGTERM (or the terminal closing) stops the demo's redis-server and simulator with it."""
    process = _demo(tmp_path)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if SERVING in line:
                break
        children = _children(process.pid)
        assert len(children) >= 2  # its redis-server and its simulator
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 143
        assert [pid for pid in children if _alive(pid)] == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def test_ctrl_c_at_a_terminal_stops_the_demo_cleanly(tmp_path: Path) -> None:
    """A terminal's Ctrl-C signals the whole foreground group: the demo still ends as interrupted
    (130, no lost-Redis error), its redis-server and simulator stopped by it, not killed under it."""
    process = _demo(tmp_path, own_group=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if SERVING in line:
                break
        children = _children(process.pid)
        os.killpg(process.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C
        said = process.stderr.read()
        assert process.wait(timeout=60) == 130, said
        assert "lost the connection" not in said
        assert "Unclosed" not in said
        assert [pid for pid in children if _alive(pid)] == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited: only its parent's reaping is left


def _demo(folder: Path, option: str = "--serve", *, own_group: bool = False) -> subprocess.Popen[str]:
    """`askq demo --serve 0` (or ``option`` 0) on the simulator and its own Redis, in ``folder``;
    ``own_group``: as a terminal runs it, the leader of its own process group."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.Popen(
        [*ASKQ, "demo", option, "0"], cwd=folder, env=env, stderr=subprocess.PIPE, text=True,
        stdout=subprocess.DEVNULL, process_group=0 if own_group else None,
    )  # fmt: skip


def test_ctrl_c_under_dev_py_ends_without_a_traceback(tmp_path: Path) -> None:
    """`python3 dev.py demo` (the README's command) at a terminal's Ctrl-C: the demo's exit status,
    130, and no KeyboardInterrupt traceback from dev.py's wait."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL")}
    process = subprocess.Popen(
        [sys.executable, str(REPO / "dev.py"), "demo", "--serve", "0"], cwd=tmp_path, env=env,
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, process_group=0,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if SERVING in line:
                break
        os.killpg(process.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C
        said = process.stderr.read()
        assert process.wait(timeout=60) == 130, said
        assert "Traceback" not in said
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
