"""Script mapping: a member's JavaScript `function transform(request)` run in a sandbox.

`request` is `{body, headers, query, method}` (header names lower-case, query values strings);
`transform` returns the start request. Each call gets at most 100 ms and 32 MiB, and the
script can reach nothing outside itself: no modules, no I/O, no timers, no Python.

Engine: QuickJS (PyPI `quickjs`) in supervised child processes (`script_engine.py`). QuickJS
alone could not keep the limit or the process: its interrupt handler is not consulted while
a regular expression backtracks (a 40-character body held a gunicorn worker past its 30 s
timeout), turning a thrown object into a message calls the script's `toString` outside the
limit, and the binding crashes its process (SIGSEGV) on a lone surrogate or when it
stringifies a value nested 100,000 deep. So the engine runs in a child process that this
module supervises: every call has a wall-clock deadline (the 100 ms limit plus a 50 ms round
trip); an engine that overruns it is killed, one that crashes is reaped, and either way the
call is a MappingError and the next call gets a fresh engine (~40 ms to start). Data
crosses as ASCII JSON text, so the engine never sees text it cannot encode; its answer is
parsed with `loads_storable`, so nothing that could not be stored comes back.

Measured with `bench/bench_script_mapping.py` (the same two-field transform of a 2 KB body,
JSON text in and out, one thread, warm engine, best of 3 x 5,000 calls), on the 2-core
development machine, Python 3.11:

    quickjs 1.19.4 in a supervised engine process (this module)  see the benchmark's output
    quickjs 1.19.4 in-process, as before this module isolated it  14,900-15,800 calls/s  p99 0.15-0.19 ms
    mini-racer 0.14.1 (V8) bare call                              2,400-2,800 calls/s   p99 1.4-3.0 ms
    reference: Python json.loads + dict + json.dumps              25,000-25,900 calls/s p99 0.08 ms

V8 through mini-racer would interrupt regular expressions, but misses the goal (>= 5,000
mappings/s, p99 < 2 ms) on its own and would still run in our process. The engine process
costs one pipe round trip per call, which the goal has room for; in exchange no script and
no body can hold or crash the process that serves requests. QuickJS's own time limit
counts the engine process's CPU time (`clock()`), which inside a child is the script's own:
it stops ordinary endless loops without losing the warm context; the supervisor's deadline
catches everything else.

Engines: each caller (thread) leases an engine process from a per-process pool and gives it
back; a few are kept warm. Each engine keeps a bounded LRU of warm contexts, one per script,
keyed by the script's SHA-256; a call for a script the engine has not loaded loads it first.
After a fork (gunicorn's workers, Celery's prefork pool) a process starts engines of its own.

Sandbox, and how it is kept:
1. A bare `quickjs.Context` has only the ECMAScript built-ins: no `std`/`os` modules (module
   imports fail: the context has no module loader), no `require`, `process`, `fetch`,
   `setTimeout` or `print`. Nothing from Python is ever added (no `add_callable`); data
   crosses as JSON text both ways, so the script holds no host objects.
2. Limits: `set_time_limit(0.1)` (an interrupt handler checked during execution) and
   `set_memory_limit(32 MiB)` on the context's own runtime, and the supervisor's deadline
   around every call. A context that hit a limit or overflowed its stack is discarded and
   rebuilt on the next call: its heap may be in any state.
3. Contexts are not thread-safe and must stay on the thread that made them (quickjs crashes
   otherwise): an engine process serves one call at a time, on its one thread.
4. No request can leak into a later one's result: the member's code is compiled once, with
   `new Function`, into a factory whose body *is* the script (in strict mode), and every call
   runs that factory afresh, so the script's top-level `let`, `const`, `var` and functions
   start from their initial values each time. Everything reachable from `globalThis` (and the
   iterator and generator intrinsics) is deep-frozen once the context is built, so a script
   can neither add globals (an undeclared assignment is a ReferenceError in strict mode) nor
   stash data on `Object.prototype` or `JSON`. Freezing would make assigning a property that a
   built-in prototype also has a TypeError (`this.name = "MyError"` in an Error subclass); for
   the usual ones (constructor, name, message, toString, toLocaleString, valueOf, toJSON) an
   accessor keeps plain assignment on instances working.
   Promise callbacks are never run (nothing drains the job queue): `transform` is synchronous.

Numbers cross as JSON into JavaScript numbers, so integers beyond 2^53 (Shopify's ids, for
one) lose precision inside a script; read such ids from a string field, or map them with a
structured mapping, which keeps Python's exact integers.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from triggers.mapping import script_engine as engine
from triggers.mapping.base import MappingError, WebhookInput
from triggers.mapping.script_engine import ScriptSetupError
from workbench.json_values import UnstorableJSON, loads_storable

TIME_LIMIT_MS = engine.TIME_LIMIT_MS
MEMORY_LIMIT_BYTES = engine.MEMORY_LIMIT_BYTES
MAX_SCRIPT_CHARACTERS = 100_000
CONTEXTS_PER_ENGINE = 32
# The supervisor's own deadline is wall time: the engine's CPU-time limit plus the round
# trip. Whatever the script does (backtracking regular expressions, a toString that never
# returns, a crash), the caller has an answer by then.
DEADLINE_GRACE_MS = 50
ENGINE_START_SECONDS = 10.0
# Engines kept warm for the next caller; more run only while more threads map at once.
IDLE_ENGINES = 4

_ENGINE_PATH = str(Path(engine.__file__).resolve())


class _EngineLost(Exception):
    """The engine process overran its deadline or died; it has been killed."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def check_script(script: Any) -> list[str]:
    """Problems that stop `script` from running (empty when it compiles and defines transform)."""
    if not isinstance(script, str) or not script.strip():
        return ["Expected the JavaScript source of function transform(request)."]
    if len(script) > MAX_SCRIPT_CHARACTERS:
        return [f"At most {MAX_SCRIPT_CHARACTERS:,} characters; got {len(script):,}."]
    if "\x00" in script:
        return ["The script contains a NUL character."]
    try:
        with _pool.engine() as process:
            process.load(engine.script_key(script), script)
    except ScriptSetupError as error:
        return error.errors
    except _EngineLost as lost:
        return [f"Loading the script {lost.message}."]
    return []


