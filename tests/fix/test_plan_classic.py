"""The classic cu111 scenario through the planner: alternatives vs follow-ups."""
import json
import os

from envdoctor.engine import diagnose
from envdoctor.fix.plan import Options, plan_fixes
from envdoctor.model import FactSet

SCENARIO = os.path.join(os.path.dirname(__file__), "..", "fixtures", "scenarios", "classic_cu111.json")


def classic_report():
    with open(SCENARIO) as fh:
        data = json.load(fh)
    facts = data["facts"] if isinstance(data, dict) else data
    return diagnose(FactSet.from_list(facts))


def test_stale_build_is_quarantined_then_rebuilt(tmp_path):
    report = classic_report()
    stale = [f for f in report.findings if f.code == "ED601"][0]
    assert [fx.follow_up for fx in stale.fixes] == [False, True]
    plan = plan_fixes(report, Options(env={"HOME": str(tmp_path)}))
    kinds = [s.kind for s in plan.steps]
    assert "quarantine" in kinds
    assert plan.rebuild_op or "rebuild_extension" in kinds


def test_pip_alternative_is_not_chosen_behind_a_manual_first_fix(tmp_path):
    report = classic_report()
    mismatch = [f for f in report.findings if f.code == "ED202"][0]
    assert mismatch.fixes[0].action != "pip_install"
    assert any(fx.action == "pip_install" for fx in mismatch.fixes)
    plan = plan_fixes(report, Options(env={"HOME": str(tmp_path)}, yes=True))
    assert "pip" not in [s.kind for s in plan.steps]
    manual = [s for s in plan.steps if s.kind == "manual" and "ED202" in s.codes]
    assert manual and manual[0].commands
