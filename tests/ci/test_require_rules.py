"""ED801-ED811: every requirement rule fires on a machine that misses it and stays silent on one that meets it."""
import pytest

from envdoctor.engine import diagnose
from envdoctor.model import Fact, FactSet, Severity
from envdoctor.rules import all_rules
from tests.ci.test_require import machine
from tests.fixtures.recording import RecordingFacts


def run(facts, **required):
    all_facts = FactSet(list(facts) + [Fact(f"require.{k}", v, source="pyproject.toml [tool.envdoctor.require]")
                                       for k, v in required.items()])
    report = diagnose(all_facts, only=["ED8*"])
    return report


def errors(report):
    return {f.code: f for f in report.findings if f.severity == Severity.ERROR}


IMPORTS_OK = Fact("import_check", {"torch": {"status": "ok", "message": "", "file": "/x/torch/__init__.py"},
                                   "detectron2._C": {"status": "import_error", "file": None,
                                                     "message": "ImportError: undefined symbol: _ZN3c10"}})
DEVICE = Fact("device_code", {
    "ext_sm80": {"file": "/x/ext_sm80.so", "binaries": [{"path": "/x/ext_sm80.so", "archs": ["sm_80"]}], "error": None},
    "ext_ptx80": {"file": "/x/p.so", "binaries": [{"path": "/x/p.so", "archs": ["compute_80"]}], "error": None},
    "ext_cpu": {"file": "/x/cpu.so", "binaries": [{"path": "/x/cpu.so", "archs": []}], "error": None},
    "broken": {"file": None, "binaries": [], "error": "does not import: ImportError: x"},
})

# (code, requirement, met by machine(), machine that misses it, words in the message)
CASES = [
    ("ED801", {"driver": ">=535"}, machine(**{"driver.version": "470.82.01"}), ["470.82.01", ">=535"]),
    ("ED801", {"driver": ">=535"}, machine(**{"driver.version": None, "driver.present": False}),
     ["No NVIDIA driver was found"]),
    ("ED802", {"torch": ">=2.0"}, machine(torch={"version": "1.13.1+cu117", "cuda": "11.7"}), ["1.13.1+cu117"]),
    ("ED803", {"torch_cuda": "13.*"}, machine(torch={"version": "2.5.1+cu121", "cuda": "12.1"}), ["12.1", "13.*"]),
    ("ED803", {"torch_cuda": "13.*"}, machine(torch={"version": "2.5.1+cpu", "cuda": None}), ["CPU-only"]),
    ("ED804", {"nvcc": True}, machine(**{"nvcc.version": None, "nvcc.path": None}), ["No nvcc is on PATH"]),
    ("ED804", {"nvcc": ">=13"}, machine(**{"nvcc.version": "12.4.131"}), ["12.4.131", ">=13"]),
    ("ED805", {"gcc": "<13"}, machine(**{"compiler.gcc": {"version": "14.1.0"}}), ["gcc 14.1.0", "<13"]),
    ("ED806", {"compute_capability": ">=9.0"}, machine(), ["A100", "(8.0)", ">=9.0"]),
    ("ED806", {"compute_capability": ">=8.0"}, machine(gpus=None), ["No GPU"]),
    ("ED807", {"gpus": 1}, machine(gpus=None, **{"driver.present": False}), ["0 GPU(s) visible, 1 required (no NVIDIA "
                                                                           "driver is present)"]),
    ("ED807", {"gpus": 4}, machine(), ["2 GPU(s) visible, 4 required"]),
    ("ED808", {"gpu_memory_gb": 80}, machine(), ["A100-SXM4-40GB (42.9 GB)", "less than 80 GB"]),
    ("ED808", {"gpu_memory_gb": 16}, machine(gpus=None), ["No GPU is visible"]),
    ("ED809", {"nccl": ">=2.31"}, machine(), ["NCCL 2.30.1", ">=2.31"]),
]


@pytest.mark.parametrize("code, required, bad, words", CASES)
def test_rule_fires_when_unmet(code, required, bad, words):
    found = errors(run(bad, **required))
    assert list(found) == [code], found
    finding = found[code]
    for word in words:
        assert word in finding.message, finding.message
    key = next(iter(required))
    assert f"require.{key} = " in finding.evidence[0]
    assert finding.fixes and "pyproject.toml" in finding.fixes[-1].summary


MET = [("ED801", {"driver": ">=535"}), ("ED802", {"torch": ">=2.0"}), ("ED803", {"torch_cuda": "13.*"}),
       ("ED804", {"nvcc": True}), ("ED804", {"nvcc": ">=13"}), ("ED805", {"gcc": "<13"}),
       ("ED806", {"compute_capability": ">=8.0"}), ("ED807", {"gpus": 2}), ("ED808", {"gpu_memory_gb": 40}),
       ("ED809", {"nccl": ">=2.18"})]


def test_every_unmet_case_has_a_met_case():
    assert {c for c, _, _, _ in CASES} == {c for c, _ in MET}
    # ED810 and ED811 have their own tests below
    assert {c for c, _ in MET} | {"ED810", "ED811"} == {r.code for r in all_rules() if r.area == "require"}


