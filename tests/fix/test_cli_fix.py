"""``envdoctor fix`` end to end on hand-made reports: plan, consent, apply, undo, exit codes."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from click.testing import CliRunner

from envdoctor.cli_fix import fix_command
from envdoctor.fix import fsops, verify as verify_mod
from envdoctor.fix.rcfile import END, START
from tests.fix import reports
from tests.fix.ext_fixtures import write_old_msda_ops, write_stale_build

ORIGINAL = b"# my bashrc\r\nalias ll='ls -l'\r\n[ -z \"$PS1\" ] && return\n\xff\xfe tail without newline"
QUIET = ["--no-rebuild", "--no-smoke"]


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    # The after-check belongs to the check engine; here it reports a clean machine.
    monkeypatch.setattr(verify_mod, "run_check", lambda env, runner, paths: {"available": True, "findings": []})
    return home


def run(home, args, input=None, extra_env=None):
    env = {"HOME": str(home), "XDG_CACHE_HOME": "", "GITHUB_ENV": "", "GITHUB_PATH": "", "CUDA_HOME": ""}
    env.update(extra_env or {})
    return CliRunner().invoke(fix_command, args, input=input, env=env, catch_exceptions=False)


def _report_file(tmp_path, findings):
    return reports.save(reports.report(findings), tmp_path / "report.json")


def test_write_bashrc_twice_then_undo_restores_exact_bytes(home, tmp_path):
    rc = home / ".bashrc"
    rc.write_bytes(ORIGINAL)
    os.chmod(rc, 0o640)
    rep = _report_file(tmp_path, [reports.cuda_home_finding()])
    first = run(home, ["--write-bashrc", "--yes", "--from", rep, *QUIET])
    assert first.exit_code == 0, first.output
    data = rc.read_bytes()
    assert data.startswith(ORIGINAL + b"\n" + START)
    assert b"export CUDA_HOME=/usr/local/cuda-13.0\n" in data
    assert b'export PATH=/usr/local/cuda-13.0/bin"${PATH:+:$PATH}"' in data
    assert stat.S_IMODE(os.stat(rc).st_mode) == 0o640
    assert "[done] write the environment block" in first.output
    second = run(home, ["--write-bashrc", "--yes", "--from", rep, *QUIET])
    assert second.exit_code == 0 and rc.read_bytes() == data
    assert "already up to date" in second.output
    undo = run(home, ["--undo"])
    assert undo.exit_code == 0, undo.output
    assert rc.read_bytes() == ORIGINAL
    assert "restored the previous content exactly" in undo.output


def test_dry_run_shows_the_diff_and_writes_nothing(home, tmp_path):
    rc = home / ".bashrc"
    rc.write_bytes(b"export A=1\n")
    rep = _report_file(tmp_path, [reports.cuda_home_finding()])
    result = run(home, ["--write-bashrc", "-n", "--from", rep])
    assert result.exit_code == 0
    assert "+export CUDA_HOME=/usr/local/cuda-13.0" in result.output
    assert rc.read_bytes() == b"export A=1\n"
    assert not (home / ".cache").exists()


@pytest.mark.parametrize("answer,written", [("n\n", False), ("y\n", True), ("", False)])
def test_asks_before_each_step(home, tmp_path, answer, written):
    rc = home / ".bashrc"
    rc.write_bytes(b"export A=1\n")
    rep = _report_file(tmp_path, [reports.cuda_home_finding()])
    result = run(home, ["--write-bashrc", "--from", rep, *QUIET], input=answer)
    assert "Apply: write the environment block" in result.output
    assert (START in rc.read_bytes()) is written
    if not written:
        assert "[skipped]" in result.output and "not confirmed" in result.output


def test_missing_rc_is_created_and_undo_removes_it(home, tmp_path):
    rep = _report_file(tmp_path, [reports.cuda_home_finding()])
    assert run(home, ["--write-bashrc", "--yes", "--from", rep, *QUIET]).exit_code == 0
    assert (home / ".bashrc").read_bytes().startswith(START)
    assert run(home, ["--undo"]).exit_code == 0
    assert not (home / ".bashrc").exists()


def test_read_only_rc_fails_clearly_and_keeps_the_file(home, tmp_path):
    rc = home / ".bashrc"
    rc.write_bytes(ORIGINAL)
    os.chmod(rc, 0o444)
    rep = _report_file(tmp_path, [reports.cuda_home_finding()])
    result = run(home, ["--write-bashrc", "--yes", "--from", rep, *QUIET])
    assert result.exit_code == 1
    assert "[FAILED]" in result.output and "read-only" in result.output and "Traceback" not in result.output
    assert rc.read_bytes() == ORIGINAL


def test_directory_in_place_of_rc_fails_clearly(home, tmp_path):
    (home / ".bashrc").mkdir()
    (home / ".bashrc" / "keep").write_text("x")
    rep = _report_file(tmp_path, [reports.cuda_home_finding()])
    result = run(home, ["--write-bashrc", "--yes", "--from", rep, *QUIET])
    assert result.exit_code == 1 and "is a directory" in result.output
    assert (home / ".bashrc" / "keep").read_text() == "x"


def test_disk_full_fails_clearly_and_keeps_the_file(home, tmp_path, monkeypatch):
    import errno

    rc = home / ".bashrc"
    rc.write_bytes(ORIGINAL)
    rep = _report_file(tmp_path, [reports.cuda_home_finding()])
    real_replace = os.replace

    def full(src, dst):
        if str(dst) == str(rc):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(fsops.os, "replace", full)
    result = run(home, ["--write-bashrc", "--yes", "--from", rep, *QUIET])
    monkeypatch.undo()
    assert result.exit_code == 1 and "no space left on the device" in result.output
    assert rc.read_bytes() == ORIGINAL
    assert sorted(p.name for p in home.iterdir()) == [".bashrc", ".cache"]


def test_symlinked_rc_is_written_through(home, tmp_path):
    target = tmp_path / "dotfiles-bashrc"
    target.write_bytes(b"export A=1\n")
    (home / ".bashrc").symlink_to(target)
    rep = _report_file(tmp_path, [reports.cuda_home_finding()])
    assert run(home, ["--write-bashrc", "--yes", "--from", rep, *QUIET]).exit_code == 0
    assert (home / ".bashrc").is_symlink() and START in target.read_bytes()
    assert run(home, ["--undo"]).exit_code == 0
    assert target.read_bytes() == b"export A=1\n" and (home / ".bashrc").is_symlink()


def test_user_edits_after_fix_survive_undo(home, tmp_path):
    rc = home / ".bashrc"
    rc.write_bytes(b"export A=1\n")
    rep = _report_file(tmp_path, [reports.cuda_home_finding()])
    run(home, ["--write-bashrc", "--yes", "--from", rep, *QUIET])
    with open(rc, "ab") as fh:
        fh.write(b"alias new='added later'\n")
    assert run(home, ["--undo"]).exit_code == 0
    assert rc.read_bytes() == b"export A=1\nalias new='added later'\n"


def test_print_env_lines_work_in_bash(home, tmp_path):
    rep = _report_file(tmp_path, [reports.cuda_home_finding()])
    result = run(home, ["--print-env", "--from", rep])
    assert result.exit_code == 0
    out = subprocess.run(["bash", "-c", 'eval "$1"; printf "%s|%s" "$CUDA_HOME" "$PATH"', "x", result.output],
                         env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True).stdout
    assert out == "/usr/local/cuda-13.0|/usr/local/cuda-13.0/bin:/usr/bin:/bin"


def test_zsh_and_custom_rc(home, tmp_path):
    rep = _report_file(tmp_path, [reports.cuda_home_finding()])
    assert run(home, ["--write-bashrc", "--shell", "zsh", "--yes", "--from", rep, *QUIET]).exit_code == 0
    assert START in (home / ".zshrc").read_bytes() and not (home / ".bashrc").exists()
    custom = tmp_path / "env.sh"
    assert run(home, ["--rc", str(custom), "--yes", "--from", rep, *QUIET]).exit_code == 0
    assert END in custom.read_bytes()


def test_ci_env_is_appended(home, tmp_path):
    genv, gpath = tmp_path / "genv", tmp_path / "gpath"
    genv.write_text("EXISTING=1\n")
    gpath.write_text("")
    rep = _report_file(tmp_path, [reports.cuda_home_finding()])
    result = run(home, ["--write-ci-env", "--yes", "--from", rep, *QUIET],
                 extra_env={"GITHUB_ENV": str(genv), "GITHUB_PATH": str(gpath)})
    assert result.exit_code == 0, result.output
    assert genv.read_text() == "EXISTING=1\nCUDA_HOME=/usr/local/cuda-13.0\n"
    assert gpath.read_text() == "/usr/local/cuda-13.0/bin\n"
    assert not (home / ".bashrc").exists()


def test_conflicting_findings_first_most_severe_wins(home, tmp_path):
    rep = _report_file(tmp_path, [reports.cuda_home_finding("/opt/cuda-12.1", "ED302", reports.Severity.WARNING),
                                  reports.cuda_home_finding()])
    result = run(home, ["--write-bashrc", "-n", "--from", rep])
    assert "+export CUDA_HOME=/usr/local/cuda-13.0" in result.output
    assert "conflict: CUDA_HOME: kept '/usr/local/cuda-13.0' (from ED301)" in result.output


def test_quarantine_and_undo(home, tmp_path):
    project = write_old_msda_ops(str(tmp_path / "proj"))
    build = write_stale_build(project)
    rep = _report_file(tmp_path, [reports.finding("ED601", "quarantine", {"paths": [build, project]})])
    result = run(home, ["--quarantine-stale", "--yes", "--from", rep, *QUIET])
    assert not os.path.exists(build) and os.path.isfile(os.path.join(project, "setup.py"))
    assert "looks like a source directory" in result.output  # the project dir itself is refused
    assert run(home, ["--undo"]).exit_code == 0
    assert os.path.isfile(os.path.join(build, "temp.linux-x86_64-cpython-38", "build.ninja"))


def test_patch_sources_needs_consent_keeps_backup_and_undoes(home, tmp_path):
    project = write_old_msda_ops(str(tmp_path / "ops"))
    cu = os.path.join(project, "src", "cuda", "ms_deform_attn_cuda.cu")
    original = open(cu, "rb").read()
    refused = run(home, ["--patch-sources", project, "--from", _report_file(tmp_path, []), *QUIET], input="n\nn\nn\n")
    assert "-  AT_DISPATCH_FLOATING_TYPES(value.type()" in refused.output
    assert open(cu, "rb").read() == original
    done = run(home, ["--patch-sources", project, "--yes", "--from", _report_file(tmp_path, []), *QUIET])
    assert done.exit_code == 0, done.output
    assert b"value.scalar_type()" in open(cu, "rb").read()
    assert run(home, ["--undo"]).exit_code == 0
    assert open(cu, "rb").read() == original


def test_pip_runs_only_with_yes_and_only_this_python(home, tmp_path):
    rep = _report_file(tmp_path, [reports.finding("ED201", "pip_install", {"argv": ["pip", "--version"]},
                                                  commands=["pip --version"])])
    without = run(home, ["--from", rep, *QUIET], input="y\n")
    assert "runs pip only with --yes" in without.output and "$ pip --version" in without.output
    with_yes = run(home, ["--yes", "--from", rep, *QUIET])
    assert "[done] ED201: pip_install fix: pip finished" in with_yes.output


def test_manual_fix_is_printed_not_run(home, tmp_path):
    result = run(home, ["-n", "--from", _report_file(tmp_path, [reports.manual_finding()])])
    assert "$ sudo apt install nvidia-driver-580" in result.output
    assert "envdoctor cannot do this itself" in result.output


def test_json_output_is_machine_readable(home, tmp_path):
    rep = _report_file(tmp_path, [reports.cuda_home_finding()])
    result = run(home, ["--write-bashrc", "--yes", "--format", "json", "--from", rep, *QUIET])
    data = json.loads(result.output)
    assert data["schema_version"] == 1 and data["healthy"] is True
    assert [r["status"] for r in data["results"]] == ["done"]
    assert data["verification"]["summary"]["resolved"] == ["ED301"]
    assert data["verification"]["env"]["CUDA_HOME"] == "/usr/local/cuda-13.0"


def test_bad_report_file_is_a_usage_error(home, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = run(home, ["--from", str(bad)])
    assert result.exit_code == 2 and "cannot read the report" in result.output
    assert "Traceback" not in result.output


def test_undo_with_other_actions_is_a_usage_error(home):
    result = run(home, ["--undo", "--write-bashrc"])
    assert result.exit_code == 2 and "--undo cannot be combined" in result.output


def test_unhealthy_after_check_exits_1(home, tmp_path, monkeypatch):
    monkeypatch.setattr(verify_mod, "run_check", lambda env, runner, paths: {
        "available": True, "findings": [{"code": "ED101", "severity": "error", "title": "driver"}]})
    rep = _report_file(tmp_path, [reports.cuda_home_finding(), reports.manual_finding()])
    result = run(home, ["--write-bashrc", "--yes", "--from", rep, *QUIET])
    assert result.exit_code == 1
    assert "resolved: ED301" in result.output and "Environment is not healthy yet." in result.output


def test_help_has_examples():
    result = CliRunner().invoke(fix_command, ["--help"])
    assert result.exit_code == 0 and "Examples:" in result.output and "--write-bashrc" in result.output


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "envdoctor.cli_fix", "--help"], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0 and "Repair what can be repaired" in out.stdout


def test_ci_env_outside_ci_fails_clearly(home, tmp_path):
    rep = _report_file(tmp_path, [reports.cuda_home_finding()])
    result = run(home, ["--write-ci-env", "--yes", "--from", rep, *QUIET])
    assert result.exit_code == 1 and "not running in GitHub Actions" in result.output
