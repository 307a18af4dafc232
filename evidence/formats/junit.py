"""JUnit XML: one testsuite per gate, one testcase per check, for CI dashboards."""

from __future__ import annotations

from xml.etree import ElementTree

from checks.interface import Status
from opsctl.results import RunResult

COUNTED = {"failure": "failures", "error": "errors", "skipped": "skipped"}


def _element(status: Status, in_scope: bool) -> str | None:
    """The testcase's child element: the status's own (checks/statuses.py); a gate the run was
    not asked to run is skipped, whatever its status."""
    return status.meaning.junit if in_scope else "skipped"


def render_junit(run: RunResult) -> str:
    """The run as JUnit XML: each status as checks/statuses.py maps it (FAIL and BLOCKED a
    failure, ERROR an error, SKIP and DOCUMENTED-BLOCKED skipped, PASS and WARN passed)."""
    partial = f" ({run.scope.describe()})" if run.scope.partial else ""
    suites = ElementTree.Element(
        "testsuites", name=f"opsctl verify {run.env}{partial}", time=f"{run.duration_s:.3f}"
    )
    for gate in run.gates:
        in_scope = gate.gate_id not in run.scope.not_run
        # A gate without checks (skipped, blocked, waived) is one testcase with its reason.
        cases = [(c.check_id, c.status, c.reason, c.hint, c.duration_s) for c in gate.checks] or [
            (gate.gate_id, gate.status, gate.reason, "", 0.0)
        ]
        attributes = {"name": f"{gate.gate_id} {gate.title}", "tests": str(len(cases))}
        attributes |= dict.fromkeys(COUNTED.values(), "0")  # counted below, kept in this order
        attributes["time"] = f"{gate.duration_s:.3f}"
        suite = ElementTree.SubElement(suites, "testsuite", attributes)
        totals = dict.fromkeys(COUNTED.values(), 0)
        for name, status, reason, hint, duration in cases:
            case = ElementTree.SubElement(
                suite, "testcase", classname=gate.gate_id, name=name, time=f"{duration:.3f}"
            )
            message = f"{status.value}: {reason}" + (f" (hint: {hint})" if hint else "")
            tag = _element(status, in_scope)
            if tag is not None:
                ElementTree.SubElement(case, tag, message=message)
                totals[COUNTED[tag]] += 1
            elif status is not Status.PASS:
                ElementTree.SubElement(case, "system-out").text = message
        for key, value in totals.items():
            suite.set(key, str(value))
    listed = {gate.gate_id for gate in run.gates}
    for gate_id in run.scope.not_run:  # left out by --only: shown, so a dashboard sees the gap
        if gate_id not in listed:
            counts = {"failures": "0", "errors": "0", "skipped": "1", "time": "0.000"}
            suite = ElementTree.SubElement(
                suites, "testsuite", {"name": gate_id, "tests": "1", **counts}
            )
            case = ElementTree.SubElement(suite, "testcase", classname=gate_id, name=gate_id)
            ElementTree.SubElement(case, "skipped", message=f"not run: {run.scope.describe()}")
    ElementTree.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, "unicode") + "\n"
    )
