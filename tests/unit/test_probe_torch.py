"""The torch probe, against the real torch of this machine and against broken fake interpreters."""
from __future__ import annotations

import os
import stat
import sys
import textwrap

import pytest

from envdoctor.probes import torch_probe
from envdoctor.probes.base import ProbeContext
from envdoctor.probes.torch_probe import (
    classify, cuda_from_local_version, decode_cudnn, decode_torchvision_cuda, import_error_message,
    parse_sections, probe_torch,
)
from envdoctor.runner import CommandResult

REAL_PATH = "/usr/local/bin:/usr/bin:/bin"


def _facts(ctx):
    return {f.key: f for f in probe_torch(ctx)}


def _env(**extra):
    env = {"PATH": REAL_PATH, "HOME": os.environ.get("HOME", "/root")}
    env.update(extra)
    return env


def _script(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _fake_torch(tmp_path, init_body):
    """A fake `torch` package whose __init__ runs ``init_body``; returns the PYTHONPATH dir."""
    pkg = tmp_path / "fakepkgs" / "torch"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(init_body))
    return str(tmp_path / "fakepkgs")


@pytest.fixture(scope="module")
def real_default():
    return _facts(ProbeContext(env=_env()))


def test_real_torch_facts(real_default):
    status = real_default["torch.status"].value
    assert status["status"] == "ok", status
    torch = real_default["torch"].value
    import torch as real

    assert torch["version"] == real.__version__
    assert torch["cuda"] == real.version.cuda
    assert torch["cuda_available"] is False  # no GPU on this machine
    assert torch["cuda_error"]  # torch's own words for why
    assert torch["device_count"] == 0 and torch["devices"] == []
    assert torch["arch_list"] == real._C._cuda_getArchFlags().split()
    assert torch["cudnn_raw"] == real.backends.cudnn.version()
    assert torch["cudnn"].count(".") == 2
    assert torch["nccl"] == ".".join(map(str, real.cuda.nccl.version()))
    assert torch["cxx11_abi"] is bool(real._C._GLIBCXX_USE_CXX11_ABI)
    assert any("libcudart" in p for p in torch["loaded_cuda_libs"])
    assert torch["install"] == "pip"


def test_real_torch_cpp_ext_guess_is_which_nvcc(real_default):
    # CUDA_HOME unset here: torch guesses from `which nvcc` = /usr/local/bin/nvcc -> /usr/local.
    torch = real_default["torch"].value
    assert torch["cpp_ext_cuda_home"] == "/usr/local"
    assert torch["cpp_ext_cuda_home_source"] == "which nvcc"


@pytest.mark.parametrize("extra", [{}, {"PATH": "/usr/bin:/bin"}])
def test_cpp_ext_guess_matches_torch_itself(extra):
    # The probe replicates cpp_extension's guess instead of importing it (speed): same answer?
    import subprocess

    env = _env(**extra)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    real = subprocess.run([sys.executable, "-c", "import torch.utils.cpp_extension as c; print(c.CUDA_HOME)"],
                          env=env, capture_output=True, text=True, timeout=120).stdout.strip()
    torch = _facts(ProbeContext(env=env))["torch"].value
    assert str(torch["cpp_ext_cuda_home"]) == real
    # With PATH=/usr/bin:/bin torch finds a distribution's /usr/bin/nvcc where one is installed,
    # else falls back to /usr/local/cuda (it exists here). The test reads the real machine: it adapts.
    expected = "which nvcc" if not extra or os.path.exists("/usr/bin/nvcc") or os.path.exists("/bin/nvcc") \
        else "/usr/local/cuda"
    assert torch["cpp_ext_cuda_home_source"] == expected


def test_real_torchvision(real_default):
    import torchvision

    tv = real_default["torchvision"].value
    assert tv["version"] == torchvision.__version__
    assert tv["cuda"] == cuda_from_local_version(torchvision.__version__)
    assert tv["import_error"] is None


def test_cuda_home_set_is_used():
    facts = _facts(ProbeContext(env=_env(CUDA_HOME="/usr/local/cuda")))
    torch = facts["torch"].value
    assert torch["cpp_ext_cuda_home"] == "/usr/local/cuda"
    assert torch["cpp_ext_cuda_home_source"] == "CUDA_HOME"


