"""Core types, the command runner and the engine's crash isolation."""
import json
import stat
import time

import pytest

from envdoctor.engine import collect_facts, diagnose
from envdoctor.model import CheckResult, Fact, FactSet, Finding, Fix, Report, Severity
from envdoctor.probes.base import Probe, ProbeContext
from envdoctor.rules.base import Rule, RuleContext
from envdoctor.runner import CommandResult, FakeRunner, Runner


def test_report_round_trips_through_json():
    facts = FactSet([Fact("driver.version", "525.60.13", source="nvidia-smi", raw="| NVIDIA-SMI 525.60.13 |"),
                     Fact.unavailable("torch", "import torch raised ImportError")])
    finding = Finding("ED201", Severity.ERROR, "toolkit", "title", "message", ("a = b",),
                      (Fix("do it", ("export CUDA_HOME=/usr/local/cuda-13.0",), "set_env",
                           {"vars": {"CUDA_HOME": "/usr/local/cuda-13.0"}}),), "docs/codes/ED201.md")
    report = Report(facts, [finding], [CheckResult("ED201", "toolkit", "t", "fired")], {"x": 1})
    loaded = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert loaded.to_dict() == report.to_dict()
    assert loaded.worst == Severity.ERROR
    assert not loaded.facts.has("torch") and "torch" in loaded.facts


def test_report_with_unknown_schema_is_refused():
    with pytest.raises(ValueError, match="schema_version"):
        Report.from_dict({"schema_version": 99, "facts": []})


def test_severity_order():
    assert Severity.ERROR.at_least(Severity.WARNING)
    assert not Severity.INFO.at_least(Severity.WARNING)


def _script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_runner_runs_argv_with_c_locale(tmp_path):
    script = _script(tmp_path, "show", 'echo "$LC_ALL|$1"')
    result = Runner().run([script, "a b; rm -rf /"])
    assert result.ok and result.stdout.strip() == "C|a b; rm -rf /"


def test_runner_reports_missing_and_failing_commands(tmp_path):
    assert Runner().run([str(tmp_path / "nope")]).error == "not found"
    failing = _script(tmp_path, "fail", "echo boom >&2; exit 3")
    result = Runner().run([failing])
    assert result.returncode == 3 and not result.ok
    assert "exited with status 3: boom" in result.describe_failure()


def test_runner_never_hangs_even_when_children_keep_the_pipe(tmp_path):
    # a wrapper whose child inherits stdout and sleeps: killing only the parent would hang
    hanging = _script(tmp_path, "hang", "sleep 100 & sleep 100")
    started = time.monotonic()
    result = Runner().run([hanging], timeout=0.5)
    assert result.error == "timed out after 0.5s"
    assert time.monotonic() - started < 10


def test_fake_runner_matches_by_basename():
    fake = FakeRunner({"nvidia-smi": (0, "out"), ("nvcc", "--version"): CommandResult(("x",), 1, "", "bad")})
    assert fake.run(["/usr/bin/nvidia-smi", "-L"]).stdout == "out"
    assert fake.run(["nvcc", "--version"]).returncode == 1
    assert fake.run(["gcc"]).error == "not found"
    assert fake.calls[0] == ("/usr/bin/nvidia-smi", "-L")


def _rule(code, fn, needs=()):
    return Rule(code=code, area="toolkit", title=f"rule {code}", needs=tuple(needs), fn=fn)


def test_diagnose_skips_rules_with_missing_facts_and_isolates_crashes():
    facts = FactSet([Fact("a", 1), Fact.unavailable("b", "no")])

    def fires(ctx: RuleContext):
        return ctx.finding(Severity.WARNING, f"a is {ctx.value('a')}")

    def crashes(ctx):
        raise KeyError("boom")

    rules = [_rule("ED901", fires, ["a"]), _rule("ED902", fires, ["b"]), _rule("ED903", crashes, ["a"]),
             _rule("ED904", lambda ctx: None, ["a"])]
    report = diagnose(facts, rules=rules)
    status = {r.rule: r.status for r in report.results if r.rule.startswith("ED9")}
    assert status == {"ED901": "fired", "ED902": "skipped", "ED903": "crashed", "ED904": "passed"}
    assert [f.message for f in report.findings] == ["a is 1"]
    assert report.findings[0].docs == "docs/codes/ED901.md"


def test_diagnose_only_and_skip_patterns():
    rules = [_rule(c, lambda ctx: None) for c in ("ED201", "ED202", "ED301")]
    ran = lambda **kw: sorted(r.rule for r in diagnose(FactSet(), rules=rules, **kw).results if r.rule.startswith("ED"))
    assert ran(only=["ED2*"]) == ["ED201", "ED202"]
    assert ran(skip=["ED2*"]) == ["ED301"]
    assert ran(only=["ED2*"], skip=["ED202"]) == ["ED201"]


def test_crashing_probe_becomes_unavailable_facts(monkeypatch):
    def broken(ctx):
        raise RuntimeError("probe bug")

    def good(ctx):
        return [Fact("x.y", 2, source="test")]

    import envdoctor.engine as engine

    monkeypatch.setattr(engine, "load_probes",
                        lambda names=None: ([Probe("broken", broken, ("broken.key",)), Probe("good", good, ("x.y",))],
                                            [("missing_mod", "ImportError: nope")]))
    facts = collect_facts(ProbeContext(env={}, paths=()))
    assert facts.value("x.y") == 2
    assert "probe 'broken' crashed: RuntimeError: probe bug" in facts.get("broken.key").error
    assert not facts.has("probe.missing_mod")
    report = diagnose(facts, rules=[])
    assert any(r.rule == "probe.missing_mod" and r.status == "crashed" for r in report.results)


def test_probe_context_which_uses_its_own_path(tmp_path):
    exe = _script(tmp_path, "nvcc", "exit 0")
    ctx = ProbeContext(env={"PATH": f"/nonexistent:{tmp_path}"}, paths=())
    assert ctx.which("nvcc") == exe
    assert ctx.which("definitely-not-here") is None
    assert ProbeContext(env={}, root=str(tmp_path), paths=()).path("/usr/local/cuda") == str(tmp_path / "usr/local/cuda")


def test_not_applicable_rules_are_skipped_not_passed():
    rule = _rule("ED905", lambda ctx: ctx.not_applicable("no GPU here"))
    report = diagnose(FactSet(), rules=[rule])
    result = [r for r in report.results if r.rule == "ED905"][0]
    assert result.status == "skipped" and result.detail == "not applicable: no GPU here"
    assert report.findings == []
