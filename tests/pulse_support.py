"""A private PulseAudio with null sinks, for end-to-end tests through real PortAudio.

Layout (see DESIGN.md, "Virtual audio for tests"):
- ``coach_out``: the coach's speaker; record ``coach_out.monitor`` to hear what it played.
- ``coach_mic``: the test's "user" plays into it; ``coach_mic.monitor`` is the coach's
  microphone (the default source).

The ALSA ``pulse``/``default`` devices map to the default sink/source at the moment a stream
is opened; ``pulse_target(sink=..., source=...)`` points them elsewhere for one open.

Use the session fixture ``pulse`` (import it into the test module). It starts the server as
the current user (root included) in user mode, or reuses one started by ``scripts/pulse-up``
(when ``PULSE_SERVER`` already answers and has both sinks), sets the environment for this
process and its subprocesses, and re-initialises PortAudio so it sees the new devices.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SINK_OUT = "coach_out"
SINK_MIC = "coach_mic"
SOURCE_OUT_MONITOR = f"{SINK_OUT}.monitor"
SOURCE_MIC = f"{SINK_MIC}.monitor"
SAMPLE_RATE_HZ = 44_100
"""The null sinks' rate (also the server's default)."""

_ENV_KEYS = ("XDG_RUNTIME_DIR", "PULSE_RUNTIME_PATH", "PULSE_SERVER", "PULSE_SINK", "PULSE_SOURCE")


def pulse_config(socket: Path) -> str:
    """The server's whole start-up script: a socket anyone may use and two null sinks."""
    def sink(name: str) -> str:
        return (
            f"load-module module-null-sink sink_name={name} rate={SAMPLE_RATE_HZ} "
            f"sink_properties=device.description={name}"
        )
    return "\n".join(
        [
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={socket}",
            sink(SINK_OUT),
            sink(SINK_MIC),
            f"set-default-sink {SINK_OUT}",
            f"set-default-source {SOURCE_MIC}",
            "",
        ]
    )


