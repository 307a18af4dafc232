"""The conventions users bring: -h, examples and exit codes in --help, --debug and --config in
either position, OPSCTL_CONFIG and upward discovery, shell completion, --json listings."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from evidence.bundle import EvidenceWriter
from evidence.store import list_bundles
from opsctl.cli import cli, main
from opsctl.config_file import locate_config
from opsctl.exitcodes import EXIT_MEANING, ExitCode
from tests.conftest import run_opsctl
from tests.evidence.test_bundle import fixed_now, inputs

PROJECT = """
[environments.render]
base_url = "https://clara.onrender.com"

[environments.staging]
base_url = "https://clara-staging.onrender.com"

[evidence]
dir = "out/evidence"
signoffs = "out/signoffs.jsonl"

[gates."P2.1"]
title = "Twilio pipeline"
checks = ["webhook"]

[gates."P2.6"]
title = "Security"
checks = []
needs = ["P2.1"]
skip_reason = "lands later"
manual = ["UAT checklist completed"]
"""
# The commands whose help must show examples (2-4 real command lines), and those with the
# exit-code table too.
WITH_EXAMPLES = [
    (),
    ("verify",),
    ("check",),
    ("gates",),
    ("warmup",),
    ("warmup", "status"),
    ("evidence",),
    ("notion", "sync"),
    ("gate", "sign"),
]
WITH_EXIT_CODES = [(), ("verify",), ("check",)]


def every_command() -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Each command and group under `opsctl`, with the words that name it."""

    def walk(
        path: tuple[str, ...], command: click.Command
    ) -> Iterator[tuple[tuple[str, ...], click.Command]]:
        yield path, command
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk((*path, name), sub)

    yield from walk((), cli)