def test_quick_mode_reads_files_without_import():
    facts = _facts(ProbeContext(env=_env(), quick=True))
    import torch as real

    torch = facts["torch"].value
    assert facts["torch.status"].value["status"] == "ok"
    assert torch["version"] == real.__version__ and torch["cuda"] == real.version.cuda
    assert torch["cuda_available"] is None and torch["cuda_error"] == "quick mode"
    assert torch["arch_list"] is None
    assert torch["cudnn"] == decode_cudnn(real.backends.cudnn.version())
    assert torch["cpp_ext_cuda_home"] == "/usr/local" and torch["cpp_ext_cuda_home_source"] == "which nvcc"
    assert facts["torchvision"].value["cuda"] == real.version.cuda


@pytest.mark.parametrize("extra, home, source", [
    ({"CUDA_PATH": "/opt/cuda-x"}, "/opt/cuda-x", "CUDA_PATH"),
    ({"CUDA_HOME": "", "CUDA_PATH": ""}, None, None),
    ({"CUDA_HOME": ""}, "/usr/local", "which nvcc"),  # empty counts as unset, like torch's `or`
    ({"CUDA_HOME": "/a", "CUDA_PATH": "/b"}, "/a", "CUDA_HOME"),
])
def test_cpp_ext_guess_order_quick(extra, home, source):
    torch = _facts(ProbeContext(env=_env(**extra), quick=True))["torch"].value
    assert torch["cpp_ext_cuda_home"] == home and torch["cpp_ext_cuda_home_source"] == source


def test_import_error_is_reported(tmp_path):
    path = _fake_torch(tmp_path, """
        raise ImportError("libcudart.so.11.0: cannot open shared object file: No such file or directory")
    """)
    facts = _facts(ProbeContext(env=_env(PYTHONPATH=path)))
    status = facts["torch.status"].value
    assert status["status"] == "import_error"
    assert "libcudart.so.11.0: cannot open shared object file" in status["message"]
    assert not facts["torch"].available and "import_error" in facts["torch"].error
    assert not facts["torchvision"].available
    assert "ImportError" in facts["torch.status"].raw or "libcudart" in status["message"]


