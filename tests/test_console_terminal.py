"""The installed `crisisbot console` at a real (pseudo-)terminal, typed at as a person types: Ctrl-D in a
form cancels that form and the prompt comes back; Ctrl-D at the prompt leaves. Only a terminal shows
this honestly: line editing, the prompts and the end-of-file key are the terminal's."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest

CTRL_D = b"\x04"


class Terminal:
    def __init__(self, cwd, env: dict[str, str]):
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(["crisisbot", "console", "--user", "alice"], stdin=slave, stdout=slave,
                                        stderr=slave, cwd=cwd, env=env, start_new_session=True)
        os.close(slave)
        self.seen, self.read_to = "", 0

    def expect(self, text: str, timeout: float = 30.0) -> str:
        """Read until `text` appears; return what the terminal showed since the last expect, up to it."""
        deadline = time.monotonic() + timeout
        while text not in self.seen[self.read_to:]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{text!r} did not appear; the terminal shows:\n{self.seen[self.read_to:]}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the program ended
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{text!r} did not appear before the end:\n{self.seen[self.read_to:]}")
                self.seen += chunk.decode("utf-8", "replace").replace("\r\n", "\n")
        start, self.read_to = self.read_to, self.seen.index(text, self.read_to) + len(text)
        return self.seen[start:self.read_to]

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> int:
        try:
            return self.process.wait(timeout=30)
        finally:
            os.close(self.master)


@pytest.fixture
def terminal(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CRISISBOT_PLAYBOOK",
                                                             "CRISISBOT_LANGUAGE")}
    env.update(TERM="dumb", COLUMNS="200", LINES="50")
    term = Terminal(str(tmp_path), env)
    yield term
    if term.process.poll() is None:
        term.process.kill()
        term.process.wait()


def test_ctrl_d_in_a_form_cancels_the_form_and_the_prompt_comes_back(terminal):
    terminal.expect("#general @alice> ")
    terminal.type(b"/crisis start\r")
    terminal.expect("Title: ")
    terminal.type(b"Charger overheats\r")
    terminal.expect("Type of crisis (")
    terminal.type(CTRL_D)
    cancelled = terminal.expect("#general @alice> ")
    assert "Form cancelled; nothing was saved." in cancelled
    assert "CRISIS-1" not in cancelled

    terminal.type(b"/crisis start sev1 Our account posts spam\r")
    opened = terminal.expect("@alice> ")
    assert "🚨 CRISIS-1: Our account posts spam" in opened  # the first form left nothing behind
    terminal.type(CTRL_D)  # at the prompt: the session ends, cleanly
    assert terminal.close() == 0
