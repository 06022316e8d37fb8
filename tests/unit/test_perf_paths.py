"""Structural properties that keep `envdoctor check` fast (never wall time: see benchmarks/).

- `check --quick` imports no torch and starts no Python subprocess when the
  diagnosed Python is this one (but the driver probe's stdlib-only child, where
  driver libraries exist);
- a full check's parent never imports torch, starts exactly one torch-importing
  child (and one for detectron2 where it is installed), and starts it before the
  CLI (click) is even imported; the driver probe's child, where it runs, starts
  before the CLI too, and the probe adopts it only when it is the same command;
- the in-process shortcuts give exactly the facts the child processes give.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from envdoctor.probes import _driver_libs, _prestart, builds, detectron2, torch_probe
from envdoctor.probes.base import ProbeContext

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MARK = "@@perf-trace "

# Runs `envdoctor ARGS` the way `python -m envdoctor` does, recording every process it starts
# (argv, and whether click was loaded at that moment) and whether torch got imported here.
TRACE = """
import json, subprocess, sys
spawned = []
original = subprocess.Popen.__init__
def recording(self, args, *a, **k):
    spawned.append({"argv": [str(x) for x in args], "click_loaded": "click" in sys.modules})
    original(self, args, *a, **k)
subprocess.Popen.__init__ = recording
sys.argv = ["envdoctor"] + sys.argv[1:]
from envdoctor.__main__ import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
sys.stderr.write("\\n%s%s\\n" % (MARK, json.dumps({"torch": "torch" in sys.modules, "spawned": spawned,
                                                     "code": code, "modules": sorted(sys.modules)})))
