"""Script mapping: a member's JavaScript `function transform(request)` run in a sandbox.

`request` is `{body, headers, query, method}` (header names lower-case, query values strings);
`transform` returns the start request. Each call gets at most 100 ms and 32 MiB, and the
script can reach nothing outside itself: no modules, no I/O, no timers, no Python.

Engine: QuickJS (PyPI `quickjs`), chosen with `bench/bench_script_mapping.py`: the same
two-field transform of a 2 KB body, JSON text in and out, both limits set, one thread, warm
context, best of 3 x 5,000 calls. "Bare" is the engine alone (one context, the transform, no
hardening); "apply_mapping" is this module end to end. Two runs on the development machine
(2 cores shared with other work, load ~2.3, Python 3.11):

    quickjs 1.19.4 via apply_mapping (sandboxed, this module)  14,900-15,800 calls/s  p99 0.15-0.19 ms
    quickjs 1.19.4 bare call, one warm context                  8,600-17,400 calls/s  p99 0.11-1.5 ms
    quickjs.Function (one shared thread, gc per call)           3,000-8,400 calls/s   p99 0.3-3.9 ms
    mini-racer 0.14.1 (V8) bare call                            2,400-2,800 calls/s   p99 1.4-3.0 ms
    reference: Python json.loads + dict + json.dumps            25,000-25,900 calls/s p99 0.08 ms

Only QuickJS with per-thread contexts meets the goal (>= 5,000 mappings/s and p99 < 2 ms),
with room to spare; mini-racer misses both here. V8's JIT cannot pay off on sub-millisecond
calls: mini-racer's per-call cost is the hop to its isolate's thread (through asyncio) and
its timeout bookkeeping. quickjs.Function, the binding's thread-safe wrapper, funnels every
call through one shared thread and collects garbage after each, which probably explains the
issue's lower QuickJS figure; per-thread contexts avoid both. QuickJS also builds a
sandboxed context in a few milliseconds (mostly the hardening below) with a ~180 KB heap,
so every thread can keep warm contexts for several scripts; its limits are per runtime (each
context here is its own runtime), so one script's memory bomb cannot starve another's; and
it releases the GIL while JavaScript runs, so a script stopped at its limit does not stall
the process's other threads. The price: QuickJS's time limit counts `clock()`, the
process's CPU time, so a loop is stopped after at most 100 ms of process CPU: sooner (never
later) while other threads are busy, and on a starved machine wall time can exceed it.

Sandbox, and how it is kept:
1. A bare `quickjs.Context` has only the ECMAScript built-ins: no `std`/`os` modules (module
   imports fail: the context has no module loader), no `require`, `process`, `fetch`,
   `setTimeout` or `print`. Nothing from Python is ever added (no `add_callable`); data
   crosses as JSON text both ways, so the script holds no host objects.
2. Limits: `set_time_limit(0.1)` (an interrupt handler checked during execution) and
   `set_memory_limit(32 MiB)` on the context's own runtime. A context that hit a limit or
   overflowed its stack is discarded and rebuilt on the next call: its heap may be in any state.
3. Contexts are not thread-safe and must stay on the thread that made them (quickjs crashes
   otherwise), and building one per call is too slow: each thread keeps a small LRU of warm
   contexts, one per script, keyed by the script's SHA-256.
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

import hashlib
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import quickjs

from triggers.mapping.base import MappingError, WebhookInput

TIME_LIMIT_MS = 100
MEMORY_LIMIT_BYTES = 32 * 1024 * 1024
MAX_SCRIPT_CHARACTERS = 100_000
CONTEXTS_PER_THREAD = 32
# Calls between looks at a context's heap; a context holding this much between calls (say,
# never-run Promise jobs piling up) is rebuilt before it starts failing on memory.
MEMORY_CHECK_EVERY = 1000
MEMORY_REBUILD_BYTES = 8 * 1024 * 1024
# `new Function` puts two lines before the body; error positions are reported in script lines.
LINE_OFFSET = 2

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


class ScriptSetupError(Exception):
    """The script cannot be turned into a runnable transform; `errors` say why."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class _Compiled:
    context: quickjs.Context
    run: quickjs.Object
    calls: int = 0


