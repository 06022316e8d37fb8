"""The requirement table: parsing, validation, discovery, and `require --init`'s safe edit of pyproject.toml."""
import os
import stat

import pytest

from envdoctor import require
from envdoctor.model import Fact, FactSet
from envdoctor.require import RequirementError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("spec, version, allowed", [
    (">=535", "535.104.05", True),
    (">=535", "470.82.01", False),
    ("13.*", "13.0", True),
    ("12.*", "13.0", False),
    (">=2.0", "2.14.1+cu130", True),
    (">=2.1,<3", "2.5.0a0+git1234", True),
    ("==2.14.1", "2.14.1+cu130", True),
    (">=8.0", "7.5", False),
    (">=8.0", "not a version", None),
])
def test_spec_allows(spec, version, allowed):
    assert require.spec_allows(spec, version) is allowed


def test_valid_table_keeps_values(tmp_path):
    path = write(tmp_path / "req.toml", '[tool.envdoctor.require]\ndriver = ">=535"\nnvcc = true\ngpus = 2\n'
                 'gpu_memory_gb = 15.5\nimports = ["torch", "detectron2._C", "torch"]\n')
    reqs = require.load_requirements(path)
    assert reqs.values == {"driver": ">=535", "nvcc": True, "gpus": 2, "gpu_memory_gb": 15.5,
                           "imports": ["torch", "detectron2._C"]}
    facts = require.requirement_facts(reqs)
    assert [f.key for f in facts] == ["require.driver", "require.nvcc", "require.gpus", "require.gpu_memory_gb",
                                      "require.imports"]
    assert facts[0].source.endswith("req.toml [tool.envdoctor.require]")


@pytest.mark.parametrize("line, words", [
    ("gpu_count = 1", ["unknown requirement key 'gpu_count'", "allowed keys: driver, torch,", "cuda_kernels"]),
    ('driver = ">=>535"', ["driver = '>=>535'", "not a version spec", "NVIDIA driver version"]),
    ('torch = ""', ["torch = ''", "not a version spec"]),
    ("gpus = -1", ["gpus = -1", "whole number"]),
    ("gpus = true", ["gpus = True", "whole number"]),
    ('gpu_memory_gb = "16"', ["gpu_memory_gb = '16'", "not a number"]),
    ('imports = "torch"', ["imports = 'torch'", "list of module names"]),
    ('imports = ["torch; import os"]', ["is not a module name"]),
    ("nvcc = false", ["nvcc = False", "not a version spec"]),
])
def test_bad_table_names_the_key(tmp_path, line, words):
    path = write(tmp_path / "pyproject.toml", f"[tool.envdoctor.require]\n{line}\n")
    with pytest.raises(RequirementError) as info:
        require.load_requirements(path)
    for word in words:
        assert word in str(info.value)


def test_invalid_toml_and_missing_table(tmp_path):
    with pytest.raises(RequirementError, match="not valid TOML"):
        require.load_requirements(write(tmp_path / "a.toml", "[tool.envdoctor.require\n"))
    with pytest.raises(RequirementError, match=r"no \[tool.envdoctor.require\] table"):
        require.load_requirements(write(tmp_path / "b.toml", "[project]\nname = 'x'\n"))
    with pytest.raises(RequirementError, match="cannot read"):
        require.load_requirements(str(tmp_path / "missing.toml"))


def test_found_from_the_directory_upward(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.envdoctor.require]\ngpus = 1\n")
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    write(tmp_path / "src" / "pyproject.toml", "[project]\nname = 'inner, without a table'\n")
    found = require.find_requirements(str(deep))
    assert found.values == {"gpus": 1}
    assert os.path.samefile(require.find_pyproject(str(deep)), tmp_path / "pyproject.toml")
    # a project that mentions envdoctor without a requirement table declares nothing
    write(tmp_path / "src" / "pyproject.toml", "[tool.envdoctor]\n")
    assert require.find_requirements(str(deep)) is None


def machine(**overrides):
    facts = {
        "driver.present": True,
        "driver.version": "535.104.05",
        "torch.status": {"status": "ok", "message": ""},
        "torch": {"version": "2.14.1+cu130", "cuda": "13.0", "nccl": "2.30.1"},
        "torchvision": {"version": "0.29.1+cu130"},
        "nvcc.version": "13.0.88",
        "nvcc.path": "/usr/local/cuda-13.0/bin/nvcc",
        "compiler.gcc": {"version": "12.2.0", "path": "/usr/bin/gcc"},
        "gpus": [{"index": 0, "name": "NVIDIA H200", "compute_cap": "9.0", "memory_total_mib": 143771},
                 {"index": 1, "name": "NVIDIA A100-SXM4-40GB", "compute_cap": "8.0", "memory_total_mib": 40960}],
    }
    facts.update(overrides)
    return FactSet(Fact(k, v) for k, v in facts.items() if v is not None)


