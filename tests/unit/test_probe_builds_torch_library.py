"""Two extension libraries registering the same TORCH_LIBRARY namespace (a CPU and a
"CUDA" build of one op, as a build cache holds them) must not be reported as failing to
import: loaded together they abort the process, each alone imports."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from envdoctor.probes._ext_loading import IMPORT_MARK, IMPORT_SCRIPT, import_check
from envdoctor.probes.base import ProbeContext
from envdoctor.probes.builds import probe_builds
from envdoctor.runner import CommandResult, FakeRunner

# Both variants define the schema of one namespace, like a CPU-only and a CUDA build of the same op.
OP_CPP = """\
#include <ATen/core/Tensor.h>
#include <torch/library.h>
static at::Tensor same(const at::Tensor& x) { return x; }
TORCH_LIBRARY(envdoctor_tl, m) { m.def("same(Tensor x) -> Tensor"); }
TORCH_LIBRARY_IMPL(envdoctor_tl, CPU, m) { m.impl("same", &same); }
"""
SETUP_PY = """\
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension
args = ["-O0", "-g0"]
setup(name="envdoctor_tl", ext_modules=[CppExtension("envdoctor_tl_cpu", ["op_cpu.cpp"], extra_compile_args=args),
                                       CppExtension("envdoctor_tl_cuda", ["op_cuda.cpp"], extra_compile_args=args)],
      cmdclass={"build_ext": BuildExtension})
"""


@pytest.fixture(scope="session")
def op_pair(tmp_path_factory):
    """(scanned dir, [cpu .so, cuda .so]): one tiny build with torch's own builder."""
    root = tmp_path_factory.mktemp("tlcache")
    project = root / "ops"
    project.mkdir()
    (project / "setup.py").write_text(SETUP_PY)
    (project / "op_cpu.cpp").write_text(OP_CPP)
    (project / "op_cuda.cpp").write_text(OP_CPP)
    env = dict(os.environ, MAX_JOBS="2", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "setup.py", "build_ext"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    libs = sorted(str(p) for p in project.glob("build/lib.*/envdoctor_tl_*.so"))
    assert len(libs) == 2, libs
    return root, libs


def _ctx(*paths, **kw):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    return ProbeContext(env=env, paths=[str(p) for p in paths], **kw)


@pytest.mark.slow
def test_the_pair_really_aborts_one_process(op_pair):
    # The premise: loading both in one process is fatal (so the probe's first try does fail).
    _root, libs = op_pair
    proc = subprocess.run([sys.executable, IMPORT_SCRIPT] + libs, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -6, (proc.returncode, proc.stderr[-2000:])
    assert "Only a single TORCH_LIBRARY can be used to register the namespace envdoctor_tl" in proc.stderr


@pytest.mark.slow
def test_each_imports_alone_so_neither_is_reported_broken(op_pair):
    root, libs = op_pair
    items = {i["path"]: i for i in {f.key: f for f in probe_builds(_ctx(root))}["builds"].value
             if i["kind"] == "extension"}
    assert sorted(items) == libs
    first, second = items[libs[0]], items[libs[1]]
    assert first["imports"] is True and first["import_error"] is None and "import_note" not in first
    assert second["imports"] is True and second["import_error"] is None
    note = second["import_note"]
    assert "SIGABRT" in note and os.path.basename(libs[0]) in note and "alone it imports" in note
    assert "Only a single TORCH_LIBRARY" in note


# ---- the retry logic on scripted processes -------------------------------------------------

def _line(**item) -> str:
    return IMPORT_MARK + json.dumps(item) + "\n"


def _runner(alone_ok: bool):
    """A batch that dies (SIGABRT) loading b.so after a.so; b.so alone imports or not."""
    def respond(argv):
        paths = list(argv[2:])
        if paths == ["/x/b.so"]:
            if alone_ok:
                return CommandResult(argv, 0, _line(path="/x/b.so", start=True) + _line(path="/x/b.so", ok=True))
            return CommandResult(argv, 0, _line(path="/x/b.so", start=True)
                                 + _line(path="/x/b.so", ok=False, error="OSError: undefined symbol: foo"))
        out = _line(path="/x/a.so", start=True) + _line(path="/x/a.so", ok=True) + _line(path="/x/b.so", start=True)
        return CommandResult(argv, -6, out, "terminate called: Only a single TORCH_LIBRARY can be used to "
                             "register the namespace ns\n")
    return FakeRunner({"python": respond})


def test_conflict_only_when_loaded_together_is_a_note():
    runner = _runner(alone_ok=True)
    results = import_check(ProbeContext(env={}, runner=runner, python="python", paths=()), ["/x/a.so", "/x/b.so"])
    assert results["/x/a.so"] == (True, None, None)
    ok, error, note = results["/x/b.so"]
    assert ok is True and error is None
    assert "killed the process (SIGABRT) after a.so" in note and "namespace ns" in note
    assert [c[2:] for c in runner.calls] == [("/x/a.so", "/x/b.so"), ("/x/b.so",)]


def test_failing_alone_too_is_reported_with_the_alone_error():
    results = import_check(ProbeContext(env={}, runner=_runner(alone_ok=False), python="python", paths=()),
                           ["/x/a.so", "/x/b.so"])
    ok, error, note = results["/x/b.so"]
    assert ok is False and error == "OSError: undefined symbol: foo" and "SIGABRT" in note


def test_a_crash_with_nothing_loaded_before_is_not_retried():
    def respond(argv):
        return CommandResult(argv, -11, _line(path=argv[2], start=True), "")
    runner = FakeRunner({"python": respond})
    results = import_check(ProbeContext(env={}, runner=runner, python="python", paths=()), ["/x/c.so"])
    assert results["/x/c.so"] == (False, "loading c.so killed the process (SIGSEGV)", None)
    assert len(runner.calls) == 1


def test_a_hang_is_not_retried():
    def respond(argv):
        return CommandResult(argv, None, _line(path="/x/a.so", start=True) + _line(path="/x/a.so", ok=True)
                             + _line(path="/x/b.so", start=True), "", error="timed out after 70s")
    runner = FakeRunner({"python": respond})
    results = import_check(ProbeContext(env={}, runner=runner, python="python", paths=()), ["/x/a.so", "/x/b.so"])
    assert results["/x/b.so"] == (False, "loading b.so: timed out after 70s", None)
    assert len(runner.calls) == 1  # a hang costs one timeout, not two