class _ThreadContexts(threading.local):
    def __init__(self) -> None:
        self.entries: OrderedDict[str, _Compiled] = OrderedDict()


_contexts = _ThreadContexts()


def check_script(script: Any) -> list[str]:
    """Problems that stop `script` from running (empty when it compiles and defines transform)."""
    if not isinstance(script, str) or not script.strip():
        return ["Expected the JavaScript source of function transform(request)."]
    if len(script) > MAX_SCRIPT_CHARACTERS:
        return [f"At most {MAX_SCRIPT_CHARACTERS:,} characters; got {len(script):,}."]
    if "\x00" in script:
        return ["The script contains a NUL character."]
    try:
        _compiled(script)
    except ScriptSetupError as error:
        return error.errors
    return []


def run_script(script: str, request: WebhookInput) -> Any:
    """Call the script's transform with `request` and return what it returned, as JSON data.

    1. Serialise the request to JSON text (no host object ever reaches the script).
    2. Take this thread's warm context for the script, building it on first use.
    3. Run transform under the time and memory limits; a limit hit discards the context.
    4. Parse the returned JSON text; undefined, functions and Promises are refused.
    """
    try:
        text = json.dumps(
            {"body": request.body, "headers": request.headers, "query": request.query, "method": request.method},
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        )
    except (TypeError, ValueError) as error:
        raise MappingError([f"The request cannot be handed to the script as JSON: {error}."]) from error
    try:
        compiled = _compiled(script)
    except ScriptSetupError as error:
        raise MappingError(error.errors) from error
    key = _key(script)
    try:
        result = compiled.run(text, False)
    except quickjs.StackOverflow as error:
        _discard(key)
        raise MappingError(["The script recursed too deeply (stack overflow)."]) from error
    except quickjs.JSException as error:
        message = _first_line(error)
        if message == "InternalError: interrupted":
            _discard(key)
            raise MappingError([f"The script ran longer than {TIME_LIMIT_MS} ms."]) from error
        if message == "InternalError: out of memory":
            _discard(key)
            raise MappingError([f"The script used more than {MEMORY_LIMIT_BYTES // (1024 * 1024)} MiB."]) from error
        raise MappingError([f"The script threw {message}{_line_of(error, script)}."]) from error
    except Exception as error:  # anything the binding raises leaves the context in doubt
        _discard(key)
        raise MappingError([f"The script failed: {_first_line(error)}."]) from error
    compiled.calls += 1
    if compiled.calls % MEMORY_CHECK_EVERY == 0 and _heap_bytes(compiled.context) > MEMORY_REBUILD_BYTES:
        _discard(key)
    if not isinstance(result, str):
        raise MappingError(["The script returned something that is not JSON."])
    if result.startswith(_NOT_JSON):
        what = result[1:]
        raise MappingError([f"transform returned {what}; it must return the start request (a JSON value)."])
    return json.loads(result)


def cached_context_count() -> int:
    """How many warm contexts this thread holds (for tests and diagnostics)."""
    return len(_contexts.entries)


def _compiled(script: str) -> _Compiled:
    key = _key(script)
    entries = _contexts.entries
    compiled = entries.get(key)
    if compiled is not None:
        entries.move_to_end(key)
        return compiled
    compiled = _build(script)
    entries[key] = compiled
    while len(entries) > CONTEXTS_PER_THREAD:
        entries.popitem(last=False)
    return compiled


def _build(script: str) -> _Compiled:
    """A fresh context running `script`: compile, probe for transform, then freeze the globals."""
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


def _discard(key: str) -> None:
    _contexts.entries.pop(key, None)


def _key(script: str) -> str:
    return hashlib.sha256(script.encode()).hexdigest()


def _heap_bytes(context: quickjs.Context) -> int:
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
