"""The detectron2 probe with fake detectron2 packages on PYTHONPATH."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from envdoctor.probes.base import ProbeContext
from envdoctor.probes.detectron2 import cuda_of, probe_detectron2


def _fake_d2(tmp_path, c_body: str, init_body: str = '__version__ = "0.6"\n') -> str:
    pkg = tmp_path / "site" / "detectron2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(init_body))
    (pkg / "_C.py").write_text(textwrap.dedent(c_body))
    return str(tmp_path / "site")


def _fact(pythonpath=None, quick=False, python=None):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    ctx = ProbeContext(env=env, quick=quick)
    if python:
        ctx.python = python
    facts = probe_detectron2(ctx)
    assert [f.key for f in facts] == ["detectron2"]
    return facts[0]


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """A Python whose site has no detectron2, whatever this machine has installed (sealed)."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    return str(venv / "bin" / "python")


def test_not_installed_is_unavailable_not_an_error(bare_python):
    fact = _fact(python=bare_python)
    assert not fact.available and fact.error == "not installed"


def test_working_cuda_build(tmp_path):
    path = _fake_d2(tmp_path, """
        def get_cuda_version():
            return "CUDA 11.1"
        def get_compiler_version():
            return "GCC 9.3"
    """)
    value = _fact(path).value
    assert value["version"] == "0.6" and value["imports"] is True and value["import_error"] is None
    assert value["cuda"] == "11.1" and value["compiler"] == "GCC 9.3"
    assert value["path"] == os.path.join(path, "detectron2")


def test_cpu_only_build(tmp_path):
    path = _fake_d2(tmp_path, """
        def get_cuda_version():
            return "not available"
        def get_compiler_version():
            return "GCC 7.5"
    """)
    value = _fact(path).value
    assert value["imports"] is True and value["cuda"] is None and value["c_cuda_version"] == "not available"


def test_c_with_undefined_symbol(tmp_path):
    path = _fake_d2(tmp_path, """
        raise ImportError("/env/lib/python3.6/site-packages/detectron2/_C.cpython-36m-x86_64-linux-gnu.so: "
                          "undefined symbol: _ZNK2at10TensorBase8data_ptrIdEEPT_v")
    """)
    value = _fact(path).value
    assert value["version"] == "0.6" and value["imports"] is False
    assert "undefined symbol: _ZNK2at10TensorBase8data_ptrIdEEPT_v" in value["import_error"]
    assert value["cuda"] is None


def test_package_that_fails_to_import(tmp_path):
    path = _fake_d2(tmp_path, "", init_body="import no_such_module_here\n")
    value = _fact(path).value
    assert value["imports"] is False and "no_such_module_here" in value["import_error"]


def test_c_that_crashes(tmp_path):
    path = _fake_d2(tmp_path, """
        import os, signal
        os.kill(os.getpid(), signal.SIGSEGV)
    """)
    value = _fact(path).value
    assert value["imports"] is False and "SIGSEGV" in value["import_error"]
    assert value["version"] == "0.6"


def test_quick_mode_reads_the_version_without_importing(tmp_path, bare_python):
    path = _fake_d2(tmp_path, "raise SystemExit('must not be imported in quick mode')\n",
                    init_body='__version__ = "0.6"\nraise SystemExit("must not be imported")\n')
    value = _fact(path, quick=True).value
    assert value["version"] == "0.6" and value["imports"] is None and "quick mode" in value["import_error"]
    assert not _fact(quick=True, python=bare_python).available


def test_files_tell_cuda_and_torch_when_c_does_not_import(tmp_path):
    # A source install: the checkout holds detectron2/ and the build/ that made its _C.
    path = _fake_d2(tmp_path, "raise ImportError('undefined symbol: _ZN3c104cuda20getCurrentCUDAStreamEa')\n")
    package = tmp_path / "site" / "detectron2"
    import torch

    # A real CUDA library stands in for _C: it needs libcudart like a CUDA build of detectron2 does.
    shutil.copy(os.path.join(os.path.dirname(torch.__file__), "lib", "libc10_cuda.so"),
                package / "_C.cpython-38-x86_64-linux-gnu.so")
    build = tmp_path / "site" / "build" / "temp.linux-x86_64-3.8"
    build.mkdir(parents=True)
    fixture = os.path.join(os.path.dirname(__file__), "..", "fixtures", "builds", "msda_cu111_build.ninja")
    torch_dir = tmp_path / "env" / "lib" / "python3.8" / "site-packages" / "torch"
    (torch_dir / "include").mkdir(parents=True)
    (torch_dir / "version.py").write_text("__version__ = '1.8.1+cu111'\n")
    text = open(fixture).read().replace("/home/alice/anaconda3/envs/mask2former", str(tmp_path / "env"))
    (build / "build.ninja").write_text(text)
    value = _fact(path).value
    assert value["imports"] is False and value["build_dir"] == str(tmp_path / "site" / "build")
    assert value["torch_built"] == "1.8.1+cu111"
    cuda_major = torch.version.cuda.split(".")[0]
    assert value["c_needs_cuda"] == cuda_major and value["cuda"] == cuda_major


def test_cuda_of():
    assert cuda_of("CUDA 11.1") == "11.1"
    assert cuda_of("CUDA 10.2.89") == "10.2.89"
    assert cuda_of("not available") is None
    assert cuda_of(None) is None
    assert cuda_of("HIP 4.2") is None


ELF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "elf")


def test_c_library_tells_whether_it_has_cuda_kernels(tmp_path):
    """A real library next to a _C module: its fatbin says whether kernels are there (no GPU, no import)."""
    from envdoctor.render.summary import detectron2_line
    from envdoctor.model import Fact, FactSet

    path = _fake_d2(tmp_path, """
        def get_cuda_version():
            return "not available"
        def get_compiler_version():
            return "GCC 12.2"
    """)
    so = os.path.join(path, "detectron2", "_C.cpython-311-x86_64-linux-gnu.so")
    shutil.copy(os.path.join(ELF, "no_device_code.so"), so)
    value = _fact(path).value  # the library shadows _C.py and is no Python module: it does not import
    assert value["c_path"] == so and value["c_has_cuda"] is False and value["imports"] is False
    line = detectron2_line(FactSet([Fact("detectron2", dict(value, c_cuda_version="not available"), source="t")]))
    assert line == f"0.6 (_C: {so}; no CUDA kernels (CPU-only build); get_cuda_version(): not available; " \
                   "does not import)"
    shutil.copy(os.path.join(ELF, "kernel_sm90_ptx120.so"), so)
    value = _fact(path).value
    assert value["c_has_cuda"] is True and value["c_device"]["sm"] == [90]
    assert "CUDA kernels: sm_90, PTX 120" in detectron2_line(FactSet([Fact("detectron2", value, source="t")]))
