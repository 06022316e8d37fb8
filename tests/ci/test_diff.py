"""envdoctor diff on scenario fact sets (fast) and through the CLI."""
import json
import os
import subprocess
import sys

from envdoctor import diff
from envdoctor.engine import diagnose
from envdoctor.model import Fact, FactSet, Report
from envdoctor.render import Redactor, render
from envdoctor.rules import all_rules

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENARIO = os.path.join(ROOT, "tests", "fixtures", "scenarios", "this_machine.json")
PLAIN = Redactor(enabled=False)


def unset_and_set():
    with open(SCENARIO, encoding="utf-8") as fh:
        facts = Report.from_dict(json.load(fh)).facts
    fixed = FactSet(list(facts))
    fixed.add(Fact("env.vars", {"CUDA_HOME": "/usr/local/cuda"}, source="environment"))
    torch = dict(facts.value("torch"), cpp_ext_cuda_home="/usr/local/cuda", cpp_ext_cuda_home_source="CUDA_HOME")
    fixed.add(Fact("torch", torch, source="torch"))
    return diagnose(facts), diagnose(fixed)


def needs():
    return {r.code: r.needs for r in all_rules()}


def test_cuda_home_difference_clears_ed203():
    unset, fixed = unset_and_set()
    result = diff.compare(unset, fixed, PLAIN, needs())
    assert [(d.what, d.a, d.b, d.clears, d.causes) for d in result.differences] == [
        ("CUDA_HOME torch extensions use", "/usr/local", "/usr/local/cuda", ["ED203"], []),
        ("CUDA_HOME", "unset", "/usr/local/cuda", ["ED203"], []),
    ]
    assert list(result.only_a) == ["ED203"] and not result.only_b and not result.untied
    # the other way round the same difference causes it
    back = diff.compare(fixed, unset, PLAIN, needs())
    assert [d.causes for d in back.differences] == [["ED203"], ["ED203"]]


def test_same_report_is_the_same_and_text_says_so():
    unset, _ = unset_and_set()
    result = diff.compare(unset, unset, PLAIN, needs())
    assert result.same
    assert "No differences that matter" in diff.render_text(result, "a.json", "b.json")


def test_redacted_and_unredacted_reports_of_one_machine_match():
    facts = FactSet([Fact("toolkits", [{"root": "/home/alice/cuda", "version": "12.1"},
                                       {"root": "/usr/local/cuda-13.0", "version": "13.0"}]),
                     Fact("env.vars", {"CUDA_HOME": "/home/alice/cuda"})])
    redactor = Redactor(home="/home/alice", user="alice")
    redacted = FactSet.from_list(redactor.data(facts.to_list()))
    result = diff.compare(Report(facts=facts), Report(facts=redacted), redactor)
    assert result.same, result.differences


def test_untied_finding_is_still_reported():
    a = Report(facts=FactSet([Fact("env.vars", {})]))
    b = Report(facts=FactSet([Fact("env.vars", {})]),
               findings=[f for f in unset_and_set()[0].findings if f.code == "ED203"])
    result = diff.compare(a, b, PLAIN)
    assert result.untied == ["ED203"] and not result.same
    assert "ED203 (error) only in B" in diff.render_text(result, "a", "b")


def run_diff(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "envdoctor", "diff", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_cli_markdown_against_json_exit_codes(tmp_path):
    unset, fixed = unset_and_set()
    (tmp_path / "issue.md").write_text("My build fails:\n\n" + render(unset, "markdown", redactor=PLAIN))
    (tmp_path / "ci.json").write_text(render(fixed, "json", redactor=PLAIN))
    result = run_diff("issue.md", "ci.json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) <= 4 and any("CUDA_HOME" in ln and "ED203" in ln for ln in lines), result.stdout
    assert run_diff("ci.json", "ci.json", cwd=tmp_path).returncode == 0
    data = json.loads(run_diff("--format", "json", "issue.md", "ci.json", cwd=tmp_path).stdout)
    assert data["findings_only_in_a"] == ["ED203"] and data["same"] is False
    (tmp_path / "junk.md").write_text("no report here")
    bad = run_diff("ci.json", "junk.md", cwd=tmp_path)
    assert bad.returncode == 2 and "B (junk.md): no envdoctor report data found" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = run_diff("gone.json", "ci.json", cwd=tmp_path)
    assert missing.returncode == 2 and "A: cannot read gone.json" in missing.stderr


def test_two_scenario_machines_every_changed_finding_is_tied():
    def load(name):
        with open(os.path.join(ROOT, "tests", "fixtures", "scenarios", f"{name}.json"), encoding="utf-8") as fh:
            return diagnose(Report.from_dict(json.load(fh)).facts)

    result = diff.compare(load("classic_cu111"), load("this_machine"), PLAIN, needs())
    rows = {d.what: d for d in result.differences}
    assert result.untied == []
    assert rows["build dir of MultiScaleDeformableAttention (mask2former)"].clears == ["ED601"]
    assert rows["torch's CUDA"].a == "11.1" and rows["torch's CUDA"].b == "13.0"
    assert "ED202" in rows["torch's CUDA"].clears
    assert rows["CUDA_HOME"].a == '"" (set, empty)' and rows["CUDA_HOME"].b == "unset"
    assert rows["torch's arch list"].b == "sm_75, sm_80, sm_86, sm_90, sm_100, sm_120"
