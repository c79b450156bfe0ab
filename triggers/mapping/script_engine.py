"""The script engine process: QuickJS running members' `transform` scripts, one request at a time.

`triggers.mapping.script` starts this file as a child process (`python -I script_engine.py`)
and talks to it over its standard input and output. The child exists because no in-process
limit can contain QuickJS: its interrupt handler does not stop regular-expression
backtracking (`/^(\\w+\\s?)*$/` on 30 characters runs for seconds), converting a thrown
object calls the script's own `toString` outside the time limit, and the binding crashes the
whole process (SIGSEGV) on a lone surrogate or when stringifying a value nested 100,000 deep.
In a child, the supervisor kills whatever overruns its deadline and a crash costs one request.

This module imports nothing from the project or Django, so the child starts in ~40 ms.

Frames, both ways: a fixed header, then `length` bytes of payload.
- request: op (1 byte), the script's SHA-256 (32 bytes), length (4 bytes)
  - LOAD (payload: the script): compile, probe for transform, harden; answer OK or ERROR.
  - RUN (payload: the request as ASCII JSON): call transform; OK with the result's JSON text,
    ERROR with messages, or UNKNOWN when this child has not loaded the script (yet, or
    any more: it keeps a bounded LRU of warm contexts).
  - COUNT: how many warm contexts the child holds (OK, payload the number as text).
- answer: status (1 byte), length (4 bytes); ERROR's payload is a JSON list of messages.
- On start the child answers one READY frame, once QuickJS is imported.

Inside the child, each script gets its own QuickJS context (its own runtime, so limits are
per script) with the member's code compiled once and every call running it afresh; the
sandbox and hardening are described in `triggers.mapping.script`.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import sys
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, BinaryIO

TIME_LIMIT_MS = 100
MEMORY_LIMIT_BYTES = 32 * 1024 * 1024
# Results larger than a request body could be are refused before they cross the pipe.
MAX_RESULT_BYTES = 4 * 1024 * 1024
# Calls between looks at a context's heap; a context holding this much between calls (say,
# never-run Promise jobs piling up) is rebuilt before it starts failing on memory.
MEMORY_CHECK_EVERY = 1000
MEMORY_REBUILD_BYTES = 8 * 1024 * 1024
# `new Function` puts two lines before the body; error positions are reported in script lines.
LINE_OFFSET = 2

REQUEST_HEADER = struct.Struct("!c32sI")
ANSWER_HEADER = struct.Struct("!cI")
LOAD, RUN, COUNT = b"L", b"R", b"C"
READY, OK, ERROR, UNKNOWN = b"Y", b"O", b"E", b"U"

# Never the first character of JSON.stringify's output. (Not NUL: the binding cuts strings there.)
_NOT_JSON = "!"

# Compiles the member's code into a factory and returns the per-call runner. `probe` checks
# that the script defines transform without calling it.
SETUP_JS = r"""
(function (code) {
  "use strict";
  const parse = JSON.parse, stringify = JSON.stringify;
  const factory = new Function(
    '"use strict"; ' + code + '\n;return typeof transform === "function" ? transform : undefined;'
  );
  return function run(text, probe) {
    const transform = factory();
    if (typeof transform !== "function") return "!no-transform";
    if (probe) return "!ok";
    const output = transform(parse(text));
    if (output === undefined) return "!undefined";
    if (typeof output === "function") return "!a function";
    if (output !== null && typeof output === "object" && typeof output.then === "function") {
      return "!a Promise";
    }
    const json = stringify(output);
    return json === undefined ? "!" + typeof output : json;
  };
})
"""

HARDEN_JS = r"""
(function () {
  "use strict";
  const getPrototypeOf = Object.getPrototypeOf, freeze = Object.freeze;
  const ownKeys = Reflect.ownKeys, describe = Reflect.getOwnPropertyDescriptor;
  const pending = [
    globalThis,
    getPrototypeOf(function* () {}),
    getPrototypeOf(async function () {}),
    getPrototypeOf(async function* () {}),
    getPrototypeOf([][Symbol.iterator]()),
    getPrototypeOf(new Map().entries()),
    getPrototypeOf(new Set().values()),
    getPrototypeOf(""[Symbol.iterator]()),
    getPrototypeOf("a".matchAll(/a/g)),
  ];
  // Frozen prototypes would make `error.name = "X"` on an instance a TypeError (assignment
  // cannot shadow a read-only inherited property). For the properties code commonly shadows,
  // an accessor stands in: reading gives the built-in value, assigning on an instance defines
  // the instance's own property, as it would without freezing.
  const shadowed = ["constructor", "name", "message", "toString", "toLocaleString", "valueOf", "toJSON"];
  const defineProperty = Object.defineProperty;
  function allowShadowing(home) {
    for (const key of shadowed) {
      const property = describe(home, key);
      if (!property || !("value" in property) || !property.writable || !property.configurable) continue;
      const value = property.value;
      // Method syntax: methods have no `prototype` object that would need hardening in turn.
      defineProperty(home, key, {
        get() {
          return value;
        },
        set(replacement) {
          if (this === home) throw new TypeError("'" + key + "' of a built-in is read-only");
          defineProperty(this, key, { value: replacement, writable: true, enumerable: true, configurable: true });
        },
        enumerable: property.enumerable,
        configurable: false,
      });
    }
  }
  const seen = new Set();
  while (pending.length) {
    const value = pending.pop();
    if (value === null || (typeof value !== "object" && typeof value !== "function") || seen.has(value)) {
      continue;
    }
    seen.add(value);
    if (typeof value === "object") allowShadowing(value);
    freeze(value);
    pending.push(getPrototypeOf(value));
    for (const key of ownKeys(value)) {
      const property = describe(value, key);
      if ("value" in property) pending.push(property.value);
      else pending.push(property.get, property.set);
    }
  }
})();
"""


@dataclass
class _Compiled:
    context: Any  # quickjs.Context
    run: Any  # quickjs.Object: the per-call runner
    calls: int = 0


class ScriptSetupError(Exception):
    """The script cannot be turned into a runnable transform; `errors` say why."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


