"""action.yml: its structure, and its `run:` steps executed with bash as GitHub runs them
(`bash --noprofile --norc -eo pipefail`), with the GITHUB_* files in a temporary directory."""
import os
import re
import stat
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def action():
    with open(os.path.join(ROOT, "action.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def steps_by_name(action):
    return {step["name"]: step for step in action["runs"]["steps"]}


def test_structure(action):
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) >= {"require", "fail-on", "format"}
    assert action["inputs"]["fail-on"]["default"] == "error"
    steps = steps_by_name(action)
    upload = steps["Upload the report"]
    assert upload["uses"].startswith("actions/upload-artifact@v")
    assert upload["with"]["path"] == "${{ steps.check.outputs.dir }}" and upload["if"].startswith("always()")
    for step in action["runs"]["steps"]:
        if "run" in step:
            assert step["shell"] == "bash"
            # inputs reach scripts through env only: no expression is spliced into a script
            assert "${{" not in step["run"], step["name"]


def write_exe(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def run_step(step, inputs, env, cwd, check_outputs=None):
    """Run a step's script; its env expressions may name inputs and the check step's outputs."""
    known = {f"inputs.{k}": v for k, v in inputs.items()}
    known.update({f"steps.check.outputs.{k}": v for k, v in (check_outputs or {}).items()})
    values = {}
    for key, expr in (step.get("env") or {}).items():
        values[key] = re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", lambda m: str(known[m.group(1)]), str(expr))
    script = cwd / "step.sh"
    script.write_text(step["run"])
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                          env=dict(env, **values), cwd=cwd, capture_output=True, text=True, timeout=600)


def outputs(path):
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def github_env(tmp_path):
    for name in ("output", "summary"):
        (tmp_path / name).write_text("")
    (tmp_path / "runner").mkdir(exist_ok=True)
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)), "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(tmp_path / "output"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
            "RUNNER_TEMP": str(tmp_path / "runner"), "GITHUB_ACTION_PATH": ROOT}


def defaults(action, **overrides):
    values = {name: spec.get("default", "") for name, spec in action["inputs"].items()}
    values.update(overrides)
    return values


def test_install_step_installs_the_action_checkout(action, tmp_path):
    log = tmp_path / "pip.log"
    fake = write_exe(tmp_path / "fake-python", f'#!/bin/sh\nprintf "%s\\n" "$@" > "{log}"\n')
    step = steps_by_name(action)["Install envdoctor"]
    result = run_step(step, defaults(action, python=fake), github_env(tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr
    assert log.read_text().split("\n")[:3] == ["-m", "pip", "install"] and ROOT in log.read_text()


@pytest.mark.slow
def test_check_step_reports_uploads_and_fails_on_an_unmet_requirement(action, tmp_path):
    python = write_exe(tmp_path / "python-envdoctor",
                       f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" "$@"\n')
    (tmp_path / "gpu.toml").write_text("[tool.envdoctor.require]\ngpus = 4096\n")
    env = github_env(tmp_path)
    steps = steps_by_name(action)
    result = run_step(steps["Run envdoctor check"], defaults(action, python=python, format="junit",
                                                             require="gpu.toml"), env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr  # the verdict is the last step's
    out = outputs(tmp_path / "output")
    assert out["exit-code"] == "1" and out["report"].endswith("envdoctor/envdoctor.xml")
    assert sorted(os.listdir(out["dir"])) == ["envdoctor.json", "envdoctor.xml"]
    assert "::error title=ED807 Enough GPUs are visible::" in result.stdout
    assert "ED807" in (tmp_path / "summary").read_text()
    final = run_step(steps["Fail on findings"], {}, env, tmp_path, check_outputs=out)
    assert final.returncode == 1 and "exit status 1" in final.stdout


def test_check_step_stops_on_a_bad_requirement_table(action, tmp_path):
    python = write_exe(tmp_path / "python-envdoctor",
                       f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" "$@"\n')
    (tmp_path / "bad.toml").write_text("[tool.envdoctor.require]\ngpu_count = 1\n")
    result = run_step(steps_by_name(action)["Run envdoctor check"],
                      defaults(action, python=python, require="bad.toml"), github_env(tmp_path), tmp_path)
    assert result.returncode == 2 and "unknown requirement key 'gpu_count'" in result.stderr
    assert outputs(tmp_path / "output") == {"exit-code": "2"}
    wrong = run_step(steps_by_name(action)["Run envdoctor check"],
                     defaults(action, python=python, format="yaml"), github_env(tmp_path), tmp_path)
    assert wrong.returncode == 2 and "input format must be" in wrong.stdout
