"""JUnit XML: one testsuite per gate, one testcase per check, for CI dashboards.

Follows Jenkins' junit-10.xsd (evidence/schemas/junit-10.xsd, SOURCE.md beside it), which
GitLab's `artifacts:reports:junit`, Jenkins and GitHub's JUnit actions read.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

from checks.interface import Status
from opsctl.results import GateResult, RunResult

COUNTED = {"failure": "failures", "error": "errors", "skipped": "skipped"}
RED = frozenset({"failure", "error"})
"""The elements every JUnit reporter shows as a broken test (and a red run)."""
# What XML 1.0 cannot hold at all, escaped or not (a terminal's ESC in a tool's output, a NUL
# in a body the target sent): ElementTree would write it and no reader could parse the file.
NOT_XML = re.compile(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: str) -> str:
    """The text with characters XML cannot hold written as Python escapes (\\x1b)."""
    return NOT_XML.sub(lambda match: repr(match.group())[1:-1], text)


def advisory(status: Status, blocking: bool) -> bool:
    """Is this a failure of an advisory (non-blocking) gate? It never sets the exit code
    (opsctl/results.py judge), so it must not turn a CI dashboard red either: it is written
    as <skipped message="advisory: ..."> with its status kept as a suite property."""
    return not blocking and status.meaning.junit in RED


def _element(status: Status, blocking: bool, in_scope: bool) -> str | None:
    """The testcase's child element: the status's own (checks/statuses.py), but `skipped` for
    an advisory failure and for a gate the run was not asked to run, whatever its status."""
    if not in_scope or advisory(status, blocking):
        return "skipped"
    return status.meaning.junit


def _timestamp(started_at: str) -> str | None:
    """The run's start in UTC without a zone suffix: what Ant writes and the Ant-derived
    schemas require ("timezone may not be specified"); junit-10.xsd takes any string."""
    try:
        started = datetime.fromisoformat(started_at)
    except ValueError:
        return None  # an attribute left out rather than one a reader cannot parse
    if started.tzinfo is not None:
        started = started.astimezone(UTC)
    return started.strftime("%Y-%m-%dT%H:%M:%S")


def _body(message: str, hint: str, details: Mapping[str, Any]) -> str:
    """What a reporter shows under the test: the message again (GitLab shows the element's
    text; gitlab-org/gitlab-foss#53668 found its message attribute ignored), what to do about
    it, and the check's details (redacted by the runner like everything else)."""
    lines = [message]
    if hint:
        lines.append(f"hint: {hint}")
    if details:
        shown = json.dumps(dict(details), indent=2, ensure_ascii=False, default=str)
        lines.append(f"details: {shown}")
    return _xml_safe("\n".join(lines))


def _suite(parent: ElementTree.Element, name: str, stamp: dict[str, str]) -> ElementTree.Element:
    """A <testsuite> whose counts are set in this order now and filled in by _count."""
    attributes = {"name": name, "tests": "0", **dict.fromkeys(COUNTED.values(), "0")}
    return ElementTree.SubElement(parent, "testsuite", {**attributes, "time": "0.000", **stamp})


def _count(suite: ElementTree.Element) -> dict[str, int]:
    """Set the suite's counts from its testcases; return them."""
    cases = suite.findall("testcase")
    totals = {"tests": len(cases)}
    for tag, key in COUNTED.items():
        totals[key] = sum(case.find(tag) is not None for case in cases)
    for key, value in totals.items():
        suite.set(key, str(value))
    return totals


def _gate_suite(
    suites: ElementTree.Element,
    gate: GateResult,
    in_scope: bool,
    stamp: dict[str, str],
    env: str = "",
) -> ElementTree.Element:
    suite = _suite(suites, f"{_led(env, gate.gate_id)} {gate.title}", stamp)
    suite.set("time", f"{gate.duration_s:.3f}")
    # Kept for readers of the XML: reporters show testcases, so these only add to them.
    properties = ElementTree.SubElement(suite, "properties")
    for name, value in (
        ("status", gate.status.value),
        ("advisory", "false" if gate.blocking else "true"),
    ):
        ElementTree.SubElement(properties, "property", name=name, value=value)
    # A gate without checks (skipped, blocked, waived) is one testcase with its reason.
    cases = [(c.check_id, c.status, c.reason, c.hint, c.details, c.duration_s) for c in gate.checks]
    for name, status, reason, hint, details, duration in cases or [
        (gate.gate_id, gate.status, gate.reason, "", {}, 0.0)
    ]:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=_led(env, gate.gate_id),
            name=name,
            time=f"{duration:.3f}",
        )
        message = _xml_safe(f"{status.value}: {reason}")
        tag = _element(status, gate.blocking, in_scope)
        if tag is None:
            if status is not Status.PASS:  # a WARN: passed, with something to look at
                ElementTree.SubElement(case, "system-out").text = _body(message, hint, details)
            continue
        noted = in_scope and advisory(status, gate.blocking)
        if noted:
            message = f"advisory: {message}"
        element = ElementTree.SubElement(case, tag, type=status.value, message=message)
        if tag in RED or noted or hint or details:
            element.text = _body(message, hint, details)
    return suite