"""


def _trace(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=REPO, PYTHONDONTWRITEBYTECODE="1")
    env.pop("ENVDOCTOR_NO_PRESTART", None)
    proc = subprocess.run([sys.executable, "-c", TRACE.replace("MARK", repr(MARK)), *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.startswith(MARK)]
    assert lines, proc.stderr[-3000:]
    trace = json.loads(lines[-1][len(MARK):])
    assert trace["code"] in (0, 1), (trace, proc.stderr[-2000:])
    json.loads(proc.stdout)  # a complete report came out
    return trace


def _pythons(trace):
    real = os.path.realpath(sys.executable)
    return [s for s in trace["spawned"] if os.path.realpath(s["argv"][0]) == real]


def _driver_child(started) -> bool:
    """The driver probe's child: ``python -I -S _driver_script.py``, standard library only (it asks
    NVML and libcuda through ctypes; it runs only where driver libraries exist)."""
    return started["argv"][1:3] == ["-I", "-S"] and started["argv"][3].endswith("_driver_script.py")


D2_INSTALLED = importlib.util.find_spec("detectron2") is not None


def test_quick_check_imports_no_torch_and_starts_no_python(tmp_path):
    trace = _trace(tmp_path, "check", "--quick", "--format", "json", "--fail-on", "never")
    assert trace["torch"] is False
    assert [p for p in _pythons(trace) if not _driver_child(p)] == []
    # Only the renderer it prints with; nothing for extensions or requirements it does not have.
    unused = {"envdoctor.render.markdown", "envdoctor.render.junit", "envdoctor.render.text",
              "envdoctor.probes.imports", "envdoctor.probes._ext_loading", "envdoctor.probes._ext_projects"}
    assert unused & set(trace["modules"]) == set()
    assert "envdoctor.render.jsonfmt" in trace["modules"]


def test_the_torch_child_imports_torch_with_the_garbage_collector_off(tmp_path):
    # A stand-in torch that records the collector's state while it is imported, then fails to import.
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("import gc, os\n"
                                      "open(os.environ['ENVDOCTOR_TEST_GC'], 'w').write(str(gc.isenabled()))\n"
                                      "raise ImportError('stand-in torch')\n")
    seen = tmp_path / "gc.txt"
    env = dict(os.environ, PYTHONPATH=str(tmp_path), ENVDOCTOR_TEST_GC=str(seen))
    proc = subprocess.run([sys.executable, torch_probe.SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert '"import_error"' in proc.stdout and "stand-in torch" in proc.stdout
    assert seen.read_text() == "False"


def test_full_check_starts_one_torch_child_first_and_never_imports_torch_itself(tmp_path):
    trace = _trace(tmp_path, "check", "--format", "json", "--fail-on", "never")
    assert trace["torch"] is False
    pythons = [p for p in _pythons(trace) if not _driver_child(p)]
    # No second interpreter importing torch; detectron2, where installed, is imported in a child of its own.
    assert [p["argv"][1:] for p in pythons][:1] == [[torch_probe.SCRIPT]]
    assert len(pythons) == (2 if D2_INSTALLED else 1), [p["argv"][:3] for p in pythons]
    assert trace["spawned"][0] == pythons[0] and pythons[0]["click_loaded"] is False
    # The driver probe's child (where this machine has driver libraries): once, before the CLI too.
    drivers = [p for p in _pythons(trace) if _driver_child(p)]
    assert len(drivers) <= 1 and all(p["click_loaded"] is False for p in drivers)


def test_quick_check_starts_the_driver_child_before_the_cli(tmp_path):
    trace = _trace(tmp_path, "check", "--quick", "--format", "json", "--fail-on", "never")
    drivers = [p for p in _pythons(trace) if _driver_child(p)]
    assert len(drivers) <= 1 and all(p["click_loaded"] is False for p in drivers)


# ---- the shortcuts give the children's facts ------------------------------------------------

def _as_data(facts):
    return [(f.key, f.value, f.source, f.raw, f.error) for f in facts]


def _ctx(**kw):
    return ProbeContext(env=dict(os.environ), paths=(), **kw)


@pytest.mark.parametrize("module, fn", [(torch_probe, torch_probe.probe_torch),
                                        (detectron2, detectron2.probe_detectron2)])
def test_quick_in_process_equals_the_child(monkeypatch, module, fn):
    here = _as_data(fn(_ctx(quick=True)))
    monkeypatch.setattr(module, "same_interpreter", lambda ctx: False)
    assert here == _as_data(fn(_ctx(quick=True)))


@pytest.mark.skipif(D2_INSTALLED, reason="detectron2 is installed here: its facts need a child (tested elsewhere)")
def test_detectron2_absent_is_known_without_a_child(monkeypatch):
    calls = []
    ctx = _ctx()
    real_run = ctx.runner.run
    monkeypatch.setattr(ctx.runner, "run", lambda argv, **kw: calls.append(argv) or real_run(argv, **kw))
    here = _as_data(detectron2.probe_detectron2(ctx))
    assert calls == []
    monkeypatch.setattr(detectron2, "same_interpreter", lambda ctx: False)
    assert here == _as_data(detectron2.probe_detectron2(ctx)) and len(calls) == 1


def test_installed_ops_lookup_in_process_equals_the_child(tmp_path, monkeypatch):
    # A compiled op that `import` would find: on PYTHONPATH of both this process and the child.
    so = tmp_path / ("MultiScaleDeformableAttention" + importlib.machinery.EXTENSION_SUFFIXES[0])
    so.write_bytes(b"\x7fELF")  # found, never loaded
    # PYTHONPATH entries follow sys.path[0] (the script's or the current directory).
    monkeypatch.setattr(sys, "path", sys.path[:1] + [str(tmp_path)] + sys.path[1:])
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    here = builds.installed_extensions(_ctx())
    assert here == [str(so)]
    monkeypatch.setattr(builds, "same_interpreter", lambda ctx: False)
    assert builds.installed_extensions(_ctx()) == here


def test_quick_torch_shortcut_is_off_for_another_interpreter_env(tmp_path):
    argv = [sys.executable, torch_probe.SCRIPT, "--quick"]
    assert torch_probe._quick_in_process(_ctx(quick=True), argv) is not None
    ctx = _ctx(quick=True)
    ctx.env["PYTHONPATH"] = str(tmp_path)  # the child would search there: ask the child
    assert torch_probe._quick_in_process(ctx, argv) is None
    assert torch_probe._quick_in_process(_ctx(quick=True, python="/usr/bin/python3"), argv) is None


# ---- the early torch child ------------------------------------------------------------------

@pytest.mark.parametrize("argv, wanted", [
    (["check"], True), (["check", "--path", "x", "--format", "json"], True),
    (["check", "--quick"], False), (["check", "--from", "r.json"], False), (["check", "--from=r.json"], False),
    (["check", "--help"], False), (["fix"], False), ([], False), (["--version"], False),
])
def test_which_commands_start_the_torch_child_early(argv, wanted):
    assert _prestart.wants_torch_child(argv) is wanted


@pytest.mark.parametrize("argv, wanted", [
    (["check"], True), (["check", "--quick"], True), (["check", "--format", "json", "--path", "x"], True),
    (["check", "--from", "r.json"], False), (["check", "--from=r.json"], False), (["check", "-h"], False),
    (["fix"], False), ([], False),
])
def test_which_commands_start_the_driver_child_early(argv, wanted):
    assert _prestart.wants_driver_child(argv) is wanted


def _driver_machine(tmp_path, monkeypatch):
    """This machine's root and runner, with the library search pointed at a file that is no library:
    the child runs for real and reports the load error; no real driver library is loaded."""
    fake = tmp_path / "libcuda.so.1"
    fake.write_bytes(b"not a library")
    request = {"libcuda": [str(fake)], "nvml": []}
    monkeypatch.setattr(_driver_libs, "_search", lambda ctx: (["/nowhere"], dict(request)))
    ctx = ProbeContext(env=dict(os.environ), paths=())
    return ctx, {"libcuda": [str(fake)]}


def test_the_driver_probe_adopts_the_early_child_only_when_it_is_the_same_command(tmp_path, monkeypatch):
    ctx, wanted = _driver_machine(tmp_path, monkeypatch)
    real_run = ctx.runner.run
    calls = []
    monkeypatch.setattr(ctx.runner, "run", lambda argv, **kw: calls.append(argv) or real_run(argv, **kw))
    own = _driver_libs._observe(ctx)
    assert len(calls) == 1 and "child_error" not in own and own["libcuda"]["tried"]
    # The same command, started early: adopted (no second child), with the device nodes listed before it.
    assert _prestart.start("driver", _driver_libs.child_argv(ctx, wanted), _driver_libs._child_env(ctx),
                           ["/dev/nvidia-listed-early"])
    adopted = _driver_libs._observe(ctx)
    assert len(calls) == 1 and "driver" not in _prestart._pending
    assert adopted["device_nodes"] == ["/dev/nvidia-listed-early"]
    assert {k: v for k, v in adopted.items() if k != "device_nodes"} == \
        {k: v for k, v in own.items() if k != "device_nodes"}
    # Another command: the early child is killed and the probe runs its own.
    other = _driver_libs.child_argv(ctx, {"nvml": ["/elsewhere/libnvidia-ml.so.1"]})
    assert _prestart.start("driver", other, _driver_libs._child_env(ctx), [])
    proc = _prestart._pending["driver"][2]
    again = _driver_libs._observe(ctx)
    assert len(calls) == 2 and proc.poll() is not None and proc.returncode != 0
    assert {k: v for k, v in again.items() if k != "device_nodes"} == \
        {k: v for k, v in own.items() if k != "device_nodes"}


def test_an_early_driver_child_that_never_answers_times_out_like_the_runner(tmp_path, monkeypatch):
    ctx, wanted = _driver_machine(tmp_path, monkeypatch)
    ctx.timeout = 1.0
    hang = tmp_path / "hang.py"
    hang.write_text("import time\ntime.sleep(30)\n")
    proc, started = _prestart.spawn([sys.executable, str(hang)], dict(os.environ))
    report = _driver_libs.run_child(ctx, wanted, early=(proc, started))
    assert report["child_error"] == "timed out after 1s" and proc.poll() is not None


def test_the_probe_adopts_the_early_child_only_when_it_is_the_same_command(monkeypatch):
    monkeypatch.delenv("ENVDOCTOR_NO_PRESTART", raising=False)
    assert _prestart.start_for(["check"])
    proc = _prestart._pending["torch"][2]
    # Another environment: the early child is useless, killed, and the probe runs its own.
    other = dict(os.environ, ENVDOCTOR_TEST_MARK="1")
    facts = {f.key: f for f in torch_probe.probe_torch(ProbeContext(env=other, paths=()))}
    assert proc.poll() is not None and proc.returncode != 0 and "torch" not in _prestart._pending
    assert facts["torch.status"].value["status"] == "ok"
    # The same command: adopted (no other child may start), its report becomes the facts.
    assert _prestart.start_for(["check"])
    monkeypatch.setattr(_prestart, "spawn", lambda argv, env: pytest.fail("started a second torch child"))
    adopted = {f.key: f for f in torch_probe.probe_torch(ProbeContext(env=dict(os.environ), paths=()))}
    assert "torch" not in _prestart._pending
    assert adopted["torch.status"].value == facts["torch.status"].value
    assert adopted["torch"].value == facts["torch"].value
    assert adopted["torch.status"].raw == facts["torch.status"].raw
    _prestart.discard()  # the driver probe's early child, where this machine has driver libraries


def test_the_probe_does_not_wait_for_the_child_to_exit(tmp_path):
    # A child that reports, then takes 30 s to exit (an interpreter tearing torch down, slowly).
    script = tmp_path / "slow_exit.py"
    script.write_text("import sys, time\n"
                      "print('@@envdoctor-torch {\"section\": \"status\", \"data\": "
                      "{\"status\": \"missing\", \"message\": \"none here\"}}', flush=True)\n"
                      "sys.stderr.write('said before the end\\n'); sys.stderr.flush()\n"
                      "time.sleep(30)\n")
    proc, started = _prestart.spawn([sys.executable, str(script)], dict(os.environ))
    out, err, code, error = _prestart.read_until_done(proc, started, 20.0, torch_probe.STATUS_LINE)
    assert error is None and b'"status": "missing"' in out
    assert proc.wait(timeout=10) != 0  # ended for it, not waited for: 30 s would have timed out above


def test_a_virtualenv_python_is_not_this_interpreter(tmp_path):
    # Its bin/python is a symlink to this very binary, but it starts with the venv's prefix and site.
    from envdoctor.probes._inproc import same_executable, same_interpreter
    from envdoctor.probes.environment import _python

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--symlinks", str(venv)], check=True,
                   timeout=120)
    python = str(venv / "bin" / "python")
    assert os.path.realpath(python) == os.path.realpath(sys.executable)
    assert same_executable(python) is False and same_executable(sys.executable) is True
    assert same_interpreter(_ctx(python=python)) is False
    record = _python(_ctx(python=python)).value
    assert record["prefix"] == str(venv) and record["venv"] == str(venv)
    # A plain symlink (no pyvenv.cfg beside it) starts as the base interpreter: the same one
    # unless this test itself runs in a virtualenv.
    link = tmp_path / "bin" / "python"
    link.parent.mkdir()
    link.symlink_to(sys.executable)
    assert same_executable(str(link)) is (sys.prefix == sys.base_prefix)
