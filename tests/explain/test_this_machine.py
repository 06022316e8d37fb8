"""Logs recorded on a real machine (a container with CUDA 13.0 at /usr/local/bin/nvcc, a distribution CUDA 11.8
at /usr/bin/nvcc, torch 2.14.1+cu130, no GPU): `torch.utils.cpp_extension.load` of a one-kernel op.

* torch-load-arch61-nvcc13.log: TORCH_CUDA_ARCH_LIST=6.1 -> nvcc 13 refuses compute_61;
* torch-load-no-gpu-no-arch-list.log: no TORCH_CUDA_ARCH_LIST and no GPU -> IndexError in _get_cuda_arch_flags.
"""
from __future__ import annotations

import os

from envdoctor.explain import analyse, from_bytes

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "corpus", "this_machine")
# What `--here` reported on that machine (envdoctor.explain.here.probe_here()).
MACHINE = {"host.in_container": True, "driver.present": False, "nvcc.path": "/usr/local/bin/nvcc",
           "nvcc.version": "13.0.88", "nvcc.all": ["/usr/local/bin/nvcc", "/usr/bin/nvcc", "/bin/nvcc"],
           "gpus.count": 0}


def _analyse(name, machine=None):
    with open(os.path.join(HERE, name), "rb") as fh:
        return analyse(from_bytes(fh.read()), machine)


def test_arch_refused_by_a_new_nvcc_without_and_with_machine_facts():
    alone = _analyse("torch-load-arch61-nvcc13.log")
    main = alone.explanations[0]
    assert alone.first_error[:2] == (7, "nvcc fatal   : Unsupported gpu architecture 'compute_61'")
    assert main.category == "arch_unsupported_by_nvcc" and main.line_no == 7
    assert "/usr/local/bin/nvcc" in main.diagnosis and "8.0 to 12.9" in main.diagnosis
    # torch's "driver too old" warning on line 1 is reported, but after the error and never confident.
    later = [e for e in alone.explanations if e.line_no == 1]
    assert later and all(e.score <= 0.4 for e in later)
    here = _analyse("torch-load-arch61-nvcc13.log", MACHINE).explanations[0]
    assert "nvcc 13.0.88 no longer compiles for compute_61" in here.diagnosis and "up to 12.9" in here.fix


def test_no_gpu_and_no_arch_list():
    result = _analyse("torch-load-no-gpu-no-arch-list.log", MACHINE)
    main = result.explanations[0]
    assert result.first_error[1] == "IndexError: list index out of range"
    assert (main.category, main.signature, main.line) == ("other", "no-arch-list", "arch_list[-1] += '+PTX'")
    assert "TORCH_CUDA_ARCH_LIST" in main.fix
    assert all(e.score <= 0.4 for e in result.explanations[1:])
