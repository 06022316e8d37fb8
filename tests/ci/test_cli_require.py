"""`envdoctor require` options through click (the probes replaced by a saved machine; the real
machine is in test_ci_e2e.py)."""
import os

import pytest
from click.testing import CliRunner

from envdoctor import engine, require
from envdoctor.cli import cli
from tests.ci.test_require import machine


@pytest.fixture
def saved_machine(monkeypatch):
    def fake_run_check(**kwargs):
        return engine.diagnose(machine(), only=kwargs.get("only", ()), skip=kwargs.get("skip", ()))

    monkeypatch.setattr(engine, "run_check", fake_run_check)


def invoke(*args, cwd):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)


def test_no_table_is_a_usage_error(tmp_path, saved_machine):
    result = invoke("require", cwd=tmp_path)
    assert result.exit_code == 2 and "no [tool.envdoctor.require] table found" in result.output
    assert "envdoctor require --init" in result.output


def test_print_and_force_need_init(tmp_path, saved_machine):
    for flag in ("--print", "--force"):
        result = invoke("require", flag, cwd=tmp_path)
        assert result.exit_code == 2 and "--print and --force go with --init" in result.output


def test_init_into_a_named_file_then_check_it(tmp_path, saved_machine):
    result = invoke("require", "--init", "--require", "ci/gpu.toml", cwd=tmp_path)
    assert result.exit_code == 1 and "cannot write ci/gpu.toml" in result.output  # as -o does
    assert not (tmp_path / "ci").exists()
    (tmp_path / "ci").mkdir()
    result = invoke("require", "--init", "--require", "ci/gpu.toml", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("created ci/gpu.toml:")
    values = require.load_requirements(str(tmp_path / "ci" / "gpu.toml")).values
    assert values["gpus"] == 2 and values["compute_capability"] == ">=8.0" and values["torch_cuda"] == "13.*"
    # checked against the same machine (the imports line dropped: it would start real interpreters)
    written = tmp_path / "ci" / "gpu.toml"
    written.write_text("".join(ln for ln in written.read_text().splitlines(True) if not ln.startswith("imports")))
    checked = invoke("require", "--require", "ci/gpu.toml", "--format", "json", cwd=tmp_path)
    assert checked.exit_code == 0, checked.output


def test_init_refuses_a_broken_pyproject_and_keeps_it(tmp_path, saved_machine):
    (tmp_path / "pyproject.toml").write_text("[project\nname = 'x'\n")
    result = invoke("require", "--init", cwd=tmp_path)
    assert result.exit_code == 2 and "not valid TOML" in result.output
    assert (tmp_path / "pyproject.toml").read_text() == "[project\nname = 'x'\n"