class ScriptFailed(Exception):
    """One call of transform failed; `errors` are messages for the member."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def script_key(script: str) -> bytes:
    return hashlib.sha256(script.encode("utf-8", "surrogatepass")).digest()


def read_frame(stream: BinaryIO, header: struct.Struct) -> tuple[tuple[Any, ...], bytes] | None:
    """(header fields, payload) of the next frame, or None at end of input."""
    head = stream.read(header.size)
    if len(head) < header.size:
        return None
    fields = header.unpack(head)
    payload = stream.read(fields[-1])
    if len(payload) < fields[-1]:
        return None
    return fields[:-1], payload


class Engine:
    """The child's state: warm contexts by script key, least recently used first."""

    def __init__(self, contexts: int) -> None:
        import quickjs  # here, so that the supervisor can import this module without it

        self.quickjs = quickjs
        self.capacity = contexts
        self.entries: OrderedDict[bytes, _Compiled] = OrderedDict()
        self.scripts: dict[bytes, str] = {}

    def load(self, key: bytes, script: str) -> None:
        if key in self.entries:
            self.entries.move_to_end(key)
            return
        self.entries[key] = self._build(script)
        self.scripts[key] = script
        while len(self.entries) > self.capacity:
            old, _ = self.entries.popitem(last=False)
            self.scripts.pop(old, None)

    def run(self, key: bytes, text: str) -> str | None:
        """transform's result as JSON text, or None when the script is not loaded here."""
        compiled = self.entries.get(key)
        if compiled is None:
            return None
        self.entries.move_to_end(key)
        quickjs = self.quickjs
        try:
            result = compiled.run(text, False)
        except quickjs.StackOverflow as error:
            self._discard(key)
            raise ScriptFailed(["The script recursed too deeply (stack overflow)."]) from error
        except quickjs.JSException as error:
            message = _first_line(error)
            if message == "InternalError: interrupted":
                self._discard(key)
                raise ScriptFailed([f"The script ran longer than {TIME_LIMIT_MS} ms."]) from error
            if message == "InternalError: out of memory":
                self._discard(key)
                raise ScriptFailed([f"The script used more than {MEMORY_LIMIT_BYTES // (1024 * 1024)} MiB."]) from error
            raise ScriptFailed([f"The script threw {message}{_line_of(error, self.scripts[key])}."]) from error
        except Exception as error:  # anything the binding raises leaves the context in doubt
            self._discard(key)
            raise ScriptFailed([f"The script failed: {_first_line(error)}."]) from error
        compiled.calls += 1
        if compiled.calls % MEMORY_CHECK_EVERY == 0 and _heap_bytes(compiled.context) > MEMORY_REBUILD_BYTES:
            self._discard(key)
        if not isinstance(result, str):
            raise ScriptFailed(["The script returned something that is not JSON."])
        if result.startswith(_NOT_JSON):
            what = result[1:]
            raise ScriptFailed([f"transform returned {what}; it must return the start request (a JSON value)."])
        return result

    def _build(self, script: str) -> _Compiled:
        """A fresh context running `script`: compile, probe for transform, then freeze the globals."""
        quickjs = self.quickjs
        context = quickjs.Context()
        context.set_memory_limit(MEMORY_LIMIT_BYTES)
        context.set_time_limit(TIME_LIMIT_MS / 1000)
        try:
            setup = context.eval(SETUP_JS)
            run = setup(script)
            probe = run("", True)
        except quickjs.JSException as error:
            message = _first_line(error)
            if message == "InternalError: interrupted":
                raise ScriptSetupError([f"Loading the script took longer than {TIME_LIMIT_MS} ms."]) from error
            if message.startswith("SyntaxError"):
                raise ScriptSetupError([f"{message}{_line_of(error, script)}."]) from error
            raise ScriptSetupError([f"Loading the script failed: {message}{_line_of(error, script)}."]) from error
        if probe != "!ok":
            raise ScriptSetupError(["The script must define function transform(request)."])
        try:
            context.eval(HARDEN_JS)
        except quickjs.JSException as error:  # our code, before any of the member's has run
            raise ScriptSetupError([f"The sandbox could not be prepared: {_first_line(error)}."]) from error
        return _Compiled(context=context, run=run)

    def _discard(self, key: bytes) -> None:
        self.entries.pop(key, None)
        self.scripts.pop(key, None)


