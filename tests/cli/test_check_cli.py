"""`envdoctor check` end to end through click's CliRunner, on saved reports (fast)."""
import json

import pytest
from click.testing import CliRunner

from envdoctor import exitcodes
from envdoctor.cli import cli, exit_status
from envdoctor.model import CheckResult, FactSet, Report
from envdoctor.render import Redactor, render
from tests.unit.test_render import sample_report


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(render(sample_report(), "json", redactor=Redactor(enabled=False)))
    return str(path)


def invoke(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_from_saved_report_runs_current_rules(saved):
    result = invoke("check", "--from", saved, "--format", "json")
    data = json.loads(result.output)
    assert data["schema_version"] == 1
    assert data["meta"]["source_file"] == "report.json"
    # the findings are recomputed by the current rules, not copied from the file
    assert all(r["status"] in ("passed", "fired", "skipped", "crashed") for r in data["results"])
    assert result.exit_code in (exitcodes.OK, exitcodes.FINDINGS)


def test_from_markdown_paste(saved, tmp_path):
    md = tmp_path / "issue.md"
    md.write_text("Hi, my build fails, report below:\n\n" +
                  render(sample_report(), "markdown", redactor=Redactor(enabled=True)))
    result = invoke("check", "--from", str(md), "--format", "json", "--fail-on", "never")
    assert result.exit_code == exitcodes.OK
    assert json.loads(result.output)["meta"]["source_file"] == "issue.md"


def test_from_stdin(saved):
    with open(saved) as fh:
        result = CliRunner().invoke(cli, ["check", "--from", "-", "--fail-on", "never", "-q"], input=fh.read())
    assert result.exit_code == exitcodes.OK, result.output
    assert "re-diagnosed" not in result.output  # -q: findings only


@pytest.mark.parametrize("content, message", [
    ("not json at all", "no envdoctor report data found"),
    ("{broken", "not valid JSON"),
    ('{"schema_version": 1}', "not an envdoctor report"),
    ('{"schema_version": 7, "facts": []}', "unsupported report schema_version 7"),
])
def test_bad_from_file_is_a_usage_error_without_traceback(tmp_path, content, message):
    path = tmp_path / "r.json"
    path.write_text(content)
    result = CliRunner().invoke(cli, ["check", "--from", str(path)])
    assert result.exit_code == exitcodes.USAGE
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_from_file_and_bad_option():
    assert CliRunner().invoke(cli, ["check", "--from", "/nonexistent/r.json"]).exit_code == exitcodes.USAGE
    result = CliRunner().invoke(cli, ["check", "--format", "yaml"])
    assert result.exit_code == exitcodes.USAGE and "'yaml' is not one of" in result.output


def test_output_file_is_written_atomically(saved, tmp_path):
    out = tmp_path / "out.md"
    result = invoke("check", "--from", saved, "--format", "markdown", "-o", str(out), "--fail-on", "never")
    assert result.exit_code == 0
    assert out.read_text().startswith("## envdoctor report")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".envdoctor-")] == []


def test_exit_status_thresholds():
    report = sample_report()  # one error, one warning
    assert exit_status(report, "error") == exitcodes.FINDINGS
    assert exit_status(report, "never") == exitcodes.OK
    warn_only = Report(report.facts, [f for f in report.findings if f.severity.value == "warning"], [])
    assert exit_status(warn_only, "error") == exitcodes.OK
    assert exit_status(warn_only, "warning") == exitcodes.FINDINGS
    crashed = Report(FactSet(), [], [CheckResult("ED201", "toolkit", "t", "crashed", "boom")])
    assert exit_status(crashed, "error") == exitcodes.INTERNAL


def test_rules_listing():
    result = invoke("rules", "--format", "json")
    rules = json.loads(result.output)
    assert result.exit_code == 0 and rules
    assert all(r["code"].startswith("ED") and r["docs"] == f"docs/codes/{r['code']}.md" for r in rules)
