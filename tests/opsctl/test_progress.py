"""`--progress` and `--color` as people meet them: one line per finished check in a pipe, the
live table on a terminal, colour by the flag, NO_COLOR, FORCE_COLOR and the terminal (issue 16)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from itertools import product
from pathlib import Path

import pytest

from opsctl.output import Output, decide
from tests.conftest import REPO_ROOT, config_copy
from tests.fakes.bot_target import TargetSettings, environment_toml, serve_target
from tests.terminal import read_terminal

OPSCTL = [sys.executable, "-m", "opsctl.cli"]
GOLDEN = Path(__file__).parent / "golden"
PUBLIC = "https://bot.example.org"
# Colour is an SGR sequence (ESC [ ... m); the live table's cursor moves are others.
SGR = re.compile(r"\x1b\[[0-9;]*m")
CURSOR_UP, ERASE_LINE = "\x1b[1A", "\x1b[2K"
# A chain of one-check gates, so the lines come in one order: webhook passes, health passes
# (its gate WARNs: a manual criterion not signed off), metrics FAILs (the fake has no
# /metrics), the gate after it is BLOCKED, an advisory gate with no checks is SKIPped.
CONFIG = """
[defaults]
timeout_s = 5

[gates."P2.1"]
title = "Twilio pipeline"
checks = ["webhook"]

[gates."P2.2"]
title = "Render deploy"
checks = ["health"]
needs = ["P2.1"]
manual = ["demo rehearsed"]

[gates."P2.3"]
title = "Memory"
checks = ["metrics"]
needs = ["P2.2"]

[gates."P2.6"]
title = "Security"
checks = ["https"]
needs = ["P2.3"]

[gates."P2.4"]
title = "Notion"
checks = []
blocking = false
skip_reason = "no checks yet"
"""


# --- the decision, as a matrix ----------------------------------------------------------------

# --color auto, by (NO_COLOR, FORCE_COLOR) (None: unset): "tty" is colour only on a terminal.
# An empty value counts as unset (both conventions say "present and not empty").
AUTO_COLOUR: dict[tuple[str | None, str | None], bool | str] = {
    (None, None): "tty",
    (None, ""): "tty",
    (None, "1"): True,
    ("", None): "tty",
    ("", ""): "tty",
    ("", "1"): True,
    ("1", None): False,
    ("1", ""): False,
    ("1", "1"): False,  # the reader's own NO_COLOR wins over a CI-wide FORCE_COLOR
}


@pytest.mark.parametrize(
    ("flag", "no_color", "force_color", "tty", "as_json"),
    list(
        product(
            ["auto", "always", "never"],
            [None, "", "1"],
            [None, "", "1"],
            [True, False],
            [False, True],
        )
    ),
)
def test_colour_matrix(
    flag: str, no_color: str | None, force_color: str | None, tty: bool, as_json: bool
) -> None:
    environ = {"TERM": "xterm-256color"}
    if no_color is not None:
        environ["NO_COLOR"] = no_color
    if force_color is not None:
        environ["FORCE_COLOR"] = force_color
    # The stream people read is stdout, or stderr under --json; the other is the opposite, so
    # a decision made on the wrong stream fails.
    stdout_tty, stderr_tty = (not tty, tty) if as_json else (tty, not tty)
    output = decide("auto", flag, as_json, environ, stdout_tty, stderr_tty)
    expected = {"always": True, "never": False}.get(flag, AUTO_COLOUR[(no_color, force_color)])
    assert output.color is (tty if expected == "tty" else expected)
    # Colour never changes the layout: NO_COLOR keeps the live table, FORCE_COLOR makes no
    # pipe live.
    assert output.progress == decide("auto", "never", as_json, {}, stdout_tty, stderr_tty).progress
    assert output.progress == ("live" if tty else "none" if as_json else "plain")


# (--progress, terminal, --json) -> (progress, final output, progress on stderr)
PROGRESS: dict[tuple[str, bool, bool], tuple[str, str, bool]] = {
    ("auto", True, False): ("live", "table", False),
    ("auto", False, False): ("plain", "summary", False),
    ("auto", True, True): ("live", "json", True),
    ("auto", False, True): ("none", "json", True),  # stderr stays for errors unless asked
    ("live", True, False): ("live", "table", False),
    ("live", False, False): ("live", "table", False),
    ("live", True, True): ("live", "json", True),
    ("live", False, True): ("live", "json", True),
    ("plain", True, False): ("plain", "summary", False),
    ("plain", False, False): ("plain", "summary", False),
    ("plain", True, True): ("plain", "json", True),
    ("plain", False, True): ("plain", "json", True),
    ("none", True, False): ("none", "table", False),
    ("none", False, False): ("none", "text", False),  # today's pipe output, line for line
    ("none", True, True): ("none", "json", True),
    ("none", False, True): ("none", "json", True),
}


@pytest.mark.parametrize(("progress", "tty", "as_json"), list(PROGRESS))
def test_progress_matrix(progress: str, tty: bool, as_json: bool) -> None:
    stdout_tty, stderr_tty = (not tty, tty) if as_json else (tty, not tty)
    output = decide(progress, "auto", as_json, {"TERM": "xterm"}, stdout_tty, stderr_tty)
    assert (output.progress, output.final, output.to_stderr) == PROGRESS[(progress, tty, as_json)]
    assert output.terminal is tty


def test_a_dumb_terminal_gets_plain_lines_without_colour() -> None:
    """TERM=dumb (Emacs' shell) cannot move the cursor: no live table, no colour by default."""
    dumb = decide("auto", "auto", False, {"TERM": "dumb"}, True, True)
    assert dumb == Output("plain", False, False, False, "summary")
    assert decide("auto", "always", False, {"TERM": "dumb"}, True, True).color


def test_an_unknown_progress_is_refused() -> None:
    with pytest.raises(ValueError, match="--progress 'fast': use auto, live, plain or none"):
        decide("fast", "auto", False, {}, True, True)


# --- end to end: a real `opsctl verify` against the fake target --------------------------------


@pytest.fixture(scope="module")
def fake_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[list[str], dict[str, str]]]:
    """The fake target, every answer 0.3 s late (so the run lasts seconds), without /metrics;
    the command line and the environment that verify it."""
    folder = tmp_path_factory.mktemp("progress")
    settings = TargetSettings(public_url=PUBLIC, fault="metrics_missing", delay_s=0.3)
    with serve_target(settings) as url:
        config = folder / "opsctl.toml"
        config.write_text(CONFIG + environment_toml("fault", url, PUBLIC))
        env_file = folder / "test.env"
        env_file.write_text(f"FAKE_TWILIO_TOKEN={settings.token}\n")
        args = ["verify", "--env", "fault", "--config", str(config), "--env-file", str(env_file)]
        environ = {
            k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "CI")
        }
        environ |= {"FAKE_TWILIO_ACCOUNT_SID": settings.account_sid, "TERM": "xterm"}
        yield [*OPSCTL, *args, "--no-evidence"], environ