def _led(env: str, gate_id: str) -> str:
    """A gate's suite name and classname: led by its environment when a file holds several."""
    return f"{env}/{gate_id}" if env else gate_id


def render_junit(run: RunResult, hostname: str | None = None) -> str:
    """The run as JUnit XML: each status as checks/statuses.py maps it (FAIL and BLOCKED a
    failure, ERROR an error, SKIP and DOCUMENTED-BLOCKED skipped, PASS and WARN passed); an
    advisory gate's failure skipped (see `advisory`). `hostname`: this machine's by default."""
    partial = f" ({run.scope.describe()})" if run.scope.partial else ""
    return _document(f"opsctl verify {run.env}{partial}", [run], run.duration_s, hostname)


def render_junit_runs(runs: Sequence[RunResult], hostname: str | None = None) -> str:
    """Several environments' runs in one file, as render_junit writes one: every run's suites,
    each named and classed `ENV/GATE`, so a dashboard tells the environments apart."""
    scope = runs[0].scope if runs else None  # one request: every run has the same scope
    partial = f" ({scope.describe()})" if scope is not None and scope.partial else ""
    name = f"opsctl verify {', '.join(run.env for run in runs)}{partial}"
    # Side by side: the file's time is the longest run's, not the sum.
    longest = max((run.duration_s for run in runs), default=0.0)
    return _document(name, runs, longest, hostname, named=True)


def _document(
    name: str,
    runs: Sequence[RunResult],
    duration_s: float,
    hostname: str | None,
    named: bool = False,
) -> str:
    """<testsuites> holding every run's suites (led by the environment when `named`)."""
    host = hostname or socket.gethostname() or "localhost"  # the schemas' word for unknown
    # junit-10.xsd allows no `skipped` count on <testsuites>: each <testsuite> has its own.
    suites = ElementTree.Element(
        "testsuites",
        name=name,
        tests="0",
        failures="0",
        errors="0",
        time=f"{duration_s:.3f}",
    )
    for run in runs:
        timestamp = _timestamp(run.started_at)
        stamp = {"timestamp": timestamp} if timestamp else {}
        stamp["hostname"] = host
        env = run.env if named else ""
        for gate in run.gates:
            _gate_suite(suites, gate, gate.gate_id not in run.scope.not_run, stamp, env)
        listed = {gate.gate_id for gate in run.gates}
        for gate_id in run.scope.not_run:  # left out by --only: shown, so a dashboard sees the gap
            if gate_id not in listed:
                suite = _suite(suites, _led(env, gate_id), stamp)
                case = ElementTree.SubElement(
                    suite, "testcase", classname=_led(env, gate_id), name=gate_id
                )
                case.set("time", "0.000")
                ElementTree.SubElement(case, "skipped", message=f"not run: {run.scope.describe()}")
    totals = dict.fromkeys(("tests", "failures", "errors"), 0)
    for suite in suites.findall("testsuite"):
        counted = _count(suite)
        for key in totals:
            totals[key] += counted[key]
    for key, value in totals.items():
        suites.set(key, str(value))
    ElementTree.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, "unicode") + "\n"
    )
