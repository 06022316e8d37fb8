"""Whole machines as saved fact sets (tests/fixtures/scenarios/*.json) through the
real engine, the driver rules on facts probed from fake ``nvidia-smi`` executables
printing real recorded outputs, and the rules' own metadata."""
from __future__ import annotations

import json
import os
import re

import pytest

from envdoctor.engine import diagnose
from envdoctor.model import Fact, FactSet, Report, Severity
from envdoctor.probes import driver as driver_probe
from envdoctor.probes.base import ProbeContext
from envdoctor.rules import all_rules, load_failures
from tests.fixtures import corpus
from tests.fixtures.fake_bin import Response, path_with, write_fake

SCENARIOS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "scenarios")


def load(name: str) -> FactSet:
    with open(os.path.join(SCENARIOS, f"{name}.json"), encoding="utf-8") as fh:
        return Report.from_dict(json.load(fh)).facts


def replaced(facts: FactSet, key: str, **fields) -> FactSet:
    """A copy of ``facts`` with fields of the dict fact ``key`` replaced."""
    copy = FactSet(list(facts))
    old = facts.get(key)
    copy.add(Fact(key=key, value={**old.value, **fields}, source=old.source, raw=old.raw))
    return copy


def by_code(report):
    found = {}
    for finding in report.findings:
        found.setdefault(finding.code, []).append(finding)
    return found


def no_crashes(report):
    crashed = [r for r in report.results if r.status == "crashed"]
    assert not crashed, crashed


# ---- this machine ------------------------------------------------------------

def test_this_machine_cuda_home_guess_is_broken():
    report = diagnose(load("this_machine"))
    no_crashes(report)
    found = by_code(report)
    (finding,) = found["ED203"]
    assert finding.severity == Severity.ERROR
    for words in ("CUDA_HOME=/usr/local ", "`which nvcc` = /usr/local/bin/nvcc", "/usr/local/cuda-13.0",
                  "CUDA 13.0.88", "torch's CUDA 13.0", "cannot find -lcudart"):
        assert words in finding.message
    set_env = [f for f in finding.fixes if f.action == "set_env"]
    assert set_env and set_env[0].params["vars"] == {"CUDA_HOME": "/usr/local/cuda-13.0"}
    assert "export CUDA_HOME=/usr/local/cuda-13.0" in set_env[0].commands
    # No GPU and no driver on a CUDA torch is information, not an error; but with no GPU to detect,
    # the extension builds this machine does need TORCH_CUDA_ARCH_LIST (ED508).
    assert [f.code for f in report.findings if f.severity == Severity.ERROR] == ["ED203", "ED508"]
    assert "IndexError" in found["ED508"][0].message
    assert all(f.severity == Severity.INFO for f in found.get("ED303", []))


def test_this_machine_with_cuda_home_set_has_no_toolkit_error():
    facts = replaced(load("this_machine"), "torch", cpp_ext_cuda_home="/usr/local/cuda",
                     cpp_ext_cuda_home_source="CUDA_HOME")
    facts.add(Fact(key="env.vars", value={"CUDA_HOME": "/usr/local/cuda", "TORCH_CUDA_ARCH_LIST": "9.0"},
                   source="test"))
    report = diagnose(facts)
    no_crashes(report)
    assert [f for f in report.findings if f.area == "toolkit"] == []
    assert report.worst.rank < Severity.WARNING.rank, [f.message for f in report.findings]


# ---- the classic cu111 case --------------------------------------------------

def test_classic_cu111_tells_the_truth_not_the_folklore():
    report = diagnose(load("classic_cu111"))
    no_crashes(report)
    found = by_code(report)
    assert "ED101" not in found and "ED102" not in found  # driver 525 runs a cu111 build
    (folklore,) = found["ED104"]
    assert folklore.severity == Severity.INFO and "CUDA Version: 12.0" in folklore.message
    assert "not an installed toolkit" in folklore.message

    (mismatch,) = found["ED202"]
    assert mismatch.severity == Severity.ERROR
    assert "major 11" in mismatch.message and "12.0" in mismatch.message and "11.1" in mismatch.message
    assert "has no nvcc" in mismatch.message  # conda's cudatoolkit=11.1 ships no compiler
    install_nvcc, other_torch = mismatch.fixes
    assert any("cudatoolkit-dev=11.1" in c for c in install_nvcc.commands)
    assert any(c.startswith("export CUDA_HOME=") for c in install_nvcc.commands)
    assert other_torch.action == "pip_install"
    assert other_torch.params["argv"][:2] == ["pip", "install"]
    assert any(re.search(r"whl/cu12\d", a) for a in other_torch.params["argv"])
    assert "525.60.13" in other_torch.summary

    (unset,) = found["ED203"]
    assert "CUDA_HOME is unset" in unset.message

    (stale,) = found["ED601"]
    assert "torch 1.8.1" in stale.message and "CUDA 10.2" in stale.message and "Python 3.7" in stale.message
    actions = [f.action for f in stale.fixes]
    assert actions[0] == "quarantine" and actions[1] in ("rebuild_op", "rebuild_extension")
    assert stale.fixes[0].params["paths"] == [
        "/home/alice/Mask2Former/mask2former/modeling/pixel_decoder/ops/build"]


