"""`envdoctor explain` end to end, in a subprocess: output, JSON, --from, exit codes."""
from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys

import pytest

from envdoctor.model import Fact, FactSet, Report
from envdoctor.render import Redactor, render

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = "CUDA driver version is insufficient for CUDA runtime version\n"


def run(*args, stdin=None):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "envdoctor", "explain", *args], input=stdin, capture_output=True,
                          env=env, cwd=ROOT, timeout=120)


def _report(tmp_path, fmt="json", in_container=True, driver=False):
    facts = FactSet([Fact("host.in_container", in_container, source="/.dockerenv"),
                     Fact("driver.present", driver, source="nvidia-smi"),
                     Fact("nvcc.path", "/usr/bin/nvcc", source="PATH")])
    path = tmp_path / ("report.json" if fmt == "json" else "report.md")
    path.write_text(render(Report(facts), fmt, redactor=Redactor(enabled=False)))
    return str(path)


def test_utf16_log_from_powershell(tmp_path):
    log = tmp_path / "build.log"
    log.write_bytes(codecs.BOM_UTF16_LE + ("running build_ext\r\n\x1b[31mfatal error: THC/THC.h: No such file or "
                                           "directory\x1b[0m\r\n").encode("utf-16-le"))
    result = run(str(log))
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr
    assert out.splitlines()[:2] == [f"First error in {log} (line 2):",
                                    "  fatal error: THC/THC.h: No such file or directory"]
    assert "What it is: deprecated_torch_api_in_ext (high confidence, 0.90), line 2:" in out


def test_json_lists_alternatives_with_confidence_and_evidence():
    result = run("--format", "json", "-", stdin=DRIVER.encode())
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["schema_version"] == 2 and data["recognised"] is True and data["machine"] is None
    first, second = data["explanations"]
    assert (first["category"], first["confidence"], first["score"]) == ("driver_too_old", "medium", 0.7)
    assert (second["category"], second["confidence"], second["alternative_to"]) == \
        ("container_gpu_not_exposed", "low", "driver_too_old")
    assert second["evidence"] == [{"line_no": 1, "line": DRIVER.strip()}]


@pytest.mark.parametrize("fmt", ["json", "markdown"])
def test_from_a_saved_report_chooses_the_reading(tmp_path, fmt):
    report = _report(tmp_path, fmt)
    result = run("--from", report, "--format", "json", "-", stdin=DRIVER.encode())
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["explanations"][0]["category"] == "container_gpu_not_exposed"
    assert data["machine"]["source"] == report and "host.in_container" in data["machine"]["facts_used"]
    text = run("--from", report, "-", stdin=DRIVER.encode()).stdout.decode()
    assert text.splitlines()[0] == (f"Machine facts ({report}): in a container, no working NVIDIA driver, "
                                    "nvcc /usr/bin/nvcc.")


def test_from_a_host_report_drops_the_container_reading(tmp_path):
    report = _report(tmp_path, in_container=False, driver=True)
    data = json.loads(run("--from", report, "--format", "json", "-", stdin=DRIVER.encode()).stdout)
    assert [e["category"] for e in data["explanations"]] == ["driver_too_old"]


def test_consequence_only_log_exits_1_and_says_what_to_look_for():
    result = run("-", stdin=b"RuntimeError: Error compiling objects for extension\n")
    out = result.stdout.decode()
    assert result.returncode == 1
    assert "No known problem recognised in standard input." in out and "What to look for: Line 1" in out


@pytest.mark.parametrize("args,message", [
    (["/nonexistent/build.log"], "Error: cannot read /nonexistent/build.log: No such file or directory"),
    (["--here", "--from", "r.json", "-"], "Error: --here and --from are exclusive"),
])
def test_usage_errors_exit_2_without_traceback(args, message):
    result = run(*args, stdin=b"")
    assert result.returncode == 2
    assert result.stderr.decode().startswith(message) and "Traceback" not in result.stderr.decode()


def test_unreadable_or_foreign_report_exits_2(tmp_path):
    bad = tmp_path / "notes.md"
    bad.write_text("# my notes\nno report here\n")
    result = run("--from", str(bad), "-", stdin=DRIVER.encode())
    assert result.returncode == 2 and "no envdoctor report data found" in result.stderr.decode()
    folder = run(str(tmp_path))
    assert folder.returncode == 2 and folder.stderr.decode().startswith("Error: cannot read ")


def test_help_documents_the_exit_codes():
    out = run("--help").stdout.decode()
    assert "Exit status: 0 a known problem was recognised, 1 none was" in " ".join(out.split())
    assert "--here" in out and "--from REPORT" in out
