"""Driver states through the whole engine, and ED101/ED102 telling the same story."""
from __future__ import annotations

from envdoctor import knowledge as kb
from envdoctor.engine import diagnose
from envdoctor.model import Severity
from tests.unit.test_rules_cases import DRIVER_OK, MISSING, findings_of, make_facts
from tests.unit.test_rules_scenarios import by_code, load, no_crashes


def test_recorded_user_space_driver_machine():
    report = diagnose(load("debian12_user_space_driver"))
    no_crashes(report)
    found = by_code(report)
    (finding,) = found["ED105"]
    assert finding.severity == Severity.WARNING
    assert "torch.cuda_error = CUDA initialization: The NVIDIA driver on your system is too old (found version " \
           "12020)" in " ".join(finding.evidence)
    assert "ED303" not in found  # "no NVIDIA driver or GPU was found" would contradict ED105
    assert not {"ED106", "ED107", "ED108", "ED109"} & set(found)
    statuses = {r.rule: r.status for r in report.results}
    assert statuses["ED101"] == "skipped"  # no loaded driver to judge; ED105 says why torch warned


def test_scenarios_without_driver_state_still_load_and_skip_the_state_rules():
    report = diagnose(load("classic_cu111"))
    no_crashes(report)
    skipped = {r.rule: r.detail for r in report.results if r.status == "skipped"}
    for code in ("ED105", "ED106", "ED107", "ED108", "ED109"):
        assert skipped[code] == "not available: driver.state"


def test_ed102_and_ed101_apply_the_same_minor_version_compatibility():
    old_driver = {"driver.version": "470.82.01", "driver.cuda_max": "11.4", "torch:cuda": "11.8",
                  "torch:version": "2.7.1+cu118"}
    # ED101: driver 470 runs torch cu118 (11.x runs on >= 450.80.02) ...
    assert findings_of("ED101", old_driver) == []
    assert kb.check_driver_for_cuda("470.82.01", "11.8")["ok"] is True
    # ... so ED102 must not tell the user to stay at or below 11.4.
    (finding,) = findings_of("ED102", old_driver)
    text = finding.message + " ".join(f.summary for f in finding.fixes)
    assert "11.4 is" not in text.replace("it reports 11.4", "")
    assert "no newer than" not in text
    assert "runs CUDA <= 11.8 (11.x through minor-version compatibility; it reports 11.4)" in finding.message
    assert finding.fixes[0].summary.startswith("Build with a CUDA toolkit driver 470.82.01 runs (CUDA 11.x up to "
                                               "11.8)")
    # An nvcc 11.8 with that driver: nothing to say.
    assert findings_of("ED102", dict(old_driver, **{"nvcc.version": "11.8.89"})) == []


def test_newest_cuda_for_driver_follows_the_minor_version_floors():
    assert kb.newest_cuda_for_driver("470.82.01") == "11.8"
    assert kb.newest_cuda_for_driver("525.60.13").startswith("12.")
    assert kb.newest_cuda_for_driver("580.65.06").startswith("13.")
    assert kb.newest_cuda_for_driver("418.43") == "10.1"  # before CUDA 11: no minor-version compatibility
    assert kb.newest_cuda_for_driver("not a driver") is None
    for driver in ("470.82.01", "535.104.05", "580.65.06"):
        newest = kb.newest_cuda_for_driver(driver)
        assert kb.check_driver_for_cuda(driver, newest)["ok"] is True


def test_healthy_machine_state_rules_pass_or_do_not_apply():
    report = diagnose(make_facts(), only=["ED105", "ED106", "ED107", "ED108", "ED109"])
    assert report.findings == []
    assert {r.rule: r.status for r in report.results} == {"ED105": "passed", "ED106": "skipped",
                                                           "ED107": "skipped", "ED108": "passed", "ED109": "passed"}


def test_torch_cuda_init_message_is_evidence_of_the_driver_state():
    mismatch = {"driver.smi": {"status": "not_found", "message": "nvidia-smi is not on PATH"},
                "driver.version": MISSING,
                "driver.state": dict(DRIVER_OK, state="library_mismatch", kernel_module_version="570.133.07",
                                     user_space_version="575.57.08", nvml_init="NVML_ERROR_LIB_RM_VERSION_MISMATCH")}
    said = "CUDA initialization: CUDA driver initialization failed, you might not have a CUDA gpu. (Triggered ...)"
    (quiet,) = findings_of("ED109", mismatch)
    assert not any(e.startswith("torch.cuda_error") for e in quiet.evidence)
    (loud,) = findings_of("ED109", dict(mismatch, **{"torch:cuda_available": False, "torch:cuda_error": said}))
    assert f"torch.cuda_error = {said}" in loud.evidence