# ---- several toolkits --------------------------------------------------------

def test_multi_toolkit_flags_that_builds_would_use_12_1():
    report = diagnose(load("multi_toolkit"))
    no_crashes(report)
    (finding,) = by_code(report)["ED204"]
    assert finding.severity == Severity.ERROR
    assert "/usr/local/cuda-12.1" in finding.message and "/usr/local/cuda-11.8" in finding.message
    assert finding.fixes[0].params["vars"] == {"CUDA_HOME": "/usr/local/cuda-11.8"}
    assert "ED202" not in by_code(report)  # one finding for one problem


# ---- broken torch ------------------------------------------------------------

def test_broken_torch_is_a_finding_and_other_rules_still_run():
    report = diagnose(load("broken_torch"))
    no_crashes(report)
    (finding,) = by_code(report)["ED300"]
    assert finding.severity == Severity.ERROR and "libcudart.so.11.0" in finding.message
    statuses = {r.rule: r.status for r in report.results}
    needs_torch = [r.code for r in all_rules() if "torch" in r.needs]
    assert needs_torch and all(statuses[code] == "skipped" for code in needs_torch)
    assert statuses["ED503"] == "fired"  # ninja is missing there too
    assert statuses["ED205"] == "passed"  # CUDA_HOME=/usr/local/cuda names the 12.4 toolkit


# ---- driver rules on facts from fake nvidia-smi executables ------------------

QUERY_DRIVER = "--query-gpu=driver_version --format=csv,noheader"


def driver_facts(tmp_path, responses, timeout=10.0) -> FactSet:
    bin_dir = str(tmp_path / "bin")
    write_fake(bin_dir, "nvidia-smi", responses)
    root = str(tmp_path / "root")
    os.makedirs(root, exist_ok=True)
    ctx = ProbeContext(env={"PATH": path_with(bin_dir)}, root=root, timeout=timeout, paths=())
    return FactSet(driver_probe.probe(ctx))


def with_torch(facts: FactSet, version: str, cuda: str) -> FactSet:
    facts.add(Fact(key="torch", value={"version": version, "cuda": cuda, "cuda_available": False,
                                       "cuda_error": "The NVIDIA driver on your system is too old"}, source="test"))
    facts.add(Fact(key="env.python", value={"version": "3.8.10"}, source="test"))
    return facts


def test_driver_418_from_real_banner_is_too_old_for_cu111(tmp_path):
    facts = driver_facts(tmp_path, {QUERY_DRIVER: "418.43\n", "": corpus.text("smi-d2-693-418-rtx2080")})
    report = diagnose(with_torch(facts, "1.9.0+cu111", "11.1"), only=["ED1*"])
    found = by_code(report)
    (too_old,) = found["ED101"]
    assert too_old.severity == Severity.ERROR
    assert "418.43" in too_old.message and "11.1" in too_old.message and "450.80.02" in too_old.message
    pip_fixes = [f for f in too_old.fixes if f.action == "pip_install"]
    assert pip_fixes and "cu" in " ".join(pip_fixes[0].commands)
    assert "CUDA Version: 10.1" in found["ED104"][0].message


def test_driver_515_from_real_banner_runs_cu111(tmp_path):
    facts = driver_facts(tmp_path, {QUERY_DRIVER: "515.48.07\n",
                                    "": corpus.text("smi-bladebit-431-515-no-leading-bar")})
    assert facts.value("driver.version") == "515.48.07"
    report = diagnose(with_torch(facts, "1.9.0+cu111", "11.1"), only=["ED1*"])
    assert "ED101" not in by_code(report)
    assert [f.severity for f in by_code(report)["ED104"]] == [Severity.INFO]


def test_hanging_nvidia_smi_is_a_warning_not_a_hang(tmp_path):
    facts = driver_facts(tmp_path, Response(stdout="never printed", sleep=100), timeout=0.5)
    report = diagnose(facts, only=["ED1*"])
    (finding,) = by_code(report)["ED103"]
    assert finding.severity == Severity.WARNING and "timeout" in finding.message


# ---- rule metadata -----------------------------------------------------------

AREAS = {"1": {"driver", "gpus"}, "2": {"toolkit"}, "3": {"torch"}, "4": {"compiler"}, "5": {"env"},
         "6": {"builds"}, "7": {"detectron2"}, "8": {"require"}}


def test_rule_modules_load():
    assert load_failures() == []


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.code)
def test_rule_metadata(rule):
    assert re.fullmatch(r"ED[1-8]\d\d", rule.code)
    assert rule.area in AREAS[rule.code[2]]
    assert rule.title and len(rule.title) <= 60 and rule.title.strip() == rule.title
    doc_lines = [line for line in rule.doc.splitlines() if line.strip()]
    assert len(doc_lines) >= 4, f"{rule.code}: the docstring is the rule's doc page (what, why, fix)"
    assert "fix" in rule.doc.lower() or "nothing to fix" in rule.doc.lower()


def test_rule_codes_are_unique():
    codes = [r.code for r in all_rules()]
    assert len(codes) == len(set(codes))