def run_script(script: str, request: WebhookInput) -> Any:
    """Call the script's transform with `request` and return what it returned, as JSON data.

    1. Serialise the request to ASCII JSON text (no host object, and no text the engine
       cannot encode, ever reaches it).
    2. Hand it to an engine process, loading the script there on first use.
    3. Wait at most the time limit plus the round trip; an engine that overruns it or dies
       is killed and replaced, and the call is a MappingError.
    4. Parse the result strictly (`loads_storable`): what the start could not store is refused.
    """
    try:
        text = json.dumps(
            {"body": request.body, "headers": request.headers, "query": request.query, "method": request.method},
            allow_nan=False,
            separators=(",", ":"),
        )
    except (TypeError, ValueError, RecursionError) as error:
        raise MappingError([f"The request cannot be handed to the script as JSON: {error}."]) from error
    key = engine.script_key(script)
    try:
        with _pool.engine() as process:
            result = process.run(key, text)
            if result is None:  # this engine has not seen the script yet
                process.load(key, script)
                result = process.run(key, text)
    except ScriptSetupError as error:
        raise MappingError(error.errors) from error
    except _EngineLost as lost:
        raise MappingError([f"The script {lost.message}."]) from lost
    if result is None:
        raise MappingError(["The script could not be loaded."])
    try:
        return loads_storable(result)
    except UnstorableJSON as error:
        raise MappingError([f"transform returned what cannot be started: {error}"]) from error


def cached_context_count() -> int:
    """How many warm contexts an idle engine holds (for tests and diagnostics)."""
    with _pool.engine() as process:
        return process.count()


