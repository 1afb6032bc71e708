"""JUnit XML: count a report's test cases, and write one for a command that wrote none (pure)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

MESSAGE_CHARS = 200
# Characters XML 1.0 cannot carry, not even escaped.
_INVALID_XML = re.compile(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class ReportError(ValueError):
    """The file is not a JUnit report."""


@dataclass
class Failure:
    name: str
    message: str  # the first line of the failure or error

    def __str__(self) -> str:
        return f"{self.name}: {self.message}" if self.message else self.name


@dataclass
class Counts:
    passed: int = 0
    failed: int = 0  # failures and errors alike
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped


def _first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= MESSAGE_CHARS else line[: MESSAGE_CHARS - 3] + "..."
    return ""


def case_name(case: ET.Element) -> str:
    """``tests.test_app::test_x``: pytest's classname (module, then class) and the test's name."""
    classname, name = case.get("classname", ""), case.get("name", "")
    return f"{classname}::{name}" if classname and name else classname or name or "(unnamed test)"


def count(root: ET.Element) -> Counts:
    """Count every <testcase>: any <failure> or <error> makes it failed, else <skipped> skipped.

    A report without test cases (some tools write only totals) is counted from its innermost
    <testsuite> attributes.
    """
    counts = Counts()
    cases = list(root.iter("testcase"))
    for case in cases:
        bad = next((c for c in case if c.tag in ("failure", "error")), None)
        if bad is not None:
            counts.failed += 1
            counts.failures.append(Failure(case_name(case), _first_line(bad.get("message")) or _first_line(bad.text)))
        elif any(c.tag == "skipped" for c in case):
            counts.skipped += 1
        else:
            counts.passed += 1
    if cases:
        return counts
    suites = [s for s in root.iter("testsuite") if s.find(".//testsuite") is None]
    for suite in suites:
        try:
            tests, failures, errors, skipped = (
                int(suite.get(key) or 0) for key in ("tests", "failures", "errors", "skipped")
            )
        except ValueError as err:
            raise ReportError(f"testsuite attribute is not a number: {err}") from err
        counts.failed += failures + errors
        counts.skipped += skipped
        counts.passed += max(tests - failures - errors - skipped, 0)
    return counts


def parse(path: Path) -> Counts:
    """Counts of the JUnit report at ``path``; ReportError when it is not one."""
    try:
        # The report comes from the app's own test run, which already ran its code here; expat (2.4.1+)
        # bounds entity expansion and ElementTree resolves no external entity.
        root = ET.parse(path).getroot()  # noqa: S314 - see above: nothing to gain for the app's code
    except ET.ParseError as err:
        raise ReportError(f"not XML ({err})") from err
    if root.tag not in ("testsuites", "testsuite"):
        raise ReportError(f"root element <{root.tag}> is neither <testsuites> nor <testsuite>")
    return count(root)


def command_report(name: str, command: str, exit_code: int, seconds: float, output_tail: str) -> bytes:
    """A report with one test case, the command, for a command that wrote no JUnit of its own."""
    failed = exit_code != 0
    suites = ET.Element("testsuites")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=name,
        tests="1",
        failures=str(int(failed)),
        errors="0",
        skipped="0",
        time=f"{seconds:.3f}",
    )
    case = ET.SubElement(suite, "testcase", classname=name, name=_INVALID_XML.sub("", command), time=f"{seconds:.3f}")
    if failed:
        failure = ET.SubElement(case, "failure", message=f"exit code {exit_code}")
        failure.text = _INVALID_XML.sub("", output_tail)
    data: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return data + b"\n"
