"""`envdoctor explain` on the command line: exact output shape and exit codes."""
from __future__ import annotations

import json

from click.testing import CliRunner

from envdoctor.cli_explain import explain_command

LOG = "\n".join([
    "running build_ext",
    "/usr/local/cuda-9.0/include/crt/host_config.h:119:2: warning: something harmless",
    "/usr/local/cuda-9.0/include/crt/host_config.h:119:2: error: #error -- unsupported GNU version! "
    "gcc versions later than 6 are not supported!",
    "error: command '/usr/local/cuda-9.0/bin/nvcc' failed with exit status 1",
])


def _run(args, stdin=None):
    return CliRunner().invoke(explain_command, args, input=stdin)


def test_text_output_and_exit_0(tmp_path):
    log = tmp_path / "build.log"
    log.write_text(LOG)
    result = _run([str(log)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"First error in {log} (line 3):"
    assert lines[1].startswith("  /usr/local/cuda-9.0/include/crt/host_config.h:119:2: error: #error")
    assert lines[3] == "What it is: gcc_unsupported_by_nvcc (high confidence, 0.90), line 3:"
    assert lines[4].startswith("  > /usr/local/cuda-9.0/include/crt/host_config.h:119:2: error")
    assert "What it means:" in result.output and "Fix:" in result.output and "CC=gcc-6" in result.output  # the limit the error names


def test_json_output_from_stdin():
    result = _run(["--format", "json", "-"], stdin=LOG)
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["schema_version"] == 2 and data["recognised"] is True and data["input"] == "standard input"
    assert data["first_error"]["line_no"] == 3
    assert data["explanations"][0]["category"] == "gcc_unsupported_by_nvcc"
    assert set(data["explanations"][0]) == {"category", "line_no", "line", "diagnosis", "fix", "confidence", "score",
                                            "evidence", "signature", "alternative_to"}
    assert data["explanations"][0]["evidence"][0] == {"line_no": 3, "line": data["explanations"][0]["line"]}


def test_nothing_recognised_exits_1(tmp_path):
    log = tmp_path / "ok.log"
    log.write_text("all fine\n")
    result = _run([str(log)])
    assert result.exit_code == 1
    assert f"No known problem recognised in {log}." in result.output
    result = _run(["--format", "json", str(log)])
    assert result.exit_code == 1 and json.loads(result.output)["recognised"] is False


def test_missing_file_is_a_usage_error_without_traceback(tmp_path):
    result = _run([str(tmp_path / "nope.log")])
    assert result.exit_code == 2
    assert "No such file or directory" in result.output and "Traceback" not in result.output
    assert result.output.startswith("Error: cannot read ")


def test_binary_garbage_does_not_crash(tmp_path):
    log = tmp_path / "bin.log"
    log.write_bytes(b"\xff\xfe\x00garbage\x80\nImportError: libcudart.so.11.0: cannot open shared object file\n")
    result = _run([str(log)])
    assert result.exit_code == 0 and "missing_runtime_lib" in result.output


def test_help_has_examples():
    result = _run(["--help"])
    assert result.exit_code == 0 and "Examples:" in result.output and "envdoctor explain build.log" in result.output


def test_subcommand_is_registered():
    from envdoctor.cli import cli

    result = CliRunner().invoke(cli, ["explain", "-"], input="AssertionError: Torch not compiled with CUDA enabled\n")
    assert result.exit_code == 0 and "torch_cpu_only" in result.output