def test_pin_table_pins_this_machine_and_reads_back():
    rows = dict((k, v) for k, v, _ in require.pin_table(machine()))
    assert rows == {"driver": ">=535", "torch": ">=2.14", "torch_cuda": "13.*", "nvcc": "13.*", "gcc": "12.*",
                    "compute_capability": ">=8.0", "gpus": 2, "gpu_memory_gb": 42, "nccl": ">=2.30",
                    "imports": ["torch", "torchvision"], "cuda_kernels": None}
    text = require.format_table(require.pin_table(machine()))
    values = require.validate(require.table_of(require.parse_toml(text, "t")), "t")
    assert values == {k: v for k, v in rows.items() if v is not None}


def test_pin_table_on_a_gpu_less_machine_comments_the_gpu_keys():
    text = require.format_table(require.pin_table(machine(gpus=None, **{"driver.version": None})))
    assert '# gpus = 1  # no GPU here' in text and '# driver = ">=535"  # no NVIDIA driver here' in text
    values = require.table_of(require.parse_toml(text, "t"))
    assert "gpus" not in values and "driver" not in values and values["torch"] == ">=2.14"


TABLE = require.format_table([("gpus", 1, ""), ("torch", ">=2.0", "")])


def test_edit_creates_appends_and_refuses_to_overwrite():
    assert require.edited_pyproject(None, TABLE, "pyproject.toml") == TABLE
    old = '[project]\nname = "demo"  # keep this comment\n\n[tool.black]\nline-length = 100'
    new = require.edited_pyproject(old, TABLE, "pyproject.toml")
    assert new.startswith(old + "\n\n[tool.envdoctor.require]")
    with pytest.raises(RequirementError, match="already has a .* Use --force"):
        require.edited_pyproject(new, TABLE, "pyproject.toml")


def test_force_replaces_only_the_table():
    old = ('[project]\nname = "demo"\n\n[tool.envdoctor.require]\ngpus = 4\ntorch = "<1"\n\n'
           '[tool.black]  # after\nline-length = 100\n')
    new = require.edited_pyproject(old, TABLE, "pyproject.toml", force=True)
    assert new == '[project]\nname = "demo"\n\n' + TABLE + '\n[tool.black]  # after\nline-length = 100\n'


@pytest.mark.parametrize("old, message", [
    ("[project\nname = 1\n", "not valid TOML"),
    ('[tool.envdoctor]\nrequire = { gpus = 1 }\n', "not written as one"),
])
def test_edit_refuses_what_it_cannot_do_safely(old, message):
    with pytest.raises(RequirementError, match=message):
        require.edited_pyproject(old, TABLE, "pyproject.toml", force=True)


def test_write_atomically_keeps_mode_and_leaves_no_temp(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text("old\n")
    os.chmod(path, 0o640)
    require.write_atomically(str(path), "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["pyproject.toml"]


def test_without_a_toml_reader_the_message_says_what_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tomllib", None)  # as on Python 3.9/3.10 ...
    monkeypatch.setitem(sys.modules, "tomli", None)  # ... without tomli
    path = write(tmp_path / "pyproject.toml", "[tool.envdoctor.require]\ngpus = 1\n")
    with pytest.raises(RequirementError) as info:
        require.load_requirements(path)
    assert str(info.value) == ("reading TOML needs Python >= 3.11 or the 'tomli' package "
                               "(python -m pip install tomli)")


def test_a_table_given_now_replaces_the_saved_requirements():
    saved = FactSet(list(machine()) + [Fact("require.gpus", 8), Fact("require.torch", "<1")])
    report = require.diagnose_with(saved, require.Requirements("ci.toml", {"gpus": 1}), only=["ED8*"])
    assert {r.rule: r.status for r in report.results} == {"ED807": "passed"}
    # without a new table the saved requirements are checked again
    report = require.diagnose_with(saved, None, only=["ED8*"])
    assert {r.rule: r.status for r in report.results} == {"ED802": "fired", "ED807": "fired"}
    assert report.meta.get("requirements") is None
