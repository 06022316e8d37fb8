"""JUnit XML: one testcase per check, for the test reporters of GitLab, Jenkins and GitHub.

A check that passed is a passing testcase; one whose findings include a warning
or an error is a ``<failure>`` (message, evidence and fix in its text); a
skipped check is ``<skipped>`` with the reason; a crashed check or probe is an
``<error>``. A check that fired only information (e.g. "no GPU here, torch runs
on the CPU") passes, with the note in ``<system-out>``. The suite's counts are
those of its testcases.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Dict, List

from envdoctor.model import CheckResult, Finding, Report, Severity
from envdoctor.render.redact import Redactor

# XML 1.0 forbids most control characters; tool outputs carry some (terminal colours).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(redactor: Redactor, text: str) -> str:
    return _NOT_XML.sub("", redactor.text(text or ""))


def _finding_text(f: Finding) -> str:
    lines = [f"{f.code} {f.severity.value}: {f.message}"]
    if f.evidence:
        lines.append("evidence: " + "; ".join(f.evidence))
    for i, fix in enumerate(f.fixes):
        label = "fix" if i == 0 else ("then" if fix.follow_up else "or")
        lines.append(f"{label}: {fix.summary}")
        lines.extend("  " + c for c in fix.commands)
    if f.docs:
        lines.append(f"docs: {f.docs}")
    return "\n".join(lines)


def outcome(result: CheckResult, findings: List[Finding]) -> str:
    """passed | failed | skipped | error: what a check's testcase says."""
    if result.status == "crashed":
        return "error"
    if result.status == "skipped":
        return "skipped"
    if any(f.severity.at_least(Severity.WARNING) for f in findings):
        return "failed"
    return "passed"


def render_junit(report: Report, redactor: Redactor) -> str:
    by_code: Dict[str, List[Finding]] = {}
    for finding in report.findings:
        by_code.setdefault(finding.code, []).append(finding)
    cases = []
    counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    for result in report.results:
        findings = by_code.get(result.rule, [])
        verdict = outcome(result, findings)
        counts[verdict] += 1
        case = ET.Element("testcase", {"classname": f"envdoctor.{result.area}",
                                       "name": _clean(redactor, f"{result.rule} {result.title}"), "time": "0"})
        if verdict == "failed":
            worst = max((f.severity for f in findings), key=lambda s: s.rank)
            first = next(f for f in findings if f.severity == worst)
            node = ET.SubElement(case, "failure", {"message": _clean(redactor, first.message), "type": worst.value})
            node.text = _clean(redactor, "\n\n".join(_finding_text(f) for f in findings))
        elif verdict == "skipped":
            ET.SubElement(case, "skipped", {"message": _clean(redactor, result.detail)})
        elif verdict == "error":
            node = ET.SubElement(case, "error", {"message": _clean(redactor, result.detail), "type": "crashed"})
            node.text = _clean(redactor, f"{result.rule} crashed: {result.detail}")
        elif findings:
            ET.SubElement(case, "system-out").text = _clean(redactor, "\n\n".join(_finding_text(f) for f in findings))
        cases.append(case)
    seconds = report.meta.get("probe_seconds") or 0
    attrs = {"tests": str(len(cases)), "failures": str(counts["failed"]), "errors": str(counts["error"]),
             "skipped": str(counts["skipped"]), "time": f"{float(seconds):.3f}"}
    suites = ET.Element("testsuites", dict(attrs, name="envdoctor"))
    suite = ET.SubElement(suites, "testsuite", dict(attrs, name="envdoctor check"))
    if report.meta.get("created"):
        suite.set("timestamp", str(report.meta["created"]).rstrip("Z"))
    props = ET.SubElement(suite, "properties")
    for key in ("envdoctor_version", "platform", "requirements", "source_file"):
        if report.meta.get(key):
            ET.SubElement(props, "property", {"name": key, "value": _clean(redactor, str(report.meta[key]))})
    suite.extend(cases)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