def normalised(text: str) -> str:
    """Times and the fake's port vary from run to run; nothing else may."""
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
    text = re.sub(r"\d+\.\d+s\b", "N.NNs", text)
    return re.sub(r"\d+ ms\b", "N ms", text)


def test_plain_lines_stream_as_checks_finish(fake_run: tuple[list[str], dict[str, str]]) -> None:
    """In a pipe, each check's line is out while the run still goes (it printed nothing for
    minutes before), then the verdict with what to act on; golden, times normalised."""
    command, environ = fake_run
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None
    lines: list[bytes] = []
    try:
        while not any(line.startswith(b"PASS    P2.1 webhook") for line in lines):
            line = process.stdout.readline()
            assert line, f"the run ended before webhook's line: {b''.join(lines)!r}"
            lines.append(line)
        # webhook's line is here; health and metrics still wait on the fake (0.3 s an answer).
        assert process.poll() is None, "the line came only when the run was over"
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    text = b"".join(lines).decode() + out.decode()
    assert process.returncode == 1, text + err.decode()
    assert err == b"" and not SGR.search(text)
    golden = GOLDEN / "verify-plain.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(normalised(text))
    assert normalised(text) == golden.read_text()


def test_the_same_run_is_live_on_a_terminal_and_plain_in_a_pipe(
    fake_run: tuple[list[str], dict[str, str]],
) -> None:
    command, environ = fake_run
    code, screen = read_terminal(command, environ)
    assert code == 1, screen
    # The table redrawn in place: the cursor goes up and lines are erased; spinners run.
    assert CURSOR_UP in screen and ERASE_LINE in screen
    assert "running" in screen and "waiting" in screen
    assert "waking the target" not in screen  # that is the plain lines' word
    assert SGR.search(screen), "a terminal gets colour"
    assert "FAIL: gate P2.3 Memory" in SGR.sub("", screen)
    piped = subprocess.run(command, cwd=REPO_ROOT, env=environ, capture_output=True, timeout=120)
    text = piped.stdout.decode()
    assert piped.returncode == 1
    assert "\x1b" not in text
    assert text.startswith("waking the target: GET /health until the bot answers (up to 10s)\n")
    assert "\nFAIL    P2.3 metrics (" in text


