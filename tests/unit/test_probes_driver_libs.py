"""The driver from the driver: NVML and libcuda asked in a child, on fake roots.

Library files are looked up under the context's root, so these machines never
see the real one's libcuda (whether or not it has one). What the child printed
comes from tests/fixtures/driver/ through a FakeRunner; the child itself runs
for real in the last tests.
"""
from __future__ import annotations

import os
import sys

import pytest

from envdoctor.model import FactSet
from envdoctor.probes import _driver_libs, driver, gpus
from envdoctor.probes.base import ProbeContext
from envdoctor.runner import CommandResult, FakeRunner, Runner
from tests.fixtures.fake_bin import write_fake, write_tree

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "driver")
MULTIARCH = "usr/lib/x86_64-linux-gnu"
PROC_580 = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul 27 06:54:38 UTC 2025\n"
PROC_570 = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  570.133.07  Fri Mar 14 13:12:07 UTC 2025\n"


def recorded(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as fh:
        return fh.read()


def machine(tmp_path, files=None, env=None, child=None, smi=None):
    """A fake root with ``files``; the child answers ``child`` (stdout or a CommandResult)."""
    root = str(tmp_path / "root")
    os.makedirs(root, exist_ok=True)
    write_tree(root, files or {})
    responses = {}
    if child is not None:
        responses[sys.executable] = child
    if smi is not None:
        responses["nvidia-smi"] = smi
    runner = FakeRunner(responses)
    bin_dir = str(tmp_path / "bin")
    os.makedirs(bin_dir, exist_ok=True)
    if smi is not None:
        write_fake(bin_dir, "nvidia-smi", "unused: the FakeRunner answers")
    context_env = {"PATH": bin_dir}
    context_env.update(env or {})
    return ProbeContext(env=context_env, root=root, runner=runner, paths=()), runner


def child_calls(runner):
    return [c for c in runner.calls if c[0] == sys.executable]


def libs_at(directory: str, version: str = "") -> dict:
    """Library files as a driver package lays them out (contents never read: the child is faked)."""
    suffix = f".{version}" if version else ".1"
    files = {f"{directory}/libcuda.so{suffix}": "", f"{directory}/libnvidia-ml.so{suffix}": ""}
    if version:
        files[f"{directory}/libcuda.so.1"] = f"->libcuda.so.{version}"
        files[f"{directory}/libnvidia-ml.so.1"] = f"->libnvidia-ml.so.{version}"
    return files


# ---- library search ----------------------------------------------------------

def test_a_root_without_driver_libraries_has_no_driver_whatever_the_real_machine_has(tmp_path):
    ctx, runner = machine(tmp_path)
    facts = FactSet(driver.probe(ctx))
    assert child_calls(runner) == []  # nothing to load: no child
    assert not facts.has("driver.libs") and "no libcuda.so.1" in facts.get("driver.libs").error
    assert facts.value("driver.state")["state"] == "none"
    assert facts.value("driver.present") is False


def test_search_follows_the_loader_order_under_the_root(tmp_path):
    extra = str(tmp_path / "ld_path")
    write_tree(extra, {"libcuda.so.1": ""})
    files = {"etc/ld.so.conf": "include /etc/ld.so.conf.d/*.conf\n",
             "etc/ld.so.conf.d/nvidia.conf": "# driver\n/opt/nvidia/lib64\n",
             "opt/nvidia/lib64/libcuda.so.1": "", f"{MULTIARCH}/libcuda.so.1": "", "lib64": f"->{MULTIARCH}",
             "usr/lib64": "->lib/x86_64-linux-gnu"}
    ctx, _ = machine(tmp_path, files, env={"LD_LIBRARY_PATH": extra})
    dirs = _driver_libs.library_dirs(ctx)
    assert dirs[0] == extra and dirs[1] == ctx.path("/opt/nvidia/lib64")
    found = _driver_libs.candidates(ctx, "libcuda.so.1")
    assert found == [os.path.join(extra, "libcuda.so.1"), ctx.path("/opt/nvidia/lib64/libcuda.so.1"),
                     ctx.path(f"/{MULTIARCH}/libcuda.so.1")]
    assert all(p.startswith(str(tmp_path)) for p in found)


def test_the_child_gets_the_files_found_under_the_root(tmp_path):
    ctx, runner = machine(tmp_path, libs_at(MULTIARCH, "535.309.01"),
                          child=recorded("debian12-libcuda1-535-no-module.jsonl"))
    driver.probe(ctx)
    (call,) = child_calls(runner)
    assert call[1:4] == ("-I", "-S", _driver_libs.SCRIPT)
    assert '"libcuda": ["' + ctx.path(f"/{MULTIARCH}/libcuda.so.1") + '"]' in call[4]


# ---- named states ------------------------------------------------------------

def test_user_space_driver_without_kernel_module(tmp_path):
    ctx, _ = machine(tmp_path, libs_at(MULTIARCH, "535.309.01"),
                     child=recorded("debian12-libcuda1-535-no-module.jsonl"))
    facts = FactSet(driver.probe(ctx))
    state = facts.value("driver.state")
    assert state["state"] == "user_space_only"
    assert state["user_space_version"] == "535.309.01" and state["cuda_max"] == "12.2"
    assert state["cu_init"] == "CUDA_ERROR_NO_DEVICE (100)" and state["nvml_init"] == "NVML_ERROR_DRIVER_NOT_LOADED"
    assert state["summary"] == ("user-space driver 535.309.01 (CUDA 12.2) installed, kernel module not loaded "
                                "(cuInit: CUDA_ERROR_NO_DEVICE (100))")
    assert "kernel module not loaded" in facts.get("driver.version").error
    assert not facts.has("driver.cuda_max")
    assert facts.value("driver.present") is False
    assert facts.value("driver.libs")["libcuda_cuda_version_raw"] == 12020


def test_working_driver_without_nvidia_smi_is_read_from_nvml(tmp_path):
    files = dict(libs_at(MULTIARCH, "580.65.06"), **{"proc/driver/nvidia/version": PROC_580, "dev/nvidia0": "",
                                                      "dev/nvidiactl": ""})
    ctx, runner = machine(tmp_path, files, child=recorded("h100-580-working.jsonl"))
    facts = FactSet(driver.probe(ctx) + gpus.probe(ctx))
    assert facts.value("driver.state")["state"] == "ok"
    assert facts.value("driver.version") == "580.65.06"
    assert facts.get("driver.version").source == "nvmlSystemGetDriverVersion"
    assert facts.value("driver.cuda_max") == "13.0"
    assert facts.get("driver.cuda_max").source.startswith("cuDriverGetVersion")
    assert facts.value("driver.present") is True
    (gpu,) = facts.value("gpus")
    assert (gpu["name"], gpu["compute_cap"], gpu["compute_cap_source"], gpu["memory_total_mib"], gpu["uuid"]) == \
        ("NVIDIA H100 80GB HBM3", "9.0", "nvml", 81559, "GPU-5a9c7d2e-0b1f-4c3d-9e8f-112233445566")
    assert facts.get("gpus").source.startswith("NVML")
    assert len(child_calls(runner)) == 1  # both probes, one child


def test_cuda_max_prefers_the_library_to_the_smi_header(tmp_path):
    from tests.fixtures import corpus
    banner = corpus.text("smi-mmcv-204-450-header").replace("450.102.04", "580.65.06").replace("11.0", "12.0")

    def smi(argv):
        if argv[1:] == ("--query-gpu=driver_version", "--format=csv,noheader"):
            return CommandResult(argv, 0, "580.65.06\n")
        return CommandResult(argv, 0, banner)
    files = dict(libs_at(MULTIARCH, "580.65.06"), **{"proc/driver/nvidia/version": PROC_580})
    ctx, _ = machine(tmp_path, files, child=recorded("h100-580-working.jsonl"), smi=smi)
    facts = FactSet(driver.probe(ctx))
    assert facts.get("driver.version").source == "nvidia-smi --query-gpu=driver_version"
    assert facts.value("driver.cuda_max") == "13.0"  # the header said 12.0; the library is the driver


def test_nvml_version_mismatch(tmp_path):
    files = dict(libs_at(MULTIARCH, "575.57.08"), **{"proc/driver/nvidia/version": PROC_570, "dev/nvidia0": ""})
    ctx, _ = machine(tmp_path, files, child=recorded("nvml-mismatch-575-vs-570.jsonl"))
    facts = FactSet(driver.probe(ctx))
    state = facts.value("driver.state")
    assert state["state"] == "library_mismatch"
    assert state["nvml_init"] == "NVML_ERROR_LIB_RM_VERSION_MISMATCH"
    assert (state["kernel_module_version"], state["user_space_version"]) == ("570.133.07", "575.57.08")
    assert facts.value("driver.present") is True


def test_wsl2_without_proc_driver_nvidia_is_normal(tmp_path):
    files = dict(libs_at("usr/lib/wsl/lib"), **{"proc/version": "Linux version 5.15.167.4-microsoft-standard-WSL2"})
    ctx, _ = machine(tmp_path, files, child=recorded("wsl2-576-working.jsonl"))
    facts = FactSet(driver.probe(ctx) + gpus.probe(ctx))
    state = facts.value("driver.state")
    assert state["state"] == "wsl" and state["wsl"] is True
    assert state["libcuda"] == "/usr/lib/wsl/lib/libcuda.so.1"
    assert facts.value("driver.version") == "576.88" and facts.value("driver.cuda_max") == "12.9"
    assert facts.value("driver.present") is True
    assert not facts.has("driver.kernel_module_version")
    assert facts.value("gpus")[0]["compute_cap"] == "8.9"
    assert state["summary"] == "576.88 (CUDA 12.9), WSL2: the Windows host's driver, libraries in /usr/lib/wsl/lib"
    assert facts.value("driver.smi")["status"] == "not_found"


def test_wsl2_nvidia_smi_off_path_is_found_too(tmp_path):
    files = dict(libs_at("usr/lib/wsl/lib"), **{"proc/version": "Linux version 5.15.167.4-microsoft-standard-WSL2"})
    ctx, runner = machine(tmp_path, files, child=recorded("wsl2-576-working.jsonl"),
                          smi=lambda argv: CommandResult(argv, 0, "576.88\n"))
    os.remove(os.path.join(ctx.env["PATH"], "nvidia-smi"))  # not on PATH, as in WSL2
    write_fake(os.path.join(ctx.root, "usr/lib/wsl/lib"), "nvidia-smi", "unused: the FakeRunner answers")
    facts = FactSet(driver.probe(ctx))
    assert facts.value("driver.smi")["path"] == ctx.path("/usr/lib/wsl/lib/nvidia-smi")
    assert facts.value("driver.version") == "576.88"
    assert facts.get("driver.version").source == "nvidia-smi --query-gpu=driver_version"
    assert facts.value("driver.state")["state"] == "wsl"


def test_container_with_device_nodes_and_libcuda_but_no_nvidia_smi_or_nvml(tmp_path):
    """NVIDIA_DRIVER_CAPABILITIES=compute: the runtime mounts libcuda, not nvidia-smi or NVML."""
    libcuda_line = recorded("h100-580-working.jsonl").splitlines()[1] + "\n"
    files = {f"{MULTIARCH}/libcuda.so.580.65.06": "", f"{MULTIARCH}/libcuda.so.1": "->libcuda.so.580.65.06",
             "proc/driver/nvidia/version": PROC_580, ".dockerenv": "", "dev/nvidia0": "", "dev/nvidiactl": ""}
    ctx, runner = machine(tmp_path, files, child=libcuda_line)
    facts = FactSet(driver.probe(ctx) + gpus.probe(ctx))
    assert '"nvml"' not in child_calls(runner)[0][4]
    (gpu,) = facts.value("gpus")
    assert (gpu["name"], gpu["compute_cap"], gpu["compute_cap_source"], gpu["uuid"]) == \
        ("NVIDIA H100 80GB HBM3", "9.0", "libcuda", None)
    assert facts.get("gpus").source.startswith("libcuda")
    assert facts.value("driver.version") == "580.65.06"
    assert facts.get("driver.version").source == "/proc/driver/nvidia/version"
    state = facts.value("driver.state")
    assert (state["state"], state["container"], state["smi"]) == ("ok", "docker", "not_found")


@pytest.mark.parametrize("marker, visible, expected", [
    ({".dockerenv": ""}, None, ("container_no_gpu", "docker")),
    ({"run/.containerenv": ""}, "void", ("container_no_gpu", "podman")),
    ({"proc/1/cgroup": "0::/kubepods/besteffort/pod1234/abcd\n"}, "none", ("container_no_gpu", "kubernetes")),
    ({".dockerenv": ""}, "all", ("none", "docker")),  # asked for GPUs: not a container "with no GPU exposed"
    ({}, None, ("none", None)),  # not a container
])
def test_container_with_no_gpu_exposed(tmp_path, marker, visible, expected):
    env = {} if visible is None else {"NVIDIA_VISIBLE_DEVICES": visible}
    ctx, _ = machine(tmp_path, marker, env=env)
    state = FactSet(driver.probe(ctx)).value("driver.state")
    assert (state["state"], state["container"]) == expected
    assert state["nvidia_visible_devices"] == visible


def test_device_nodes_without_driver_libraries_or_nvidia_smi(tmp_path):
    ctx, runner = machine(tmp_path, {".dockerenv": "", "dev/nvidia0": "", "dev/nvidiactl": "", "dev/nvidia-uvm": ""},
                          env={"NVIDIA_VISIBLE_DEVICES": "0"})
    facts = FactSet(driver.probe(ctx))
    state = facts.value("driver.state")
    assert state["state"] == "no_user_space"
    assert state["device_nodes"] == ["/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidiactl"]
    assert child_calls(runner) == []


def test_a_child_killed_after_nvml_keeps_what_nvml_said(tmp_path):
    first_line = recorded("nvml-mismatch-575-vs-570.jsonl").splitlines()[0] + "\n"
    files = dict(libs_at(MULTIARCH, "575.57.08"), **{"proc/driver/nvidia/version": PROC_570})
    ctx, _ = machine(tmp_path, files, child=lambda argv: CommandResult(argv, -11, first_line, ""))
    facts = FactSet(driver.probe(ctx))
    libs = facts.value("driver.libs")
    assert "exited with status -11" in libs["child_error"]
    assert libs["nvml_init"]["code"] == 18 and libs["cu_init"] is None
    assert facts.value("driver.state")["state"] == "library_mismatch"


def test_a_hung_child_is_a_recorded_timeout(tmp_path):
    ctx, _ = machine(tmp_path, libs_at(MULTIARCH, "535.309.01"),
                     child=CommandResult((), None, "", "", error="timed out after 10s"))
    facts = FactSet(driver.probe(ctx))
    assert facts.value("driver.libs")["child_error"] == "timed out after 10s"
    state = facts.value("driver.state")
    assert state["state"] == "init_failed"  # the files are there, loading them hung
    assert state["summary"] == "driver libraries found but the driver does not answer (timed out after 10s)"


def test_state_classification_is_pure():
    smi_missing = {"status": "not_found"}
    assert driver.classify_state({}, None, False, smi_missing, False, "docker", [], None)["state"] in driver.STATES
    assert driver.classify_state({}, None, False, smi_missing, False, None, [], None)["state"] == "none"
    assert driver.classify_state({}, "580.65.06", True, {"status": "ok"}, False, None, [], None)["state"] == "ok"
    found = {"libcuda_path": "/usr/lib/x86_64-linux-gnu/libcuda.so.580.65.06", "cu_init": {"code": 999},
             "user_space_version": "580.65.06"}
    assert driver.classify_state(found, "580.65.06", True, smi_missing, False, None, [], None)["state"] == \
        "init_failed"
    assert driver.classify_state(found, "570.133.07", True, smi_missing, False, None, [], None)["state"] == \
        "library_mismatch"
    # A forward-compatibility libcuda (cuda-compat) is newer than the module by design and works.
    compat = dict(found, cu_init={"code": 0}, libcuda_path="/usr/local/cuda-13.0/compat/libcuda.so.580.65.06")
    assert driver.classify_state(compat, "570.133.07", True, smi_missing, False, None, [], None)["state"] == "ok"


# ---- the child, for real -----------------------------------------------------

def test_the_real_child_on_a_file_that_is_not_a_library(tmp_path):
    """Sealed: the child runs for real, but only on the fake root's (broken) file."""
    root = str(tmp_path / "root")
    write_tree(root, {f"{MULTIARCH}/libcuda.so.1": "not an ELF file"})
    ctx = ProbeContext(env={"PATH": str(tmp_path / "empty")}, root=root, runner=Runner(env={}), paths=())
    facts = FactSet(driver.probe(ctx))
    libs = facts.value("driver.libs")
    assert libs["child_error"] is None and libs["libcuda_path"] is None
    assert libs["load_errors"] and ctx.path(f"/{MULTIARCH}/libcuda.so.1") in libs["load_errors"][0]
    assert facts.value("driver.state")["state"] == "none"


def test_the_real_child_on_this_machine():
    """Reads the real machine on purpose and adapts to what it has: a working driver, a
    user-space driver without its kernel module (Debian's libcuda1 without a GPU), or none."""
    ctx = ProbeContext(paths=())
    facts = FactSet(driver.probe(ctx))
    state = facts.value("driver.state")
    found = _driver_libs.candidates(ctx, _driver_libs.LIBCUDA)
    module = os.path.exists("/proc/driver/nvidia/version")
    if not found and not _driver_libs.candidates(ctx, _driver_libs.NVML):
        assert not facts.has("driver.libs")
        return
    libs = facts.value("driver.libs")
    assert libs["child_error"] is None, libs
    if found and not module and not _driver_libs.is_wsl(ctx):
        assert state["state"] == "user_space_only"
        assert libs["cu_init"]["code"] != 0 and libs["libcuda_cuda_version"]
        assert state["summary"].startswith(f"user-space driver {state['user_space_version']} (CUDA ")
        assert "kernel module not loaded" in state["summary"]
    elif found and module:
        assert state["state"] in ("ok", "library_mismatch", "init_failed")
