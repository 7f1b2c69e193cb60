"""Server processes for tests, forked from one that has already imported the libraries.

A uvicorn or Celery process spends most of its start importing (the MCP SDK, OpenCV, Celery, Django: about
1.5 CPU-seconds of the 2.5 it takes to listen), and the suite starts dozens of them on two cores. Each test
worker keeps one zygote: a process that imports those libraries once, then forks a child per server with
the environment, working folder, output file and `python -m` arguments the test asked for. The child runs
the module as `python -m` would (as gunicorn's `--preload` does in production); nothing of the project
(settings, apps) is imported before the fork, so each server reads its own environment.

`Zygote.spawn` returns a `ForkedProcess`, which answers what `services.running` asks of a
`subprocess.Popen`: `pid`, `poll`, `wait`, `send_signal`, `terminate`, `kill`, `returncode`. The zygote
reaps its children and reports their exit codes.
"""

from __future__ import annotations

import io
import json
import os
import queue
import runpy
import selectors
import signal
import subprocess
import sys
import threading
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
# What the servers import before they read any setting (none of these touches django.conf.settings).
PRELOADED = [
    "uvicorn.main",
    "uvicorn.server",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.lifespan.on",
    "mcp.server",
    "mcp.server.streamable_http",
    "cv2",
    "numpy",
    "PIL.Image",
    "celery",
    "kombu",
    "redis",
    "requests",
    "pydantic",
    "channels",
    "httpx",
    "django.core.handlers.asgi",
    "django.contrib.auth",
    "django.contrib.admin",
    "django.db.models",
    "django.template",
    "oauth2_provider",
    "oauthlib.oauth2",
    "jwcrypto.jwk",
]
# Modules a child may run, as `python -m <module>`.
RUNNABLE = {"uvicorn", "celery"}


def can_fork(cmd: list[str]) -> bool:
    return len(cmd) > 2 and cmd[0] == sys.executable and cmd[1] == "-m" and cmd[2] in RUNNABLE


class ForkedProcess:
    def __init__(self, zygote: Zygote, pid: int, args: list[str]) -> None:
        self._zygote = zygote
        self.pid = pid
        self.args = args

    @property
    def returncode(self) -> int | None:
        return self._zygote.exit_code(self.pid, timeout=0)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        code = self._zygote.exit_code(self.pid, timeout=timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:  # it ended since
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """The test process's side: sends fork requests, keeps the exit codes the zygote reports."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.zygote"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self._spawning = threading.Lock()
        self._replies: queue.Queue[dict] = queue.Queue()
        self._exits: dict[int, int] = {}
        self._ended = threading.Condition()
        self._alive = True
        threading.Thread(target=self._read, name="zygote-reader", daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            message = json.loads(line)
            if "exit" in message:
                with self._ended:
                    self._exits[message["exit"]] = message["code"]
                    self._ended.notify_all()
            else:
                self._replies.put(message)
        with self._ended:
            self._alive = False
            self._ended.notify_all()
        self._replies.put({"error": f"the zygote exited with {self._process.wait()}"})

    def spawn(self, cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> ForkedProcess:
        request = {"module": cmd[2], "args": cmd[3:], "env": env, "cwd": str(cwd), "log": str(log)}
        assert self._process.stdin is not None
        with self._spawning:
            self._process.stdin.write(json.dumps(request).encode() + b"\n")
            self._process.stdin.flush()
            reply = self._replies.get(timeout=120)  # the first one waits for the imports
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return ForkedProcess(self, reply["pid"], cmd)

    def exit_code(self, pid: int, timeout: float | None) -> int | None:
        with self._ended:
            self._ended.wait_for(lambda: pid in self._exits or not self._alive, timeout=timeout)
            if pid not in self._exits and not self._alive:
                # The zygote ended without reporting (it kills its children when it ends).
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                return -signal.SIGKILL
            return self._exits.get(pid)


_zygote: Zygote | None = None
_starting = threading.Lock()


def zygote() -> Zygote:
    """This test process's zygote, started on first use."""
    global _zygote
    with _starting:
        if _zygote is None:
            _zygote = Zygote()
        return _zygote


# ---------------------------------------------------------------- the zygote process


def _become(request: dict) -> None:
    """In the forked child: take the requested environment and output, then run the module as `python -m`
    does. Its exit (SystemExit) unwinds out of the zygote's loop and ends the interpreter normally, running
    the exit handlers the server registered."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    unbuffered = bool(request["env"].get("PYTHONUNBUFFERED"))
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True, write_through=unbuffered)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True, write_through=True)
    sys.argv = [request["module"], *request["args"]]
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    raise SystemExit(0)


def _report(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _reap(children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        _report({"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def main() -> None:
    for module in PRELOADED:
        __import__(module)
    assert "avtrz.settings" not in sys.modules
    children: set[int] = set()
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    pending = b""
    while True:
        if selector.select(timeout=0.05):
            chunk = os.read(0, 1 << 16)
            if not chunk:  # the test process is gone: so are its servers
                break
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    _become(request)
                children.add(pid)
                _report({"pid": pid})
        _reap(children)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


if __name__ == "__main__":
    main()