@pytest.mark.parametrize("code, required", MET)
def test_rule_is_silent_when_met(code, required):
    report = run(machine(), **required)
    assert report.findings == []
    assert [(r.rule, r.status) for r in report.results if r.status != "skipped"] == [(code, "passed")]


def test_undeclared_requirements_are_skipped():
    report = diagnose(machine(), only=["ED8*"])
    assert report.findings == []
    assert {r.status for r in report.results} == {"skipped"}


def test_imports_rule():
    facts = FactSet(list(machine()) + [IMPORTS_OK])
    found = errors(run(facts, imports=["torch", "detectron2._C"]))
    assert list(found) == ["ED810"]
    assert "`import detectron2._C` fails (import_error): ImportError: undefined symbol" in found["ED810"].message
    assert errors(run(facts, imports=["torch"])) == {}
    # without the import results (a saved report made without them) the rule is skipped, not passed
    report = run(machine(), imports=["torch"])
    assert [(r.status, r.detail) for r in report.results if r.rule == "ED810"] == [
        ("skipped", "not available: import_check")]


def test_cuda_kernels_rule_against_the_gpus():
    facts = FactSet(list(machine()) + [DEVICE])  # an sm_90 H200 and an sm_80 A100
    found = errors(run(facts, cuda_kernels=["ext_sm80", "ext_ptx80", "ext_cpu", "broken"]))
    messages = [f.message for f in run(facts, cuda_kernels=["ext_sm80", "ext_ptx80", "ext_cpu", "broken"]).findings]
    assert list(found) == ["ED811"]
    assert any("ext_sm80 carries device code for sm_80, none of which runs on GPU 0 NVIDIA H200 (sm_90)" in m
               for m in messages), messages
    assert any("ext_cpu carries no CUDA device code" in m for m in messages)
    assert any("broken: does not import" in m for m in messages)
    assert not any(m.startswith("ext_ptx80") for m in messages)  # PTX for 8.0 JIT-compiles for 9.0
    assert errors(run(facts, cuda_kernels=["ext_ptx80"])) == {}
    fix = next(f for f in run(facts, cuda_kernels=["ext_sm80"]).findings).fixes[0]
    assert "TORCH_CUDA_ARCH_LIST='8.0;9.0'" in fix.commands[0]


def test_torch_fixes_name_a_published_build_that_meets_both_specs():
    facts = machine(**{"driver.version": "580.65.06"}, torch={"version": "2.5.1+cpu", "cuda": None})
    (finding,) = run(facts, torch=">=2.4,<2.6", torch_cuda="12.*").findings
    assert finding.code == "ED803"
    command = finding.fixes[0].commands[0]
    assert "torch==2.5" in command and "--index-url https://download.pytorch.org/whl/cu12" in command, command
    # no published build the driver runs: the fix says what to look for instead of a wrong command
    old_driver = machine(**{"driver.version": "470.82.01"}, torch={"version": "2.5.1+cpu", "cuda": None})
    (finding,) = [f for f in run(old_driver, torch_cuda="13.*").findings if f.code == "ED803"]
    assert finding.fixes[0].commands == () and "satisfies 13.*" in finding.fixes[0].summary


def test_nccl_is_not_judged_when_torch_was_not_imported():
    quick = machine(torch={"version": "2.14.1+cu130", "cuda": "13.0", "nccl": None, "cuda_available": None,
                           "cuda_error": "quick mode"})
    report = run(quick, nccl=">=2.18")
    assert report.findings == []
    assert [(r.status, r.detail) for r in report.results if r.rule == "ED809"] == [
        ("skipped", "not applicable: torch's NCCL is known only when torch is imported (not with --quick)")]
    cpu_only = machine(torch={"version": "2.14.1+cpu", "cuda": None, "nccl": None, "cuda_available": False})
    assert list(errors(run(cpu_only, nccl=">=2.18"))) == ["ED809"]


def test_requirement_rules_read_only_the_facts_they_declare():
    from envdoctor.rules.base import RuleContext

    sets = [(bad, required) for _, required, bad, _ in CASES] + [(machine(), required) for _, required in MET]
    sets += [(FactSet(list(machine()) + [IMPORTS_OK]), {"imports": ["torch", "detectron2._C"]}),
             (FactSet(list(machine()) + [DEVICE]), {"cuda_kernels": ["ext_sm80", "ext_cpu", "broken"]})]
    cpu_torch = machine(**{"driver.version": "580.65.06"}, torch={"version": "2.5.1+cpu", "cuda": None})
    sets += [(cpu_torch, {"torch": ">=2.4,<2.6", "torch_cuda": "12.*"}), (cpu_torch, {"torch": ">=2.6"})]
    rules = {r.code: r for r in all_rules() if r.area == "require"}
    seen = set()
    for facts, required in sets:
        full = FactSet(list(facts) + [Fact(f"require.{k}", v, source="pyproject.toml") for k, v in required.items()])
        for rule in rules.values():
            if rule.missing(full):
                continue
            seen.add(rule.code)
            recording = RecordingFacts(list(full))
            rule.fn(RuleContext(facts=recording, rule=rule))
            assert recording.read <= set(rule.inputs), (rule.code, sorted(recording.read - set(rule.inputs)))
    assert seen == set(rules)
