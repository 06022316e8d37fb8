"""JSON report: the stable, machine-readable interface (``schema_version``)."""
from __future__ import annotations

import json
from typing import Any, Dict

from envdoctor.model import Report, Severity
from envdoctor.render.redact import Redactor


def report_data(report: Report, redactor: Redactor) -> Dict[str, Any]:
    data = report.to_dict()
    data["summary"] = {
        "worst": report.worst.value,
        "counts": {s.value: sum(1 for f in report.findings if f.severity == s) for s in Severity if s != Severity.OK},
        "crashed": [r.rule for r in report.results if r.status == "crashed"],
    }
    data["meta"]["redacted"] = redactor.enabled
    return redactor.data(data)


def render_json(report: Report, redactor: Redactor) -> str:
    return json.dumps(report_data(report, redactor), indent=2, sort_keys=False) + "\n"
