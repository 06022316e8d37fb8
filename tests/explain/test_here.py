"""Machine facts for --here/--from: picked out of a FactSet, described in one line."""
from __future__ import annotations

from envdoctor.explain import here
from envdoctor.model import Fact, FactSet


def test_from_factset_keeps_what_explain_uses():
    facts = FactSet([
        Fact("host.in_container", False, source="/proc/1/cgroup"),
        Fact("driver.present", True, source="nvidia-smi"),
        Fact("driver.version", "550.54.15", source="nvidia-smi"),
        Fact("nvcc.path", "/usr/bin/nvcc", source="PATH"),
        Fact("nvcc.version", "11.5.119", source="nvcc --version"),
        Fact("gpus", [{"name": "NVIDIA A100-SXM4-80GB", "compute_cap": "8.0"}], source="nvidia-smi"),
        Fact("env.vars", {"CUDA_VISIBLE_DEVICES": "1"}, source="env"),
        Fact.unavailable("driver.cuda_max", "no working nvidia-smi", source="nvidia-smi"),
        Fact("torch.status", {"x": 1}, source="torch"),
    ])
    machine = here.from_factset(facts)
    assert machine == {"host.in_container": False, "driver.present": True, "driver.version": "550.54.15",
                       "nvcc.path": "/usr/bin/nvcc", "nvcc.version": "11.5.119",
                       "env.vars": {"CUDA_VISIBLE_DEVICES": "1"}, "gpus.count": 1, "gpu.cc": "8.0"}
    assert here.describe(machine) == ("not in a container, driver 550.54.15, nvcc /usr/bin/nvcc (11.5.119), "
                                      "1 GPU(s)")


def test_unavailable_gpus_count_as_none_and_empty_facts_say_so():
    machine = here.from_factset(FactSet([Fact.unavailable("gpus", "nvidia-smi is not on PATH", source="PATH")]))
    assert machine == {"gpus.count": 0}
    assert here.describe({}) == "nothing usable"


def test_the_gpu_of_the_machine_names_the_arch_in_the_fix():
    from envdoctor.explain import explain

    fix = explain("RuntimeError: CUDA error: no kernel image is available for execution on the device",
                  {"gpu.cc": "8.9"})[0].fix
    assert 'TORCH_CUDA_ARCH_LIST="8.9"' in fix
