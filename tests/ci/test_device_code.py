"""Device code read from real binaries' .nv_fatbin sections, and modules imported in fresh interpreters."""
import os
import shutil
import sys

import pytest

from envdoctor.parsers import fatbin
from envdoctor.probes.base import ProbeContext
from envdoctor.probes.imports import probe_imports

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "ci")


@pytest.mark.parametrize("name, archs", [
    ("sm80_sm90a_ptx90.so", ["compute_90", "sm_80", "sm_90a"]),
    ("sm100f_ptx86_compressed.so", ["compute_86", "sm_100f"]),
    ("plain_no_device_code.so", []),
])
def test_archs_of_real_binaries(name, archs):
    read = fatbin.device_archs(os.path.join(FIXTURES, name))
    assert read == {"archs": archs, "has_device_code": bool(archs), "error": None}


def test_unreadable_and_non_elf_files_are_errors_not_exceptions(tmp_path):
    assert fatbin.device_archs(str(tmp_path / "missing.so"))["error"].startswith("cannot read")
    assert "not a readable ELF file" in fatbin.device_archs(os.path.join(FIXTURES, "README.md"))["error"]
    truncated = tmp_path / "truncated.so"
    truncated.write_bytes(open(os.path.join(FIXTURES, "sm80_sm90a_ptx90.so"), "rb").read()[:3000])
    assert fatbin.device_archs(str(truncated))["error"]


def _module_tree(tmp_path):
    """A sealed PYTHONPATH: a module that imports, one that raises, one that kills its interpreter,
    and a package holding a copy of a real CUDA binary."""
    root = tmp_path / "site"
    (root / "okmod.py").parent.mkdir(parents=True)
    (root / "okmod.py").write_text("VALUE = 1\n")
    (root / "badmod.py").write_text("raise ImportError('undefined symbol: _ZN3c104cuda')\n")
    (root / "crashmod.py").write_text("import os\nos.abort()\n")
    package = root / "kernels_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(os.path.join(FIXTURES, "sm80_sm90a_ptx90.so"), package / "_C.so")
    return root


def test_imports_in_fresh_interpreters(tmp_path):
    root = _module_tree(tmp_path)
    ctx = ProbeContext(env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(root)}, paths=(),
                       python=sys.executable)
    facts = {f.key: f.value for f in probe_imports(ctx, ["okmod", "badmod", "crashmod"], ["kernels_pkg", "badmod"])}
    checked = facts["import_check"]
    assert checked["okmod"]["status"] == "ok" and checked["okmod"]["file"].endswith("okmod.py")
    assert checked["badmod"] == {"status": "import_error", "file": None,
                                 "message": "ImportError: undefined symbol: _ZN3c104cuda"}
    assert checked["crashmod"]["status"] == "crashed" and "signal 6" in checked["crashmod"]["message"]
    device = facts["device_code"]
    assert device["kernels_pkg"]["error"] is None
    assert [b["archs"] for b in device["kernels_pkg"]["binaries"]] == [["compute_90", "sm_80", "sm_90a"]]
    assert device["badmod"]["error"].startswith("does not import: ImportError")
    assert "kernels_pkg" in checked and "device_code" not in {f.key for f in probe_imports(ctx, ["okmod"])}


def test_a_crashing_import_probe_is_a_crashed_result_not_a_crash(monkeypatch, tmp_path):
    from envdoctor import require
    from envdoctor.probes import imports

    def broken(*args, **kwargs):
        raise RuntimeError("no threads left")

    monkeypatch.setattr(imports, "probe_imports", broken)
    reqs = require.Requirements(source="pyproject.toml", values={"imports": ["json"]})
    report = require.run_check(reqs, env={"PATH": os.environ.get("PATH", "")}, paths=(), quick=True,
                               only=["ED81*"])
    statuses = {r.rule: (r.status, r.detail) for r in report.results}
    assert statuses["probe.imports"][0] == "crashed" and "no threads left" in statuses["probe.imports"][1]
    assert statuses["ED810"] == ("skipped", "not available: import_check")


def test_the_new_facts_are_documented():
    from tests.unit.test_probes_system import documented_keys

    assert {"import_check", "device_code", "require.<key>"} <= documented_keys()


def test_requirement_and_import_facts_fit_the_schema(tmp_path):
    from envdoctor import facts_schema, require

    reqs = require.Requirements("pyproject.toml", {k: v for k, v in {
        "driver": ">=535", "torch": ">=2.1", "torch_cuda": "12.*", "nvcc": True, "gcc": "<14",
        "compute_capability": ">=8.0", "gpus": 2, "gpu_memory_gb": 15.5, "nccl": ">=2.18", "imports": ["torch"],
        "cuda_kernels": ["kernels_pkg"]}.items()})
    assert set(reqs.values) == set(require.KEYS)
    root = _module_tree(tmp_path)
    ctx = ProbeContext(env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(root)}, paths=())
    facts = require.requirement_facts(reqs) + probe_imports(ctx, ["okmod"], ["kernels_pkg"])
    assert facts_schema.check_all(facts) == []
    assert {f"require.{k}" for k in require.KEYS} | {"import_check", "device_code"} == set(
        facts_schema.REQUIREMENT_SCHEMA)
    assert facts_schema.problems("require.gpus", "1") == ["require.gpus: expected int, got str"]
