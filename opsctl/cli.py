"""The `opsctl` command line: parse options, build objects, call the core, return an exit code."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import click
import httpx
from dotenv import dotenv_values

from opsctl.devserver import DevServer, DevServerError
from opsctl.errors import report
from opsctl.exitcodes import ExitCode


def _environment(env_file: Path) -> dict[str, str]:
    """os.environ over the .env file: what is exported wins, as with docker and Render."""
    from_file = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return {**from_file, **os.environ}


@click.group()
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Ops toolkit for the Clara WhatsApp bot."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.option("--port", type=click.IntRange(0, 65535), default=10000, show_default=True)
@click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    default=Path(".env"),
    show_default=True,
    help="Variables for the bot (exported ones win).",
)
def serve(port: int, env_file: Path) -> None:
    """Serve the bot on 127.0.0.1 with the Dockerfile's gunicorn command; Ctrl-C stops it."""
    server = DevServer(_environment(env_file), port=port, on_line=click.echo)
    # SIGTERM (from a supervisor or `timeout`) stops gunicorn too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        url = server.start()
        health = _wait_for_health(url, server)
        click.secho(
            f"Clara is serving at {url}  (health: {health}; webhook: {url}/webhook)", bold=True
        )
        click.echo("Press Ctrl-C to stop.")
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _wait_for_health(url: str, server: DevServer, budget: float = 30.0) -> str:
    deadline = time.monotonic() + budget
    status = "no answer"
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            status = httpx.get(f"{url}/health", timeout=2).json().get("status", "?")
        except (httpx.HTTPError, ValueError):
            status = "no answer"
        if status not in ("starting", "no answer"):
            return status
        time.sleep(0.2)
    if server.process.poll() is not None:
        raise DevServerError("gunicorn exited: " + " | ".join(server.lines[-3:]))
    return status


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command, map any error to one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    try:
        cli.main(args=args, standalone_mode=False)
    except click.exceptions.Abort:
        return ExitCode.USAGE
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except Exception as exc:
        return report(exc, debug="--debug" in args)
    return ExitCode.OK


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