def handle(engine: Engine, op: bytes, key: bytes, payload: bytes) -> tuple[bytes, bytes]:
    """The answer (status, payload) to one request."""
    try:
        if op == LOAD:
            engine.load(key, payload.decode("utf-8", "surrogatepass"))
            return OK, b""
        if op == RUN:
            result = engine.run(key, payload.decode("ascii"))
            if result is None:
                return UNKNOWN, b""
            encoded = result.encode("utf-8", "backslashreplace")
            if len(encoded) > MAX_RESULT_BYTES:
                limit = MAX_RESULT_BYTES // (1024 * 1024)
                raise ScriptFailed([f"transform returned more than {limit} MiB of JSON."])
            return OK, encoded
        if op == COUNT:
            return OK, str(len(engine.entries)).encode()
    except (ScriptSetupError, ScriptFailed) as failed:
        return ERROR, json.dumps(failed.errors).encode()
    return ERROR, json.dumps([f"Unknown request {op!r}."]).encode()


def main() -> None:
    contexts = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    engine = Engine(contexts)
    stdout.write(ANSWER_HEADER.pack(READY, 0))
    stdout.flush()
    while (frame := read_frame(stdin, REQUEST_HEADER)) is not None:
        (op, key), payload = frame
        status, answer = handle(engine, op, key, payload)
        stdout.write(ANSWER_HEADER.pack(status, len(answer)) + answer)
        stdout.flush()


def _heap_bytes(context: Any) -> int:
    return int(context.memory()["memory_used_size"])


_POSITION = re.compile(r"<input>:(\d+)")


def _line_of(error: BaseException, script: str) -> str:
    """' (line N)' for the first position inside the member's script, or ''."""
    lines = script.count("\n") + 1
    for match in _POSITION.finditer(str(error)):
        line = int(match.group(1)) - LINE_OFFSET
        if 1 <= line <= lines:
            return f" (line {line})"
    return ""


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


if __name__ == "__main__":
    main()