def test_the_live_table_lists_only_the_gates_that_will_run(
    fake_run: tuple[list[str], dict[str, str]],
) -> None:
    """A gate left out by --skip is no row 'waiting' for ever: it is not in the live table."""
    command, environ = fake_run
    _, screen = read_terminal([*command, "--skip", "P2.2"], environ)
    frames = SGR.sub("", screen).splitlines()
    assert any("P2.1" in line and "webhook" in line for line in frames), screen
    live_rows = [line for line in frames if "waiting" in line or "running" in line]
    assert live_rows and not any("P2.2" in line for line in live_rows), live_rows


def test_json_keeps_stdout_pure_and_plain_lines_go_to_stderr(
    fake_run: tuple[list[str], dict[str, str]],
) -> None:
    command, environ = fake_run
    asked = subprocess.run(
        [*command, "--json", "--progress", "plain"],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    run = json.loads(asked.stdout)
    assert run["verdict"]["exit_code"] == asked.returncode == 1
    lines = asked.stderr.splitlines()
    assert lines[0].startswith("waking the target") and lines[-1] == run["verdict"]["line"]
    assert any(line.startswith("FAIL    P2.3 metrics (") for line in lines)
    quiet = subprocess.run(
        [*command, "--json"], cwd=REPO_ROOT, env=environ, capture_output=True, timeout=120
    )
    assert quiet.stderr == b""  # a script's stderr stays for errors unless it asks
    assert json.loads(quiet.stdout)["verdict"]["exit_code"] == 1


# --- --color end to end: the flag and the conventions reach what is printed -------------------


@pytest.fixture(scope="module")
def repository_check(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A quick check with no target (a second), on this repository's configuration."""
    config = config_copy(tmp_path_factory.mktemp("colour"))
    return [*OPSCTL, "check", "hygiene", "--env", "local", "--config", str(config)]


def plain_environ(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "CI")}
    return environ | {"TERM": "xterm"} | extra


@pytest.mark.parametrize(
    ("flag", "extra", "coloured"),
    [
        ("auto", {}, False),
        ("auto", {"FORCE_COLOR": "1"}, True),
        ("auto", {"NO_COLOR": "1", "FORCE_COLOR": "1"}, False),
        ("always", {"NO_COLOR": "1"}, True),
        ("never", {"FORCE_COLOR": "1"}, False),
    ],
)
def test_colour_in_a_pipe(
    repository_check: list[str], flag: str, extra: dict[str, str], coloured: bool
) -> None:
    done = subprocess.run(
        [*repository_check, "--color", flag],
        cwd=REPO_ROOT,
        env=plain_environ(**extra),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert bool(SGR.search(done.stdout)) is coloured, repr(done.stdout)
    assert CURSOR_UP not in done.stdout  # FORCE_COLOR colours a pipe, never animates it
    plain = SGR.sub("", done.stdout)
    assert plain.startswith("PASS    hygiene (")
    assert "\n\nPASS: every blocking gate passed (1 PASS)\n" in plain
    if coloured:  # the status word in its status's style (checks/statuses.py: bold green)
        assert "\x1b[1;32mPASS\x1b[0m    hygiene (" in done.stdout


@pytest.mark.parametrize(
    ("flag", "extra", "coloured"),
    [("auto", {}, True), ("auto", {"NO_COLOR": "1"}, False), ("never", {}, False)],
)
def test_colour_on_a_terminal(
    repository_check: list[str], flag: str, extra: dict[str, str], coloured: bool
) -> None:
    """NO_COLOR takes the colour away, never the live table (it is about layout)."""
    code, screen = read_terminal([*repository_check, "--color", flag], plain_environ(**extra))
    assert code == 0, screen
    assert bool(SGR.search(screen)) is coloured, repr(screen)
    assert ERASE_LINE in screen  # the live table was drawn, then cleared for the final table
    assert "PASS: every blocking gate passed (1 PASS)" in SGR.sub("", screen)
