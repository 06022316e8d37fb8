"""nvcc and tool-chain version parsers on real recorded outputs."""
from __future__ import annotations

import pytest

from envdoctor.parsers import nvcc, versions
from tests.fixtures import corpus

# id -> version, by hand from each record's "release X.Y, VX.Y.Z" line.
NVCC = {
    "nvcc-d2-55-9.2": "9.2.148",
    "nvcc-qixuema-4-10.0": "10.0.130",
    "nvcc-builder-580-11.1": "11.1.105",
    "nvcc-builder-580-11.0": "11.0.221",
    "nvcc-k2-584-11.0.194-prompt": "11.0.194",
    "nvcc-gdino-165-11.8": "11.8.89",
    "nvcc-wsl2tut-3-11.5": "11.5.119",
    "nvcc-mrcnn-469-9.0-which": "9.0.176",
    "nvcc-colabfold-74-10.1": "10.1.243",
    "nvcc-local-13.0.88": "13.0.88",
}


def test_every_nvcc_record_has_an_expectation():
    assert set(corpus.ids("nvcc")) == set(NVCC)


@pytest.mark.parametrize("record_id", sorted(NVCC))
def test_nvcc_version(record_id):
    assert nvcc.parse_version(corpus.text(record_id)) == NVCC[record_id]


def test_nvcc_release_without_v_number():
    assert nvcc.parse_version("Cuda compilation tools, release 8.0") == "8.0"
    assert nvcc.parse_version("nvcc: command not found") is None
    assert nvcc.parse_version("") is None


def test_list_gpu_arch_recorded():
    archs = nvcc.parse_list_gpu_arch(corpus.text("nvcc-archs-local-13.0"))
    assert archs == ["sm_75", "sm_80", "sm_86", "sm_87", "sm_88", "sm_89", "sm_90", "sm_100", "sm_110",
                     "sm_103", "sm_120", "sm_121"]


def test_list_gpu_arch_variants():
    assert nvcc.parse_list_gpu_arch("sm_50\nsm_52\nsm_90a\n") == ["sm_50", "sm_52", "sm_90a"]
    assert nvcc.parse_list_gpu_arch("nvcc fatal   : Unknown option '--list-gpu-arch'") == []


@pytest.mark.parametrize("script, target", [
    ('#!/bin/sh\nexec /usr/local/cuda-13.0/bin/nvcc "$@"\n', "/usr/local/cuda-13.0/bin/nvcc"),
    ("#!/bin/sh\nexec '/opt/cuda 12/bin/nvcc' \"$@\"\n", "/opt/cuda 12/bin/nvcc"),
    ("#!/bin/bash\n# wrapper\n/usr/local/cuda-11.8/bin/nvcc $*\n", "/usr/local/cuda-11.8/bin/nvcc"),
    ('#!/bin/sh\nCUDA=/usr/local/cuda-12.1\nexec "$CUDA/bin/nvcc" "$@"\n', "/usr/local/cuda-12.1/bin/nvcc"),
    ('#!/bin/sh\nexport NVCC="/usr/local/cuda-12.1/bin/nvcc"\nexec ${NVCC} "$@"\n', "/usr/local/cuda-12.1/bin/nvcc"),
    ('#!/bin/sh\nexec env LD_LIBRARY_PATH=/x /usr/local/cuda-12.4/bin/nvcc "$@"\n', "/usr/local/cuda-12.4/bin/nvcc"),
    ("#!/bin/sh\n# exec /usr/local/cuda-9.0/bin/nvcc\necho hi\n", None),
    ('#!/bin/sh\nexec ccache "$@"\n', None),
    ("", None),
    ("\x00\x01ELF", None),
])
def test_wrapper_target(script, target):
    assert nvcc.parse_wrapper_target(script) == target


def test_wrapper_target_of_this_machines_wrapper_text():
    # /usr/local/bin/nvcc on the CI machine, verbatim.
    assert nvcc.parse_wrapper_target('#!/bin/sh\nexec /usr/local/cuda-13.0/bin/nvcc "$@"\n') == \
        "/usr/local/cuda-13.0/bin/nvcc"


@pytest.mark.parametrize("text, expected", [
    (corpus.text("gcc-local-12.2.0"), {"name": "gcc", "version": "12.2.0"}),
    ("g++ (GCC) 8.5.0 20210514 (Red Hat 8.5.0-4)\n", {"name": "gcc", "version": "8.5.0"}),
    ("gcc (Ubuntu 9.4.0-1ubuntu1~20.04.2) 9.4.0\n", {"name": "gcc", "version": "9.4.0"}),
    ("12.2.0\n", {"name": "gcc", "version": "12.2.0"}),
    ("Ubuntu clang version 14.0.0-1ubuntu1.1\nTarget: x86_64-pc-linux-gnu\n", {"name": "clang", "version": "14.0.0"}),
    ("Apple clang version 15.0.0 (clang-1500.0.40.1)\n", {"name": "clang", "version": "15.0.0"}),
    ("bash: gcc: command not found", None),
    ("", None),
])
def test_compiler_version(text, expected):
    assert versions.parse_compiler_version(text) == expected


def test_cuda_version_json():
    text = ('{"cuda": {"name": "CUDA SDK", "version": "12.1.1"}, '
            '"cuda_cudart": {"name": "CUDA Runtime (cudart)", "version": "12.1.105"}, '
            '"cuda_nvcc": {"name": "CUDA NVCC", "version": "12.1.105"}}')
    assert versions.parse_cuda_version_json(text) == {"cuda": "12.1.1", "nvcc": "12.1.105", "cudart": "12.1.105"}
    assert versions.parse_cuda_version_json("{}") is None
    assert versions.parse_cuda_version_json("[1, 2]") is None
    assert versions.parse_cuda_version_json("not json") is None


def test_cuda_version_txt():
    assert versions.parse_cuda_version_txt("CUDA Version 11.1.105\n") == "11.1.105"
    assert versions.parse_cuda_version_txt("CUDA Version 10.2.89") == "10.2.89"
    assert versions.parse_cuda_version_txt("hello") is None


def test_dist_info_and_conda_names():
    assert versions.parse_dist_info_name("nvidia_cuda_nvcc-13.0.88.dist-info") == ("nvidia_cuda_nvcc", "13.0.88")
    assert versions.parse_dist_info_name("nvidia_cuda_runtime_cu12-12.1.105.dist-info") == \
        ("nvidia_cuda_runtime_cu12", "12.1.105")
    assert versions.parse_dist_info_name("cuda_toolkit-13.0.3.0.dist-info") == ("cuda_toolkit", "13.0.3.0")
    assert versions.parse_dist_info_name("README") is None
    assert versions.parse_conda_meta_name("cudatoolkit-11.1.74-h6bb024c_0.json") == ("cudatoolkit", "11.1.74")
    assert versions.parse_conda_meta_name("cuda-nvcc-12.1.105-0.json") == ("cuda-nvcc", "12.1.105")
    assert versions.parse_conda_meta_name("history") is None


def test_ninja_and_version_tuple():
    assert versions.parse_ninja_version("1.13.2.git.kitware.jobserver-pipe-1\n") == "1.13.2"
    assert versions.parse_ninja_version("1.11.1\n") == "1.11.1"
    assert versions.parse_ninja_version("ninja: not found") is None
    assert versions.version_tuple("12.1.105") == (12, 1, 105)
    assert versions.version_tuple("abc") == ()
    assert versions.version_tuple(None) == ()