@dataclass
class PulseServer:
    """A running PulseAudio and the environment that reaches it."""

    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    root: Path | None = None
    log_path: Path | None = None
    _owned_root: bool = field(default=False, repr=False)

    def pactl(self, *args: str, timeout_s: float = 5.0) -> str:
        """Run pactl against this server; returns stdout."""
        done = subprocess.run(
            ["pactl", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )
        return done.stdout

    def answers(self) -> bool:
        """True when ``pactl info`` gets an answer."""
        try:
            self.pactl("info", timeout_s=2.0)
        except (subprocess.SubprocessError, OSError):
            return False
        return True

    def sinks(self) -> list[str]:
        """Names of the sinks the server has."""
        lines = self.pactl("list", "short", "sinks").splitlines()
        return [line.split("\t")[1] for line in lines if "\t" in line]

    def log(self) -> str:
        """The server's log, for failure messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Stop the server (if we started it) and remove its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._owned_root and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


def pulse_missing_reason() -> str:
    """Why a private PulseAudio cannot be started here ('' when it can)."""
    for tool in ("pulseaudio", "pactl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install pulseaudio pulseaudio-utils)"
    return ""


def start_pulse(root: Path | None = None, timeout_s: float = 10.0) -> PulseServer:
    """Start a private PulseAudio in user mode (root allowed) and wait until it answers."""
    owned = root is None
    # A short path: unix socket paths are limited to ~108 bytes.
    base = Path(tempfile.mkdtemp(prefix="coach-pulse-")) if root is None else root
    runtime = base / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    socket = runtime / "native"
    config = base / "default.pa"
    config.write_text(pulse_config(socket))
    log_path = base / "pulse.log"
    env = {
        "XDG_RUNTIME_DIR": str(runtime),
        "PULSE_RUNTIME_PATH": str(runtime),
        "PULSE_SERVER": f"unix:{socket}",
    }
    child_env = {**os.environ, **env, "HOME": str(base)}
    for key in ("PULSE_SINK", "PULSE_SOURCE"):
        child_env.pop(key, None)
    process = subprocess.Popen(
        [
            "pulseaudio",
            "--daemonize=no",
            "--system=false",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--use-pid-file=false",
            "--log-target=file:" + str(log_path),
            "-n",
            "-F",
            str(config),
        ],
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = PulseServer(env, process, base, log_path, owned)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if server.answers():
            return server
        time.sleep(0.05)
    log = server.log()
    server.stop()
    raise RuntimeError(f"PulseAudio did not start within {timeout_s:g} s:\n{log}")


def reuse_running() -> PulseServer | None:
    """A server from ``scripts/pulse-up`` already in the environment, if it has our sinks."""
    if "PULSE_SERVER" not in os.environ:
        return None
    env = {key: os.environ[key] for key in _ENV_KEYS[:3] if key in os.environ}
    server = PulseServer(env)
    if not server.answers():
        return None
    try:
        sinks = server.sinks()
    except subprocess.SubprocessError:
        return None
    return server if {SINK_OUT, SINK_MIC} <= set(sinks) else None


def _refresh_portaudio() -> None:
    """PortAudio enumerates devices once; make it look again with the new environment."""
    import sounddevice

    sounddevice._terminate()
    sounddevice._initialize()


def use_server(server: PulseServer) -> None:
    """Point this process (and what it starts) at ``server``: its address, the default sink
    and source (no PULSE_SINK / PULSE_SOURCE left over), and PortAudio looking again."""
    os.environ.update(server.env)
    for key in ("PULSE_SINK", "PULSE_SOURCE"):
        os.environ.pop(key, None)
    _refresh_portaudio()


@contextlib.contextmanager
def running_pulse() -> Iterator[PulseServer]:
    """For a benchmark: the server of ``scripts/pulse-up`` if it is up, else a private one
    (stopped at the end); this process uses it."""
    server = reuse_running()
    owned = server is None
    if server is None:
        server = start_pulse()
    try:
        use_server(server)
        yield server
    finally:
        if owned:
            server.stop()


@contextlib.contextmanager
def pulse_target(*, sink: str | None = None, source: str | None = None) -> Iterator[None]:
    """Point the ALSA ``pulse`` device at ``sink``/``source`` for streams opened inside.

    libpulse reads PULSE_SINK / PULSE_SOURCE when a stream connects, so only the opening
    has to happen inside the block.
    """
    saved = {key: os.environ.get(key) for key in ("PULSE_SINK", "PULSE_SOURCE")}
    try:
        if sink is not None:
            os.environ["PULSE_SINK"] = sink
        if source is not None:
            os.environ["PULSE_SOURCE"] = source
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def echo_leak(server: PulseServer, volume_pct: int, latency_ms: int) -> Iterator[None]:
    """Leak what the coach plays (``coach_out``) into its microphone (``coach_mic``), quieter
    and ``latency_ms`` late: the room's echo of the coach's own voice.

    module-loopback normally keeps its latency steady by resampling adaptively, which makes
    the echo path drift by fractions of a sample all the time; no room does that, and an
    echo canceller cannot follow it (measured: 3-12 dB removed instead of 20-40 dB). Both
    null sinks run on one clock, so ``adjust_time=0`` turns the adaptation off and the echo
    path stays fixed, as a room's does.
    """
    module = server.pactl(
        "load-module",
        "module-loopback",
        f"source={SOURCE_OUT_MONITOR}",
        f"sink={SINK_MIC}",
        f"latency_msec={latency_ms}",
        "adjust_time=0",
        "source_dont_move=true",
        "sink_dont_move=true",
    ).strip()
    try:
        for line in server.pactl("list", "short", "sink-inputs").splitlines():
            fields = line.split("\t")  # index, sink, client, driver, format
            if len(fields) > 3 and fields[3] == "module-loopback.c":
                server.pactl("set-sink-input-volume", fields[0], f"{volume_pct}%")
        yield
    finally:
        server.pactl("unload-module", module)


@dataclass
class _Shared:
    server: PulseServer
    saved_env: dict[str, str | None]
    users: int = 0


_SHARED: list[_Shared] = []
"""One server per test process, however many modules import the fixture (each import makes
pytest register its own session fixture; they share this)."""


def _acquire() -> PulseServer:
    if _SHARED:
        _SHARED[0].users += 1
        return _SHARED[0].server
    server = reuse_running()
    if server is None:
        reason = pulse_missing_reason()
        if reason:
            pytest.skip(f"no PulseAudio for audio end-to-end tests: {reason}")
        server = start_pulse()
    saved = {key: os.environ.get(key) for key in _ENV_KEYS}
    use_server(server)
    _SHARED.append(_Shared(server, saved, users=1))
    return server


def _release() -> None:
    shared = _SHARED[0]
    shared.users -= 1
    if shared.users:
        return
    _SHARED.clear()
    shared.server.stop()
    for key, value in shared.saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    with contextlib.suppress(Exception):
        _refresh_portaudio()


@pytest.fixture(scope="session")
def pulse() -> Iterator[PulseServer]:
    """A private PulseAudio (null sinks coach_out, coach_mic) for the whole test session."""
    server = _acquire()
    try:
        yield server
    finally:
        _release()