def opsctl(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The config found from `cwd`, never from OPSCTL_CONFIG."""
    return run_opsctl(*args, cwd=cwd, env=env, unset=("OPSCTL_CONFIG",), timeout=60)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder holding opsctl.toml, with a subfolder two levels down."""
    (tmp_path / "opsctl.toml").write_text(PROJECT)
    (tmp_path / "docs" / "notes").mkdir(parents=True)
    return tmp_path


def help_of(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> str:
    assert main([*path, "-h"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def flat(text: str) -> str:
    return " ".join(text.split())


# --- help ---------------------------------------------------------------------------------


def test_h_and_help_on_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    names = []
    for path, _ in every_command():
        short = help_of(path, capsys)
        assert main([*path, "--help"]) == 0
        assert capsys.readouterr().out == short
        assert short.startswith(f"Usage: {' '.join(('opsctl', *path))} ")
        assert "-h, --help" in short
        names.append(" ".join(path))
    assert {"verify", "gate sign", "warmup status", "evidence list"} <= set(names)


def test_every_command_takes_debug_and_every_config_user_takes_config() -> None:
    for path, command in every_command():
        options = {opt for param in command.params for opt in param.opts}
        assert "--debug" in options, path
        if path and path[0] in ("verify", "check", "gates", "warmup", "evidence", "gate"):
            assert "--config" in options, path


@pytest.mark.parametrize("path", WITH_EXIT_CODES, ids=lambda p: " ".join(p) or "opsctl")
def test_the_exit_code_table_is_in_the_help(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """Generated from EXIT_MEANING: a new exit code gets its line, or this fails."""
    text = help_of(path, capsys)
    assert "Exit codes:" in text
    for code in ExitCode:
        assert f"{int(code)} {flat(EXIT_MEANING[code])}" in flat(text), code
    assert max(len(line) for line in text.splitlines()) <= 84, "click rewrapped nothing"


@pytest.mark.parametrize("path", WITH_EXAMPLES, ids=lambda p: " ".join(p) or "opsctl")
def test_the_examples_are_command_lines_click_accepts(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_of(path, capsys)
    examples = text.split("Examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert 2 <= len(examples) <= 5, examples
    for line in examples:
        words = shlex.split(line, comments=True)
        for end in ("|", ">", "||"):  # the shell's part of the line
            words = words[: words.index(end)] if end in words else words
        assert words[0] == "opsctl", line
        command: click.Command = cli
        rest = words[1:]
        while isinstance(command, click.Group) and rest and rest[0] in command.commands:
            command, rest = command.commands[rest[0]], rest[1:]
        if path:
            assert words[1] == path[0], f"{line!r} is not an example of {path}"
        # Parsing alone: an unknown option, a missing required one or a bad value raises
        # (-h prints the help and exits 0).
        parent = click.Context(cli, info_name="opsctl", **cli.context_settings)
        try:
            command.make_context(" ".join(words), rest, parent=parent)
        except click.exceptions.Exit as done:
            assert (done.exit_code, words[-1]) == (0, "-h"), line


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys; from opsctl.cli import main; rc = main(['--help']); "
        "print(sorted(m for m in ('httpx', 'rich', 'jsonschema', 'flask', 'checks.registry', "
        "'opsctl.config') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "[]"


# --- --debug and --config, before or after the subcommand --------------------------------


def test_debug_after_the_subcommand_shows_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.toml")
    for args in (
        ["gates", "--debug", "--config", missing],
        ["--debug", "gates", "--config", missing],
    ):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "Traceback" in err and err.endswith(
            f"opsctl: {missing}: not found; fix: "
            + (
                "correct the path given to --config or OPSCTL_CONFIG, or leave both unset to use "
                "the nearest opsctl.toml\n"
            )
        )
    assert main(["gates", "--config", missing]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [["verify", "--debug", "--bogus"], ["--debug", "verify", "--bogus"], ["verify", "--bogus"]],
)
def test_a_usage_error_is_clicks_lines_and_exit_2_even_with_debug(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "Usage: opsctl verify [OPTIONS]\n"
        "Try 'opsctl verify --help' for help.\n\n"
        "Error: No such option '--bogus'.\n"
    )


def test_config_before_or_after_the_subcommand_the_one_after_wins(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = str(project / "opsctl.toml"), str(tmp_path / "missing.toml")
    for args in (
        ["--config", good, "gates"],
        ["gates", "--config", good],
        ["--config", bad, "gates", "--config", good],
        ["--config", bad, "gate", "--config", good, "waive", "P2.1", "--reason", "r", "--by", "a"],
    ):
        assert main(args) == 0, args
        assert "P2.1" in capsys.readouterr().out
    assert main(["--config", good, "gates", "--config", bad]) == 2
    assert capsys.readouterr().err.startswith(f"opsctl: {bad}: not found")


def test_a_group_passes_its_config_to_its_subcommand(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`warmup --config X status`: status reads X (no pings yet: exit 1, not a config error)."""
    config = str(project / "opsctl.toml")
    args = ["status", "--env", "render", "--log-dir", str(tmp_path / "logs"), "--json"]
    assert main(["warmup", "--config", config, *args]) == 1
    assert json.loads(capsys.readouterr().out)["why"] == "no pings in 24h"


# --- discovery -----------------------------------------------------------------------------


def test_discovery_nearest_opsctl_toml_upward(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (tmp_path / "opsctl.toml").write_text(PROJECT)
    (tmp_path / "a" / "b" / "opsctl.toml").mkdir()  # a folder by that name is not a config
    assert locate_config(None, {}, deep) == Path("../../../opsctl.toml")
    assert (deep / locate_config(None, {}, deep)).resolve() == tmp_path / "opsctl.toml"
    (tmp_path / "a" / "opsctl.toml").write_text(PROJECT)
    assert locate_config(None, {}, deep) == Path("../../opsctl.toml")  # the first one up
    assert locate_config(None, {}, tmp_path) == Path("opsctl.toml")
    env = {"OPSCTL_CONFIG": "/etc/opsctl.toml"}
    assert locate_config(None, env, deep) == Path("/etc/opsctl.toml")
    assert locate_config(Path("x.toml"), env, deep) == Path("x.toml")


def test_from_a_subfolder_paths_stay_relative_to_the_config(project: Path) -> None:
    """A real run from two levels down: the gates are found, the sign-off ledger and
    PHASE-STATUS.md land beside opsctl.toml (as the config says), nothing in the subfolder."""
    sub = project / "docs" / "notes"
    listed = opsctl("gates", cwd=sub)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("P2.1  Twilio pipeline  (blocking)\n")
    signed = opsctl(
        "gate", "sign", "P2.6", "--item", "UAT checklist completed", "--by", "ana", cwd=sub
    )
    assert signed.returncode == 0, signed.stderr
    assert (project / "out" / "signoffs.jsonl").read_text().count("\n") == 1
    assert (project / "PHASE-STATUS.md").is_file()
    assert list(sub.iterdir()) == []
    bundles = opsctl("evidence", "list", "--json", cwd=sub)
    assert (bundles.returncode, bundles.stdout) == (0, "[]\n")


def test_opsctl_config_and_no_config_anywhere(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    if any((folder / "opsctl.toml").is_file() for folder in elsewhere.parents):
        pytest.skip(f"an opsctl.toml above {elsewhere} would be found")
    config = str(project / "opsctl.toml")
    found = opsctl("gates", cwd=elsewhere, env={"OPSCTL_CONFIG": config})
    assert (found.returncode, found.stderr) == (0, "")
    given_wins = opsctl(
        "gates", "--config", config, cwd=elsewhere, env={"OPSCTL_CONFIG": "/nope.toml"}
    )
    assert given_wins.returncode == 0, given_wins.stderr
    lost = opsctl("gates", cwd=elsewhere)
    assert (lost.returncode, lost.stdout) == (2, "")
    assert lost.stderr == (
        f"opsctl: no opsctl.toml in {elsewhere} or any folder above it; fix: pass --config PATH, "
        "set OPSCTL_CONFIG=PATH, or run opsctl from the project (a folder holding opsctl.toml, "
        "or one below it)\n"
    )


# --- shell completion (click's own protocol, as bash drives it) --------------------------


def complete(words: str, cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    """What `opsctl` answers bash for the command line `words` (the cursor at its end)."""
    done = opsctl(
        cwd=cwd,
        env={
            "_OPSCTL_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(shlex.split(words)) - (0 if words.endswith(" ") else 1)),
            **(env or {}),
        },
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return [line for line in done.stdout.splitlines() if line]


def test_completion_of_environments_gates_and_checks(project: Path) -> None:
    sub = project / "docs" / "notes"
    assert complete("opsctl verify --env ", sub) == ["plain,render", "plain,staging"]
    assert complete("opsctl verify --env st", sub) == ["plain,staging"]
    assert complete("opsctl verify --env local --only ", sub) == ["plain,P2.1", "plain,P2.6"]
    assert complete("opsctl gate sign P2.", sub) == ["plain,P2.1", "plain,P2.6"]
    assert complete("opsctl notion sync --env r", sub) == ["plain,render"]
    assert complete("opsctl check webh", sub) == ["plain,webhook"]


def test_completion_follows_config_and_never_fails(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text('[environments.prod]\nbase_url = "https://x"\n')
    sub = project / "docs" / "notes"
    assert complete(f"opsctl --config {other} verify --env ", sub) == ["plain,prod"]
    assert complete(f"opsctl verify --config {other} --env ", sub) == ["plain,prod"]
    assert complete("opsctl verify --env ", sub, {"OPSCTL_CONFIG": str(other)}) == ["plain,prod"]
    broken = tmp_path / "broken.toml"
    broken.write_bytes(b"\xff\xfe[environments")
    assert complete(f"opsctl verify --config {broken} --env ", sub) == []
    assert complete(f"opsctl verify --config {tmp_path} --env ", sub) == []


# --- --json on the listings ------------------------------------------------------------


def test_gates_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gates", "--json", "--config", str(project / "opsctl.toml")]) == 0
    assert capsys.readouterr().out == (
        json.dumps(
            [
                {
                    "blocking": True,
                    "checks": ["webhook"],
                    "id": "P2.1",
                    "needs": [],
                    "skip_reason": "",
                    "title": "Twilio pipeline",
                },
                {
                    "blocking": True,
                    "checks": [],
                    "id": "P2.6",
                    "needs": ["P2.1"],
                    "skip_reason": "lands later",
                    "title": "Security",
                },
            ],
            indent=2,
        )
        + "\n"
    )


def test_evidence_list_json(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "bundles"
    first = EvidenceWriter(root, now=fixed_now).write(inputs(), secrets=[])
    second = EvidenceWriter(root, now=fixed_now).write(inputs(), secrets=[])
    args = ["evidence", "list", "--config", str(project / "opsctl.toml"), "--evidence-dir"]
    assert main([*args, str(root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    bundles = list_bundles(root)
    assert [row["name"] for row in rows] == [b.name for b in bundles]
    assert {row["path"] for row in rows} == {str(first), str(second)}
    row = rows[0]
    assert sorted(row) == [
        "counts",
        "env",
        "exit_code",
        "name",
        "outcome",
        "path",
        "started_at",
        "verdict",
        "verdict_line",
    ]
    assert row["counts"] == bundles[0].counts and sum(row["counts"].values()) > 1
    assert (
        row["verdict"] == bundles[0].verdict.split(":")[0]
        and row["verdict"] in (row["verdict_line"])
    )
    assert (row["env"], row["outcome"]) == (bundles[0].env, "completed")
    assert row["exit_code"] in {int(code) for code in ExitCode}
    assert main([*args, str(tmp_path / "none"), "--json"]) == 0
    assert capsys.readouterr().out == "[]\n"
