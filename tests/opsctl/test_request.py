"""Every option of `verify` and `check` reaches the core unchanged, as one VerifyRequest."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click
import pytest

from opsctl import cli, job
from opsctl.job import VerifyRequest

FIELDS = {f.name for f in dataclasses.fields(VerifyRequest)}


def non_default_arguments(command: click.Command) -> tuple[list[str], dict[str, Any]]:
    """A command line giving every parameter of `command` a value that is not its default,
    and the value each should arrive with."""
    args: list[str] = []
    expected: dict[str, Any] = {}
    for param in command.params:
        assert param.name is not None
        if isinstance(param, click.Argument):
            args.append("webhook")
            expected[param.name] = "webhook"
            continue
        assert isinstance(param, click.Option)
        flag = param.opts[0]
        if param.is_flag:
            args.append(flag)
            expected[param.name] = True
        elif param.multiple:
            args += [flag, "P2.1", flag, "P2.2"]
            expected[param.name] = ("P2.1", "P2.2")
        elif isinstance(param.type, click.Choice):
            choice = next(c for c in param.type.choices if c != param.default)
            args += [flag, str(choice)]
            expected[param.name] = choice
        elif isinstance(param.type, click.Path):
            args += [flag, f"/somewhere/{param.name}"]
            expected[param.name] = Path(f"/somewhere/{param.name}")
        else:
            args += [flag, f"value-of-{param.name}"]
            expected[param.name] = f"value-of-{param.name}"
        assert expected[param.name] != param.default, param.name
        if param.name == "env_names" and not param.multiple:  # `check`'s one --env, as a tuple
            expected[param.name] = (expected[param.name],)
    return args, expected


@pytest.mark.parametrize("name", ["verify", "check"])
def test_every_option_arrives_in_the_request(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    command = cli.cli.commands[name]
    received: list[VerifyRequest] = []

    def execute(request: VerifyRequest) -> int:
        received.append(request)
        return 0

    monkeypatch.setattr(job, "execute", execute)
    args, expected = non_default_arguments(command)
    assert set(expected) <= FIELDS, f"options with no field: {set(expected) - FIELDS}"
    assert cli.main([name, *args]) == 0
    (request,) = received
    assert {k: getattr(request, k) for k in expected} == expected
    assert request.debug is True  # --debug after the subcommand reaches the request


def test_the_request_has_no_field_that_no_command_sets() -> None:
    options = {p.name for c in ("verify", "check") for p in cli.cli.commands[c].params}
    assert FIELDS - options == set(), "a field no option sets is an option lost on the way"
