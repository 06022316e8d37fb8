"""The second tier: weighed clues when no signature knows the message."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from envdoctor.explain import explain, evidence
from envdoctor.explain import roles as R
from envdoctor.explain.reading import from_text
from tests.explain.buried import bury

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIRE = [(f.name, t) for f in evidence.FEATURES for t in f.must_fire]
SILENT = [(f.name, t) for f in evidence.FEATURES for t in f.must_not_fire]
CATEGORIES = {
    "arch_unsupported_by_nvcc", "build_oom", "container_gpu_not_exposed", "cuda_home_misconfigured", "cuda_home_unset",
    "cudnn_mismatch", "deprecated_torch_api_in_ext", "driver_library_mismatch", "driver_not_loaded", "driver_too_old",
    "ext_built_without_cuda", "ext_not_built", "gcc_unsupported_by_nvcc", "gpu_selection", "libstdcxx_mismatch",
    "link_cudart_not_found", "missing_runtime_lib", "multiple_cuda_toolkits", "nccl", "no_kernel_image_for_gpu",
    "nvcc_missing", "other", "package_version_incompatible", "prebuilt_wheel_mismatch", "smi_cuda_version_confusion",
    "stale_build_abi", "toolkit_torch_mismatch", "torch_arch_unsupported", "torch_cpu_only"}


def test_every_feature_has_both_kinds_of_example_and_known_categories():
    names = [f.name for f in evidence.FEATURES]
    assert len(names) == len(set(names))
    for feat in evidence.FEATURES:
        assert feat.must_fire and feat.must_not_fire, feat.name
        assert feat.weights and all(cat in CATEGORIES and 0 < w <= 2 for cat, w in feat.weights), feat.name
    assert set(evidence.CATEGORY_TEXT) == CATEGORIES


@pytest.mark.parametrize("name,text", FIRE, ids=[f"fire-{n}" for n in range(len(FIRE))])
def test_feature_must_fire(name, text):
    assert next(f for f in evidence.FEATURES if f.name == name).matches(text), (name, text)


@pytest.mark.parametrize("name,text", SILENT, ids=[f"silent-{n}" for n in range(len(SILENT))])
def test_feature_must_not_fire(name, text):
    assert not next(f for f in evidence.FEATURES if f.name == name).matches(text), (name, text)


# Phrasings no signature knows (each checked below to be unknown to the catalogue), and what they mean.
UNKNOWN = [
    ("RuntimeError: unable to communicate with the NVIDIA kernel driver; is the driver loaded?", "driver_not_loaded"),
    ("Error: podman: no device driver found for capabilities [gpu]", "container_gpu_not_exposed"),
    ("error: nvcc is not installed on this machine", "nvcc_missing"),
    ("Error: libcublasLt.so.12 could not be loaded: dlopen failed", "missing_runtime_lib"),
    ("src/ops.cu:40:7: error: 'THCState_getCurrentStream' is not a member of 'at'", "deprecated_torch_api_in_ext"),
    ("NameError: global name '_ext' is not defined", "ext_not_built"),
    ("ValueError: invalid CUDA device id 3", "gpu_selection"),
    ("nvcc error: arch sm_120 is not supported by this compiler", "arch_unsupported_by_nvcc"),
    ("ERROR: your NVIDIA driver is too old for this CUDA runtime, please upgrade the driver", "driver_too_old"),
    ("ImportError: version `GLIBC_2.32' not found (required by /opt/venv/lib/x.so)", "libstdcxx_mismatch"),
    ("RuntimeError: the deformable conv ops have not been compiled; please compile them first",
     "ext_not_built"),
    ("error: torch-2.3.0+cpu is a CPU-only build", "torch_cpu_only"),
]


# Messages printed without any error word (the line is plain text): a short paste is weighed as the message.
UNKNOWN += [
    ("Unable to load libcudnn_cnn_infer.so.8 from the library path", "missing_runtime_lib"),
    ("the loaded NCCL shared memory segment in /dev/shm is too small", "nccl"),
]


@pytest.mark.parametrize("text,category", UNKNOWN)
def test_unknown_phrasings_get_a_low_confidence_reading(text, category):
    found = explain(text)
    assert found, text
    assert all(e.signature == "evidence" for e in found), "a signature knows it: pick another example"
    top = found[0]
    assert top.category == category, [(e.category, e.score) for e in found]
    assert top.confidence == "low" and 0 < top.score <= evidence.MAX_SCORE
    assert top.line_no == 1 and top.evidence and "No known message matched" in top.diagnosis and top.fix


@pytest.mark.parametrize("text", [
    "Successfully installed torch-2.3.0+cu121 torchvision-0.18.0+cu121",  # no failure at all
    "warning: libcudart.so.12 is deprecated here\nwarning: nvcc flag -G is slow",  # warnings only
    "error: something went wrong",  # a failure with no clue
    "Traceback (most recent call last):\n  File \"train.py\", line 3, in <module>\nKeyError: 'lr'",  # unrelated
    "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB",  # a runtime OOM, not a build
    "ModuleNotFoundError: No module named 'yaml'",  # a missing PyPI package: one weak clue
])
def test_silent_without_a_clear_lead(text):
    assert explain(text) == [], [(e.category, e.signature) for e in explain(text)]


def test_silent_on_a_noisy_build_without_an_error():
    log = bury("-- Build files have been written to: /tmp/build", seed=4)
    roles = R.classify_all(from_text(log).lines)
    assert evidence.classify(from_text(log), roles) == []


def test_a_signature_match_wins_and_the_tier_stays_out():
    found = explain("ImportError: libcudart.so.11.0: cannot open shared object file: No such file or directory")
    assert found[0].category == "missing_runtime_lib" and all(e.signature != "evidence" for e in found)


def test_found_inside_a_long_noisy_log_with_its_line():
    line = "RuntimeError: unable to communicate with the NVIDIA kernel driver; is the driver loaded?"
    log = bury(line, seed=2)
    found = explain(log)
    assert found[0].category == "driver_not_loaded" and found[0].signature == "evidence"
    assert found[0].line == line and log.split("\n")[found[0].line_no - 1] == line


def test_a_close_runner_up_is_offered_as_the_alternative():
    text = "torch.distributed: NCCL init failed: invalid CUDA device id 3"  # NCCL, and a GPU index that is not there
    found = explain(text)
    assert [e.signature for e in found] == ["evidence", "evidence"]
    assert found[1].alternative_to == found[0].category and found[1].score < found[0].score
    assert {found[0].category, found[1].category} == {"nccl", "gpu_selection"}


def test_a_long_log_without_an_error_line_is_not_weighed():
    lines = ["Unable to load libcudnn_cnn_infer.so.8 from the library path"] + ["step %d done" % i for i in range(10)]
    assert explain("\n".join(lines)) == []


def test_glog_check_failed_lines_are_errors_not_cmake_probes():
    assert R.classify("F0524 common.cpp:152] Check failed: error == cudaSuccess (35 vs. 0)") == R.ERROR
    assert R.classify("Check failed: e == cudaSuccess CUDA: out of memory") == R.ERROR
    assert R.classify("-- Check for working CUDA compiler: /usr/local/cuda/bin/nvcc -- works") == R.NOISE
    assert R.classify("Check for working C compiler: /usr/bin/cc -- works") == R.NOISE


def test_only_lines_near_a_failure_are_weighed():
    far = ["nvidia driver too old? nvcc is not installed?"] + ["plain text"] * 50 + ["error: something went wrong"]
    roles = R.classify_all(far)
    assert evidence.weigh(far, roles) == []


def test_cli_json_and_exit_code_for_an_evidence_reading(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("step 1\nValueError: invalid CUDA device id 3\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "envdoctor", "explain", str(path), "--format", "json"],
                          capture_output=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["recognised"] is True
    top = data["explanations"][0]
    assert top["category"] == "gpu_selection" and top["signature"] == "evidence" and top["confidence"] == "low"
    assert top["line_no"] == 2 and top["evidence"][0]["line_no"] == 2
    text = subprocess.run([sys.executable, "-m", "envdoctor", "explain", str(path)], capture_output=True, env=env,
                          cwd=ROOT, timeout=120)
    assert text.returncode == 0 and b"gpu_selection (low confidence" in text.stdout
