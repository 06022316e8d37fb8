"""The five system probes together: through the engine, on this machine and on a
fake one; every fact documented, JSON-able, and nothing written."""
from __future__ import annotations

import json
import os
import re

from envdoctor.engine import collect_facts
from envdoctor.model import FactSet
from envdoctor.probes import compiler, driver, environment, gpus, toolkits
from envdoctor.probes.base import ProbeContext
from tests.fixtures import corpus
from tests.fixtures.fake_bin import path_with, write_fake, write_tree

MODULES = (driver, gpus, toolkits, compiler, environment)
NAMES = [m.PROBE.name for m in MODULES]
FACTS_MD = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "facts.md")


def documented_keys():
    with open(FACTS_MD, encoding="utf-8") as fh:
        return set(re.findall(r"^\| `([^`]+)` \|", fh.read(), re.M))


def test_every_key_is_documented_and_declared():
    documented = documented_keys()
    for module in MODULES:
        for key in module.PROBE.keys:
            assert key in documented, f"{key} of probe {module.PROBE.name} is not in docs/facts.md"


def test_this_machine_through_the_engine():
    facts = collect_facts(ProbeContext(paths=()), names=NAMES)
    for module in MODULES:
        for key in module.PROBE.keys:
            assert key in facts, key
            fact = facts.get(key)
            assert "crashed" not in (fact.error or ""), fact.error
        assert facts.value(f"probe.{module.PROBE.name}.seconds") is not None
    # JSON-able, and a saved report loads back to the same facts.
    dumped = json.loads(json.dumps(facts.to_list()))
    assert FactSet.from_list(dumped).to_list() == facts.to_list()


def snapshot(root):
    entries = []
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            entries.append((path, os.lstat(path).st_mtime_ns))
    return sorted(entries)


def test_a_fake_machine_and_nothing_is_written(tmp_path):
    root = str(tmp_path / "root")
    write_tree(root, {
        "proc/driver/nvidia/version": "NVRM version: NVIDIA UNIX x86_64 Kernel Module  525.60.13  Wed Nov 30\n",
        "usr/local/cuda-12.0/version.json": json.dumps({"cuda": {"version": "12.0.1"},
                                                        "cuda_nvcc": {"version": "12.0.140"}}),
        "usr/local/cuda-12.0/include/cuda_runtime.h": "",
        "usr/local/cuda-12.0/lib64/libcudart.so.12": "",
        "usr/local/cuda": "->cuda-12.0",
    })
    write_fake(os.path.join(root, "usr/local/cuda-12.0/bin"), "nvcc",
               {"--version": corpus.text("nvcc-gdino-165-11.8").replace("11.8, V11.8.89", "12.0, V12.0.140"),
                "--list-gpu-arch": "compute_50\ncompute_86\ncompute_90\n"})
    bin_dir = str(tmp_path / "bin")
    banner = corpus.text("smi-mmcv-204-450-header").replace("450.102.04", "525.60.13").replace("11.0", "12.0")
    write_fake(bin_dir, "nvidia-smi", {
        "--query-gpu=driver_version --format=csv,noheader": "525.60.13\n",
        "--query-gpu=index,name,uuid,pci.bus_id,memory.total,memory.used,compute_cap --format=csv,noheader,nounits":
            "0, NVIDIA GeForce RTX 3090, GPU-1, 00000000:01:00.0, 24576, 1, 8.6\n",
        "--query-compute-apps=*": "",
        "": banner,
    })
    write_fake(bin_dir, "gcc", {"--version": "gcc (GCC) 12.3.0\n"})
    # The classic case: torch from conda with cudatoolkit=11.1 (a runtime, no nvcc).
    conda = os.path.join(root, "home/u/miniconda3/envs/m2f")
    write_tree(conda, {"conda-meta/cudatoolkit-11.1.74-h6bb024c_0.json": "{}", "lib/libcudart.so.11.0": ""})
    env = {"PATH": path_with(bin_dir + ":" + os.path.join(root, "usr/local/cuda/bin")), "CUDA_HOME": "",
           "CONDA_PREFIX": conda}
    before = snapshot(str(tmp_path))
    facts = collect_facts(ProbeContext(env=env, root=root, paths=()), names=NAMES)
    assert snapshot(str(tmp_path)) == before
    assert facts.value("driver.version") == "525.60.13"
    assert facts.value("driver.cuda_max") == "12.0"
    assert facts.value("driver.kernel_module_version") == "525.60.13"
    assert facts.value("gpus")[0]["compute_cap"] == "8.6"
    assert facts.value("nvcc.version") == "12.0.140"
    assert facts.value("nvcc.toolkit") == os.path.join(root, "usr/local/cuda-12.0")
    assert [(t["version"], t["kind"], t["has_nvcc"], t["found_via"]) for t in facts.value("toolkits")] == [
        ("12.0.140", "system", True, ["nvcc on PATH", "/usr/local/cuda*"]),
        ("11.1.74", "conda", False, ["conda"])]
    assert facts.value("compiler.host")["version"] == "12.3.0"
    assert facts.value("env.vars") == {"CUDA_HOME": "", "CONDA_PREFIX": conda}
