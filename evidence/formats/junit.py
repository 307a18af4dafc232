"""JUnit XML: one testsuite per gate, one testcase per check, for CI dashboards."""

from __future__ import annotations

from xml.etree import ElementTree

from checks.interface import Status
from opsctl.results import RunResult


def render_junit(run: RunResult) -> str:
    """The run as JUnit XML: FAIL is a failure, ERROR an error, SKIP and BLOCKED skipped."""
    suites = ElementTree.Element(
        "testsuites", name=f"opsctl verify {run.env}", time=f"{run.duration_s:.3f}"
    )
    for gate in run.gates:
        cases = gate.checks or ()
        suite = ElementTree.SubElement(
            suites,
            "testsuite",
            name=f"{gate.gate_id} {gate.title}",
            tests=str(max(len(cases), 1)),
            failures=str(sum(c.status is Status.FAIL for c in cases)),
            errors=str(sum(c.status is Status.ERROR for c in cases)),
            skipped=str(sum(c.status is Status.SKIP for c in cases) + (0 if cases else 1)),
            time=f"{gate.duration_s:.3f}",
        )
        if not cases:  # a skipped or blocked gate still shows up, with its reason
            case = ElementTree.SubElement(
                suite, "testcase", classname=gate.gate_id, name=gate.gate_id
            )
            ElementTree.SubElement(case, "skipped", message=f"{gate.status.value}: {gate.reason}")
            continue
        for check in cases:
            case = ElementTree.SubElement(
                suite,
                "testcase",
                classname=gate.gate_id,
                name=check.check_id,
                time=f"{check.duration_s:.3f}",
            )
            message = check.reason + (f" (hint: {check.hint})" if check.hint else "")
            tag = {Status.FAIL: "failure", Status.ERROR: "error", Status.SKIP: "skipped"}.get(
                check.status
            )
            if tag:
                ElementTree.SubElement(case, tag, message=message)
            elif check.status is Status.WARN:
                ElementTree.SubElement(case, "system-out").text = f"WARN: {message}"
    ElementTree.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, "unicode") + "\n"
    )