def test_torch_missing(tmp_path):
    # -S: no site-packages, so no torch: what a fresh venv looks like.
    fake = _script(tmp_path / "python", f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    facts = _facts(ProbeContext(env=_env(), python=fake))
    assert facts["torch.status"].value["status"] == "missing"
    assert "No module named 'torch'" in facts["torch"].error


def test_interpreter_that_segfaults(tmp_path):
    fake = _script(tmp_path / "python",
                   f"#!{sys.executable}\nimport os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    facts = _facts(ProbeContext(env=_env(), python=fake))
    status = facts["torch.status"].value
    assert status["status"] == "crashed"
    assert "SIGSEGV" in status["message"] and "importing torch" in status["message"]
    assert not facts["torch"].available


def test_crash_during_cuda_init_keeps_import_facts(tmp_path):
    path = _fake_torch(tmp_path, """
        import os, signal, types
        __version__ = "1.9.0+cu111"
        __file__ = __file__
        version = types.SimpleNamespace(cuda="11.1", hip=None)
        _C = types.SimpleNamespace(_GLIBCXX_USE_CXX11_ABI=False, _cuda_getArchFlags=lambda: "sm_37 sm_86")
        def _crash():
            os.kill(os.getpid(), signal.SIGSEGV)
        cuda = types.SimpleNamespace(is_available=_crash)
    """)
    facts = _facts(ProbeContext(env=_env(PYTHONPATH=path)))
    assert facts["torch.status"].value["status"] == "crashed"
    torch = facts["torch"].value
    assert torch["version"] == "1.9.0+cu111" and torch["cuda"] == "11.1"
    assert torch["arch_list"] == ["sm_37", "sm_86"]
    assert torch["cuda_available"] is False and "SIGSEGV" in torch["cuda_error"]


def test_hanging_interpreter_times_out(tmp_path, monkeypatch):
    monkeypatch.setattr(torch_probe, "IMPORT_TIMEOUT", 1.5)
    fake = _script(tmp_path / "python", "#!/bin/sh\nsleep 30\n")
    facts = _facts(ProbeContext(env=_env(), python=fake, timeout=1.0))
    status = facts["torch.status"].value
    assert status["status"] == "timeout"
    assert "timed out" in status["message"]
    assert "timeout" in facts["torch"].error


def test_garbage_output(tmp_path):
    fake = _script(tmp_path / "python", "#!/bin/sh\necho 'hello {not json'\necho '@@envdoctor-torch {oops'\n")
    facts = _facts(ProbeContext(env=_env(), python=fake))
    status = facts["torch.status"].value
    assert status["status"] == "crashed"
    assert "without reporting" in status["message"]
    assert not facts["torch"].available


def test_wrapper_printing_a_traceback(tmp_path):
    fake = _script(tmp_path / "python", textwrap.dedent("""\
        #!/bin/sh
        echo 'Traceback (most recent call last):' >&2
        echo '  File "<string>", line 1, in <module>' >&2
        echo "ImportError: /env/lib/python3.8/site-packages/torch/lib/libtorch_python.so: undefined symbol: _ZN3c104impl8GPUTrace" >&2
        exit 1
    """))
    facts = _facts(ProbeContext(env=_env(), python=fake))
    status = facts["torch.status"].value
    assert status["status"] == "import_error"
    assert "undefined symbol" in status["message"]


def test_missing_interpreter():
    facts = _facts(ProbeContext(env=_env(), python="/nonexistent/bin/python"))
    assert facts["torch.status"].value["status"] == "crashed"
    assert "not found" in facts["torch.status"].value["message"]


@pytest.mark.parametrize("raw, expected", [(92400, "9.24.0"), (8902, "8.9.2"), (7605, "7.6.5"),
                                           (90100, "9.1.0"), (None, None), ("x", None)])
def test_decode_cudnn(raw, expected):
    assert decode_cudnn(raw) == expected


@pytest.mark.parametrize("raw, expected", [(13000, "13.0"), (11080, "11.8"), (12010, "12.1"), (-1, None),
                                           (0, None), (None, None)])
def test_decode_torchvision_cuda(raw, expected):
    assert decode_torchvision_cuda(raw) == expected


@pytest.mark.parametrize("version, expected", [("0.29.1+cu130", "13.0"), ("0.10.0+cu111", "11.1"),
                                               ("0.4.0+cu92", "9.2"), ("0.20.0", None), ("0.20.0+cpu", None),
                                               (None, None)])
def test_cuda_from_local_version(version, expected):
    assert cuda_from_local_version(version) == expected


def test_import_error_message_names_the_cause():
    text = ("Traceback (most recent call last):\n  File \"x.py\", line 1\nOSError: libcudnn.so.8: cannot open "
            "shared object file: No such file or directory\n\nDuring handling...\nImportError: torch failed")
    message = import_error_message(text)
    assert message.startswith("ImportError: torch failed") and "libcudnn.so.8" in message


def test_parse_sections_ignores_garbage():
    out = "noise\n@@envdoctor-torch {\"section\": \"basics\", \"data\": {\"version\": \"2.0\"}}\n" \
          "@@envdoctor-torch [1,2]\n@@envdoctor-torch {bad\n"
    assert parse_sections(out) == {"basics": {"version": "2.0"}}


def test_classify_status_reported_by_child():
    out = '@@envdoctor-torch {"section": "status", "data": {"status": "missing", "message": "No module named \'torch\'"}}'
    result = CommandResult(("python",), 0, out, "")
    assert classify(result, parse_sections(out))["status"] == "missing"


def test_broken_torch_still_gives_a_full_report(tmp_path):
    from envdoctor.engine import run_check

    path = _fake_torch(tmp_path, """
        raise ImportError("/env/lib/python3.11/site-packages/torch/lib/libtorch_cuda.so: undefined symbol: "
                          "ncclCommRegister")
    """)
    report = run_check(env=_env(PYTHONPATH=path), paths=())
    status = report.facts.value("torch.status")
    assert status["status"] == "import_error" and "undefined symbol: ncclCommRegister" in status["message"]
    assert any(f.code == "ED300" for f in report.findings)
    assert report.facts.has("env.path")  # the other probes went on
    assert not any(r.status == "crashed" for r in report.results)