class _EngineProcess:
    """One engine child process and the frames exchanged with it, each under a deadline."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and file, no shell
            [sys.executable, "-I", _ENGINE_PATH, str(CONTEXTS_PER_ENGINE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
        )
        self.broken = False
        status, _ = self._answer(time.monotonic() + ENGINE_START_SECONDS, "did not start")
        if status != engine.READY:
            self.kill()
            raise _EngineLost("could not be run: the script engine did not start")

    def load(self, key: bytes, script: str) -> None:
        status, payload = self._call(engine.LOAD, key, script.encode("utf-8", "surrogatepass"), "took longer")
        if status == engine.ERROR:
            raise ScriptSetupError(json.loads(payload))

    def run(self, key: bytes, text: str) -> bytes | None:
        status, payload = self._call(engine.RUN, key, text.encode("ascii"), "ran longer")
        if status == engine.UNKNOWN:
            return None
        if status == engine.ERROR:
            raise MappingError(json.loads(payload))
        return payload

    def count(self) -> int:
        _, payload = self._call(engine.COUNT, bytes(32), b"", "did not answer")
        return int(payload)

    def alive(self) -> bool:
        return not self.broken and self.process.poll() is None

    def kill(self) -> None:
        self.broken = True
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def _call(self, op: bytes, key: bytes, payload: bytes, overran: str) -> tuple[bytes, bytes]:
        deadline = time.monotonic() + (TIME_LIMIT_MS + DEADLINE_GRACE_MS) / 1000
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(engine.REQUEST_HEADER.pack(op, key, len(payload)) + payload)
        except (BrokenPipeError, OSError) as error:
            self.kill()
            raise _EngineLost("could not be run: the script engine stopped") from error
        return self._answer(deadline, f"{overran} than {TIME_LIMIT_MS} ms")

    def _answer(self, deadline: float, overran: str) -> tuple[bytes, bytes]:
        head = self._read(engine.ANSWER_HEADER.size, deadline, overran)
        status, length = engine.ANSWER_HEADER.unpack(head)
        return status, self._read(length, deadline, overran)

    def _read(self, size: int, deadline: float, overran: str) -> bytes:
        """Exactly `size` bytes from the engine, or _EngineLost (and the engine killed)."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        chunks: list[bytes] = []
        while size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                self.kill()
                raise _EngineLost(overran)
            chunk = os.read(fd, min(size, 1 << 20))
            if not chunk:
                code = self.process.wait()
                self.kill()
                raise _EngineLost(f"crashed the script engine (exit {code}); nothing was started")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)


class _EnginePool:
    """Engine processes shared by this process's threads: one per concurrent caller, a few
    kept warm. After a fork (gunicorn, Celery's prefork pool) the child starts its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_EngineProcess] = []
        os.register_at_fork(after_in_child=self._forget)

    def engine(self) -> _Lease:
        with self._lock:
            while self._idle:
                candidate = self._idle.pop()
                if candidate.alive():
                    return _Lease(self, candidate)
        return _Lease(self, _EngineProcess())

    def give_back(self, process: _EngineProcess) -> None:
        if not process.alive():
            return
        with self._lock:
            if len(self._idle) < IDLE_ENGINES:
                self._idle.append(process)
                return
        process.kill()

    def _forget(self) -> None:
        """In a forked child: the engines belong to the parent; close our copies of their pipes."""
        self._lock = threading.Lock()
        for process in self._idle:
            for stream in (process.process.stdin, process.process.stdout):
                if stream is not None:
                    stream.close()
        self._idle = []


class _Lease:
    def __init__(self, pool: _EnginePool, process: _EngineProcess) -> None:
        self.pool = pool
        self.process = process

    def __enter__(self) -> _EngineProcess:
        return self.process

    def __exit__(self, *exc_info: object) -> None:
        self.pool.give_back(self.process)


_pool = _EnginePool()
