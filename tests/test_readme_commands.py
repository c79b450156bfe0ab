"""The README's "… in one minute" sections (the API, a webhook, segments and events, Salesforce
Marketing Cloud, Marketo) work as written on the
`make run` setup: its shell blocks run in bash, in order, against a server started the way
`make run` starts it (the Makefile's RUN_ENV, SQLite, the seeded demo, in-process background
work), and a user sees the answers the README promises.

Substitutions, all explicit: the README's `http://127.0.0.1:8000` becomes a free port, the SQLite
file is a temporary one (SQLITE_PATH, set for the server and the blocks alike), and
`.venv/bin/python` becomes the running interpreter only in a checkout that has no .venv.
The blocks get none of make run's variables: whatever settings they need, they must carry.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
README_URL = "http://127.0.0.1:8000"
SECTIONS = (
    "The API in one minute",
    "A webhook in one minute",
    "Segments and events in one minute",
    "Salesforce Marketing Cloud in one minute",
    "Marketo in one minute",
)
# Settings a developer's shell or CI may carry that are not part of the `make run` setup.
FOREIGN_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "STATIC_ROOT", "SQLITE_PATH")


def readme_blocks(section: str) -> list[str]:
    """The ```sh blocks under the README heading `### <section>`, up to the next heading."""
    blocks: list[str] = []
    in_section = False
    fence: list[str] | None = None  # the lines of the open code block
    fence_is_sh = False
    for line in (REPO / "README.md").read_text().splitlines():
        if fence is not None:
            if line.startswith("```"):
                if in_section and fence_is_sh:
                    blocks.append("\n".join(fence))
                fence = None
            else:
                fence.append(line)
        elif line.startswith("```"):
            fence, fence_is_sh = [], line == "```sh"
        elif line.startswith("#"):
            in_section = line.lstrip("#").strip() == section
    assert blocks, f"README.md has no sh block under a heading {section!r}"
    return blocks


def make_run_env() -> dict[str, str]:
    """The variables `make run` serves with: the Makefile's RUN_ENV, plus the in-process beat."""
    makefile = (REPO / "Makefile").read_text()
    match = re.search(r"^RUN_ENV := (.*)$", makefile, re.MULTILINE)
    assert match, "the Makefile has no RUN_ENV"
    variables = dict(item.split("=", 1) for item in match.group(1).split())
    assert "WORKBENCH_INPROCESS_BEAT=1" in makefile
    return {**variables, "WORKBENCH_INPROCESS_BEAT": "1"}


def shell_env(sqlite_path: Path) -> dict[str, str]:
    """A user's shell: no Django, database or broker settings, only the temporary SQLite file."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in FOREIGN_VARIABLES and not key.startswith(("DJANGO_", "WORKBENCH_"))
    }
    return {**env, "SQLITE_PATH": str(sqlite_path)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def venv_python() -> str:
    """The README's interpreter: the checkout's .venv, or the one running the tests if there is none."""
    python = REPO / ".venv" / "bin" / "python"
    return ".venv/bin/python" if python.exists() else sys.executable


def json_values(text: str) -> list[Any]:
    """Every JSON object printed, in order (curl -s prints bodies without a newline between them)."""
    decoder, values, index = json.JSONDecoder(), [], 0
    while (index := text.find("{", index)) != -1:
        try:
            value, index = decoder.raw_decode(text, index)
        except ValueError:
            index += 1
            continue
        values.append(value)
    return values


@pytest.fixture(scope="module")
def make_run_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, str], Path]]:
    """`make run` on a temporary SQLite file: migrate, seed_demo, runserver on a free port."""
    tmp = tmp_path_factory.mktemp("make-run")
    env = shell_env(tmp / "db.sqlite3")
    server_env = {**env, **make_run_env()}
    port = free_port()
    python = venv_python()
    for command in (["migrate", "--noinput"], ["seed_demo", "--quiet", "--url", f"http://127.0.0.1:{port}"]):
        done = subprocess.run(
            [python, "manage.py", *command], cwd=REPO, env=server_env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"manage.py {command[0]} failed:\n{done.stderr[-3000:]}"
    log = tmp / "runserver.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=REPO,
            env=server_env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "runserver did not answer within 30 s"
                time.sleep(0.2)
        yield port, env, log
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_readmes_one_minute_sections_work_as_written_after_make_run(make_run_server) -> None:
    port, env, log = make_run_server
    url = f"http://127.0.0.1:{port}"
    sections = ["\n".join(readme_blocks(section)) for section in SECTIONS]
    for section in sections:
        assert README_URL in section
    marker = "README-SECTION-BREAK"
    script = "set -euo pipefail\n" + f"\necho {marker}\n".join(sections)
    script = script.replace(README_URL, url).replace(".venv/bin/python", venv_python())

    ran = subprocess.run(
        ["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=90, check=False
    )

    assert ran.returncode == 0, (
        f"the README's commands failed (exit {ran.returncode})\n--- stdout:\n{ran.stdout}\n"
        f"--- stderr:\n{ran.stderr}\n--- server:\n{log.read_text()[-3000:]}"
    )
    api_output, webhook_output, segments_output, sfmc_output, marketo_output = ran.stdout.split(marker)
    answers = json_values(api_output)
    profile = next(a["data"] for a in answers if "userId" in a.get("data", {}))
    assert (profile["userId"], profile["name"], profile["customFields"]["plan"]) == ("76DHG129387", "Lars", "premium")
    invocations = next(a["data"]["invocations"] for a in answers if "invocations" in a.get("data", {}))
    assert [(i["status"], i["targetCount"]) for i in invocations] == [("accepted", 1)]
    feed = next(a["data"] for a in answers if isinstance(a.get("data"), list))
    new_cards = [card for card in feed if card["flowInvocationId"] == invocations[0]["flowInvocationId"]]
    assert [(card["title"], card["test"]) for card in new_cards] == [("Welcome, Lars!", False)]

    assert f"{url}/hooks/" in webhook_output
    assert json_values(webhook_output)[-1] == {"status": "accepted", "flowInvocationId": "evt_1", "mode": "test"}

    answers = json_values(segments_output)
    assert answers[0] == {"data": {"accepted": 1, "duplicates": 0}}
    titles = [card["title"] for card in answers[1]["data"]]
    assert "Thanks for buying a kayak!" in titles
    assert [member["userId"] for member in answers[-1]["results"]] == ["A9F2K0001"]

    assert '"workflowApiVersion": "1.1"' in sfmc_output  # config.json's first bytes
    assert sfmc_output.rstrip().endswith("{}")  # execute: 200 {}
    assert json_values(marketo_output)[-1] == {"status": "accepted", "leads": 1}
