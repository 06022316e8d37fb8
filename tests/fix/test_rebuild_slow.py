"""Real builds with nvcc (no GPU needed): old sources fail then build after the patch,
a Mask2Former-like ops dir with a stale build/ is rebuilt, and the whole
write-bashrc -> new shell -> CUDA build -> undo story on this machine."""
from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from envdoctor.fix.rcfile import START
from tests.fix import reports
from tests.fix.ext_fixtures import (MODULE, write_current_msda_ops, write_egg, write_old_msda_ops, write_project,
                                    write_stale_build)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_TIMEOUT = 3600


def _env(home, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_HOME", "CUDA_PATH", "TORCH_CUDA_ARCH_LIST",
                                                            "FORCE_CUDA", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), PYTHONPATH=REPO + os.pathsep + env.get("PYTHONPATH", ""), MAX_JOBS="2")
    env.update(extra)
    return env


def _fix(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "envdoctor", "fix", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=BUILD_TIMEOUT)


def _call_op(path, env):
    code = (f"import sys, torch; sys.path.insert(0, sys.argv[1]); import {MODULE} as m; "
            "print(m.ms_deform_attn_forward(torch.arange(3.0, dtype=torch.float64), 2.0).tolist())")
    return subprocess.run([sys.executable, "-c", code, path], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_old_msda_sources_fail_as_is_and_build_after_consented_patch(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    ops = write_old_msda_ops(str(tmp_path / "Deformable-DETR" / "models" / "ops"))
    env = _env(home, CUDA_HOME="/usr/local/cuda", TORCH_CUDA_ARCH_LIST="8.0", FORCE_CUDA="1")
    as_is = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=ops, env=env,
                           capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert as_is.returncode != 0
    log = as_is.stdout + as_is.stderr
    assert "DeprecatedTypeProperties" in log or "AT_CHECK" in log
    empty = reports.save(reports.report([]), tmp_path / "report.json")
    fixed = _fix(["--patch-sources", ops, "--rebuild", ops, "--yes", "--no-rebuild", "--no-smoke",
                  "--from", empty], env, str(tmp_path))
    assert "[done] port" in fixed.stdout, fixed.stdout + fixed.stderr
    assert f"[done] clean, rebuild, build it in place and prove {MODULE} in {ops}: built and imported {MODULE} " \
           "with CUDA kernels for sm_80" in fixed.stdout, fixed.stdout + fixed.stderr
    assert glob.glob(os.path.join(ops, "src", "**", "*.envdoctor*"), recursive=True) == []  # backups live elsewhere
    assert glob.glob(str(home / ".cache" / "envdoctor" / "runs" / "*" / "backups" / "*.bak"))
    assert _call_op(ops, env).stdout.strip() == "[0.0, 2.0, 4.0]"


@pytest.mark.slow
def test_rebuild_mask2former_like_ops_with_stale_build(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    ops = write_current_msda_ops(str(tmp_path / "Mask2Former" / "mask2former" / "modeling" / "pixel_decoder" / "ops"))
    stale = write_stale_build(ops)
    stale_so = os.path.join(ops, f"{MODULE}.cpython-38-x86_64-linux-gnu.so")
    with open(stale_so, "wb") as fh:
        fh.write(b"\x7fELF" + b"\0" * 60)
    # No FORCE_CUDA and no visible GPU: this setup.py refuses unless fix sets FORCE_CUDA=1 itself.
    env = _env(home, CUDA_HOME="/usr/local/cuda", TORCH_CUDA_ARCH_LIST="8.0")
    empty = reports.save(reports.report([]), tmp_path / "report.json")
    fixed = _fix(["--rebuild", ops, "--yes", "--no-rebuild", "--no-smoke", "--from", empty], env, str(tmp_path))
    assert f"built and imported {MODULE}" in fixed.stdout, fixed.stdout + fixed.stderr
    assert not os.path.exists(stale_so)
    quarantined = glob.glob(str(home / ".cache" / "envdoctor" / "runs" / "*" / "quarantine" / "*"))
    assert sorted(os.path.basename(q)[4:] for q in quarantined) == sorted(["build", os.path.basename(stale_so)])
    assert not os.path.exists(os.path.join(stale, "temp.linux-x86_64-cpython-38"))  # the new build/ is fresh
    assert _call_op(ops, env).stdout.strip() == "[0.0, 2.0, 4.0]"


UBUNTU_BASHRC = (b"# ~/.bashrc: executed by bash(1) for non-login shells.\n"
                 b"case $- in\n    *i*) ;;\n      *) return;;\nesac\n"
                 b"HISTSIZE=1000\r\nalias ll='ls -alF'")  # CRLF line and no trailing newline on purpose


USER_SETUP = """\
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

setup(name="user_ext", ext_modules=[CUDAExtension("user_ext", ["user_ext.cpp", "user_kernel.cu"])],
      cmdclass={"build_ext": BuildExtension})
"""
USER_CPP = """\
#include <torch/extension.h>
void launch_fill(float* out, int n);
at::Tensor fill(int64_t n) {
  auto out = torch::empty({n});
  return out;
}
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("fill", &fill); m.def("launch", &launch_fill); }
"""
USER_CU = """\
__global__ void fill_kernel(float* out, int n) { int i = threadIdx.x; if (i < n) out[i] = i; }
void launch_fill(float* out, int n) { fill_kernel<<<1, 32>>>(out, n); }
"""


def _user_extension(root) -> str:
    """A user's plain setup.py CUDAExtension (no FORCE_CUDA gate): what ED508 is about."""
    os.makedirs(root)
    for name, text in (("setup.py", USER_SETUP), ("user_ext.cpp", USER_CPP), ("user_kernel.cu", USER_CU)):
        with open(os.path.join(root, name), "w", encoding="utf-8") as fh:
            fh.write(text)
    return str(root)


def _in_new_shell(command, cwd, env):
    # An interactive shell reads ~/.bashrc past the "not interactive: return" guard.
    return subprocess.run(["bash", "-ic", 'cd "$1" && shift && exec "$@"', "bash", cwd, *command], env=env,
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_write_bashrc_on_this_machine_then_users_cuda_extension_builds_in_a_new_shell(tmp_path):
    pytest.importorskip("envdoctor.engine")
    home = tmp_path / "home"
    home.mkdir()
    rc = home / ".bashrc"
    rc.write_bytes(UBUNTU_BASHRC)
    env = _env(home)
    user = _user_extension(tmp_path / "user_ext")
    build = [sys.executable, "setup.py", "build_ext", "--inplace"]
    gpu = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"], env=env,
                         capture_output=True, text=True, timeout=300).stdout.strip() == "True"
    if not gpu:
        # Before: on this GPU-less machine torch's builder has no architecture to compile for.
        before = _in_new_shell(build, user, dict(env, CUDA_HOME="/usr/local/cuda"))
        assert before.returncode != 0 and "IndexError" in before.stderr, before.stdout + before.stderr
    # --arch keeps the test's compile to one architecture; without it the block names torch's own list.
    first = _fix(["--write-bashrc", "--yes", "--no-smoke", "--no-rebuild", "--arch", "9.0"], env, REPO)
    data = rc.read_bytes()
    assert START in data, first.stdout + first.stderr
    assert data.startswith(UBUNTU_BASHRC)
    lines = data.decode().splitlines()
    cuda_home = [line for line in lines if line.startswith("export CUDA_HOME=")]
    assert cuda_home and cuda_home[0].split("=", 1)[1].strip("'") in ("/usr/local/cuda-13.0", "/usr/local/cuda")
    assert "export TORCH_CUDA_ARCH_LIST=9.0" in lines
    assert not [line for line in lines if line.startswith(("export CC=", "export CXX="))]  # nothing to pin here
    after = _in_new_shell(build, user, env)
    assert after.returncode == 0, after.stdout[-3000:] + after.stderr[-3000:]
    built = glob.glob(os.path.join(user, "user_ext*.so"))
    assert built
    imported = _in_new_shell([sys.executable, "-c", "import torch, user_ext; print(user_ext.fill(3).shape)"],
                             user, env)
    assert imported.returncode == 0 and "torch.Size([3])" in imported.stdout, imported.stderr
    second = _fix(["--write-bashrc", "--yes", "--no-smoke", "--no-rebuild", "--arch", "9.0"], env, REPO)
    assert rc.read_bytes() == data, second.stdout
    assert "already up to date" in second.stdout
    undo = _fix(["--undo"], env, REPO)
    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert rc.read_bytes() == UBUNTU_BASHRC


@pytest.mark.slow
def test_compile_error_planted_in_the_users_cu_is_shown_with_file_and_symbol(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    ops = write_current_msda_ops(str(tmp_path / "ops"))
    cu = os.path.join(ops, "src", "cuda", "ms_deform_attn_cuda.cu")
    with open(cu, encoding="utf-8") as fh:
        text = fh.read()
    with open(cu, "w", encoding="utf-8") as fh:
        fh.write(text.replace("auto output = at::empty_like(value);",
                              "auto output = at::empty_like(value);\n  planted_undefined_symbol(value);"))
    env = _env(home, CUDA_HOME="/usr/local/cuda", TORCH_CUDA_ARCH_LIST="8.0")
    empty = reports.save(reports.report([]), tmp_path / "report.json")
    fixed = _fix(["--rebuild", ops, "--yes", "--no-smoke", "--from", empty], env, str(tmp_path))
    assert fixed.returncode == 1
    out = fixed.stdout
    assert f"[FAILED] clean, rebuild, build it in place and prove {MODULE} in {ops}" in out, out + fixed.stderr
    first = out.split("first error:\n", 1)[1].splitlines()[0].strip()
    assert first.startswith(cu) and 'identifier "planted_undefined_symbol" is undefined' in first, out
    log = out.split("full log: ", 1)[1].splitlines()[0]
    assert os.path.isfile(log) and "planted_undefined_symbol" in open(log, encoding="utf-8").read()
    assert "healthy" not in out.split("[FAILED]", 1)[1].replace("not healthy", "")
    assert "Not fixed: a step above failed" in out
    assert "what it means: The NVIDIA driver" not in out  # torch's init warning is not why the build failed


def _venv(path):
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(path)], check=True, timeout=300)
    python = os.path.join(str(path), "bin", "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    return python, site


@pytest.mark.slow
def test_fix_in_a_project_ports_builds_installs_over_a_stale_egg_proves_and_undoes(tmp_path):
    """A make.sh project (build install) with old sources, a bare-except wrapper and a stale egg
    from an earlier `sh make.sh`: one `fix --yes` leaves the op importable from the project with
    CUDA kernels and its functions; --undo takes the install and the ports back."""
    home = tmp_path / "home"
    home.mkdir()
    root, ops = write_project(str(tmp_path / "work"))
    python, site = _venv(tmp_path / "venv")
    egg = write_egg(site)
    env = _env(home, CUDA_HOME="/usr/local/cuda", TORCH_CUDA_ARCH_LIST="8.0")
    run = subprocess.run([python, "-m", "envdoctor", "fix", "--yes", "--no-smoke", "--path", root], env=env,
                         cwd=root, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    out = run.stdout + run.stderr
    assert f"[done] clean, rebuild, install it into the environment and prove {MODULE} in {ops}" in out, out
    assert "with CUDA kernels for sm_80" in out and f"envdoctor-{MODULE}.pth" in out, out
    assert "scale.py:11 (bare except:) catches every failure around ScaleFunction" in out
    code = (f"import torch, {MODULE} as m; print(m.__file__); "
            "print(m.ms_deform_attn_forward(torch.arange(3.0, dtype=torch.float64), 2.0).tolist())")
    used = subprocess.run([python, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert used.stdout.splitlines() == [os.path.join(ops, f"{MODULE}.cpython-{sys.version_info.major}"
                                                          f"{sys.version_info.minor}-x86_64-linux-gnu.so"),
                                        "[0.0, 2.0, 4.0]"], used.stdout + used.stderr
    assert os.path.isdir(egg)  # the user's old install is hidden, not removed
    undo = subprocess.run([python, "-m", "envdoctor", "fix", "--undo"], env=env, cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert not os.path.exists(os.path.join(site, f"envdoctor-{MODULE}.pth"))
    with open(os.path.join(ops, "src", "cpu", "ms_deform_attn_cpu.cpp"), encoding="utf-8") as fh:
        assert "AT_CHECK(" in fh.read()  # the port is undone too
