"""``envdoctor build`` through click: exit codes, JSON output, help."""
from __future__ import annotations

import json

from click.testing import CliRunner

from envdoctor.cli_build import build_command


def _run(args, env=None):
    runner = CliRunner()
    return runner.invoke(build_command, args, env=env, catch_exceptions=False)


def test_cpu_only_json_up_to_date(cpu_build, ops_cache_dir):
    result = _run(["--cpu-only", "--cache-dir", ops_cache_dir, "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["schema_version"] == 1
    assert payload["build"]["ok"] and payload["build"]["cached"]
    assert payload["build"]["path"] == cpu_build.path
    assert payload["build"]["variant"] == "cpu"


def test_cpu_only_text(cpu_build, ops_cache_dir):
    result = _run(["--cpu-only", "--cache-dir", ops_cache_dir])
    assert result.exit_code == 0
    assert f"MSDeformAttn cpu variant is up to date: {cpu_build.path}" in result.stdout


def test_cuda_without_cuda_home_exits_1_with_explanation(tmp_path):
    env = {"CUDA_HOME": None, "CUDA_PATH": None}
    result = _run(["--arch", "8.0;9.0", "--cache-dir", str(tmp_path)], env=env)
    assert result.exit_code == 1
    assert "refused to build" in result.stdout
    assert "export CUDA_HOME=/usr/local/cuda-13.0" in result.stdout
    assert "Traceback" not in result.output


def test_cuda_refusal_json(tmp_path):
    result = _run(["--arch", "8.0", "--cache-dir", str(tmp_path), "--format", "json"],
                  env={"CUDA_HOME": None, "CUDA_PATH": None})
    assert result.exit_code == 1
    payload = json.loads(result.stdout)["build"]
    assert payload["refused"] and payload["findings"][0]["code"] == "ED203"
    assert payload["findings"][0]["fixes"][0]["commands"][0] == "export CUDA_HOME=/usr/local/cuda-13.0"


def test_usage_errors_exit_2(tmp_path):
    bad_arch = _run(["--arch", "foo"])
    assert bad_arch.exit_code == 2 and "Unknown CUDA arch (foo)" in bad_arch.output
    commas = _run(["--arch", "8.0,8.6"])  # refused by torch's builder, so refused here too
    assert commas.exit_code == 2 and "Unknown CUDA arch (8.0,8.6)" in commas.output
    both = _run(["--cpu-only", "--arch", "8.0"])
    assert both.exit_code == 2 and "contradict" in both.output


def test_help_has_examples():
    result = _run(["--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.stdout and "envdoctor build --arch 8.0 --arch 9.0" in result.stdout
