"""``coach run`` in a subprocess, as the end-to-end tests and scripts/bench_live.py start it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class CoachProcess:
    """``coach run`` in a subprocess, its stderr collected line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        """``args`` after ``coach run``; ``env``: variables set for it beside ours."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        for key in ("PULSE_SINK", "PULSE_SOURCE"):
            env.pop(key, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coach", "run", *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"coach never printed {text!r}; stderr:\n" + "\n".join(self.lines))

    def finish(self, timeout_s: float) -> tuple[int, str]:
        # wait(), not communicate(): that would read stderr too, racing the reader thread.
        # stdout holds a line or two, so its pipe never fills while we wait.
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("coach did not end; stderr:\n" + "\n".join(self.lines)) from None
        self._reader.join(timeout=2)
        assert self.process.stdout is not None
        return self.process.returncode, self.process.stdout.read()

    def kill(self) -> None:
        """End a coach that is still running: Ctrl-C first, so its diagnostics are printed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            self._reader.join(timeout=2)
