"""How `verify` and `check` show a run: progress mode, colour and final layout, decided once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Progress = Literal["live", "plain", "none"]
Final = Literal["json", "table", "summary", "text"]
# rich's word for a terminal that cannot move the cursor (Emacs' shell, some CI runners).
DUMB_TERMS = ("dumb", "unknown")


@dataclass(frozen=True)
class Output:
    """What the run shows, where, and whether in colour."""

    progress: Progress
    """live: a table redrawn in place; plain: a line per finished check; none: nothing."""
    color: bool
    """Status words (and the verdict) in their status's style."""
    terminal: bool
    """People read the stream on a terminal (rich lays the final table out to its width)."""
    to_stderr: bool
    """Progress goes to stderr: stdout holds the JSON (--json)."""
    final: Final
    """json: the run as JSON; table: rich's table; summary: the verdict, the gates and the
    checks the plain lines did not settle; text: every line of the run (evidence/formats/text)."""


def decide(
    progress: str,
    color: str,
    as_json: bool,
    environ: Mapping[str, str],
    stdout_tty: bool,
    stderr_tty: bool,
) -> Output:
    """The one place that maps the flags, the environment and the streams to what is shown.

    --progress auto: live on a terminal, else plain; under --json the stream is stderr, and
    auto shows nothing when stderr is not a terminal (a script parsing the JSON keeps stderr
    for errors; `--progress plain` asks for the lines there).
    --color always/never win; auto follows NO_COLOR (https://no-color.org: present and not
    empty, no colour; it wins over FORCE_COLOR, being the reader's own wish), then FORCE_COLOR
    (https://force-color.org: present and not empty, colour), then the terminal. Colour and
    layout are separate: NO_COLOR keeps the live table, FORCE_COLOR does not make a pipe live.
    """
    tty = stderr_tty if as_json else stdout_tty
    terminal = tty and environ.get("TERM", "").lower() not in DUMB_TERMS
    if progress == "auto":
        shown: Progress = "live" if terminal else "none" if as_json else "plain"
    else:
        shown = _progress(progress)
    if color == "auto":
        if environ.get("NO_COLOR", ""):
            coloured = False
        elif environ.get("FORCE_COLOR", ""):
            coloured = True
        else:
            coloured = terminal
    else:
        coloured = color == "always"
    final: Final
    if as_json:
        final = "json"
    elif shown == "plain":
        final = "summary"  # the checks were just listed: not twice
    elif shown == "live" or terminal:
        final = "table"
    else:
        final = "text"
    return Output(shown, coloured, terminal, as_json, final)


def _progress(value: str) -> Progress:
    if value == "live":
        return "live"
    if value == "plain":
        return "plain"
    if value == "none":
        return "none"
    raise ValueError(f"--progress {value!r}: use auto, live, plain or none")
