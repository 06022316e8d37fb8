"""`explain`: every real case of the corpus, context disambiguation, first_error, and a fuzz test."""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envdoctor.explain import Explanation, explain, first_error
from envdoctor.explain.catalog import SIGNATURES

CORPUS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "corpus", "public.jsonl")
with open(CORPUS, encoding="utf-8") as _fh:
    RECORDS = [json.loads(line) for line in _fh if line.strip()]

# Cases whose category cannot be told from the text alone. For these the right
# category must still be offered, as an alternative, and the reason is stated.
NOT_FROM_TEXT_ALONE = {
    # "couldn't communicate with the NVIDIA driver": the excerpt never says it ran in docker;
    # the same words come from a host whose kernel module is not loaded.
    "bigdata-108-docker-not-nvidia": "container_gpu_not_exposed",
    # "libcudart.so.10.1: cannot open shared object file" reads the same whether the CUDA 10.1
    # runtime is missing or an mmcv build for CUDA 10.1 sits on a CUDA 12 machine.
    "llmdet-32-mmcv-cuda101": "prebuilt_wheel_mismatch",
}


def test_corpus_is_complete():
    assert len(RECORDS) >= 39
    assert all(r["error_text"] and r["category"] for r in RECORDS)


@pytest.mark.parametrize("record", RECORDS, ids=[r["id"] for r in RECORDS])
def test_every_corpus_case_is_explained(record):
    found = explain(record["error_text"])
    categories = [e.category for e in found]
    assert found, f"nothing recognised in {record['id']}"
    if record["id"] in NOT_FROM_TEXT_ALONE:
        assert record["category"] in categories[1:]
        return
    assert categories[0] == record["category"], categories
    main = found[0]
    lines = record["error_text"].replace("\r\n", "\n").split("\n")
    assert lines[main.line_no - 1].strip() == main.line  # the quoted line is really there
    assert main.diagnosis and main.fix and "{" not in main.diagnosis + main.fix


def test_exceptions_are_few_and_real():
    assert len(NOT_FROM_TEXT_ALONE) <= 3
    ids = {r["id"]: r["category"] for r in RECORDS}
    assert all(ids[i] == c for i, c in NOT_FROM_TEXT_ALONE.items())


def test_categories_are_the_corpus_taxonomy():
    readme = open(os.path.join(os.path.dirname(CORPUS), "..", "..", "..", "docs", "explain.md"),
                  encoding="utf-8").read()
    for signature in SIGNATURES:
        assert f"`{signature.category}`" in readme, signature.category


def test_docker_context_turns_driver_message_into_container():
    log = "$ docker run -it nvidia/cuda:12.2.0-base nvidia-smi\nCUDA driver version is insufficient for CUDA runtime version"
    found = explain(log)
    assert found[0].category == "container_gpu_not_exposed"
    assert "driver_too_old" in [e.category for e in found]
    assert explain("CUDA driver version is insufficient for CUDA runtime version")[0].category == "driver_too_old"


def test_cuda_visible_devices_context_means_gpu_selection():
    log = "$ CUDA_VISIBLE_DEVICES=3 python train.py\nRuntimeError: CUDA error: no CUDA-capable device is detected"
    assert explain(log)[0].category == "gpu_selection"
    assert explain("RuntimeError: CUDA error: no CUDA-capable device is detected")[0].category == "driver_not_loaded"


def test_own_undefined_symbol_is_not_abi():
    log = ("ImportError: /x/MultiScaleDeformableAttention.cpython-38-x86_64-linux-gnu.so: "
           "undefined symbol: _Z27ms_deform_attn_cuda_forwardRKN2at6TensorE")
    # The symbol's arguments mention at::Tensor, but the missing function is the op's own.
    found = explain(log)
    assert found[0].category == "ext_built_without_cuda" and found[0].confidence == "low"
    abi = explain("ImportError: x.so: undefined symbol: _ZN3c1015SmallVectorBase6grow_podEPvmm")
    assert abi[0].category == "stale_build_abi"


def test_multiline_message_quotes_its_first_line():
    log = "building...\nRuntimeError:\n    The detected CUDA version (12.2) mismatches the version that was used to compile\n    PyTorch (11.3). Please make sure to use the same CUDA versions.\n"
    found = explain(log)
    assert found[0].category == "toolkit_torch_mismatch" and found[0].line_no == 3
    assert "12.2" in found[0].diagnosis and "11.3" in found[0].fix


def test_build_log_of_this_machine_without_cuda_home():
    # What an extension build prints here when CUDA_HOME is unset (torch guesses /usr/local).
    log = "\n".join([
        "[1/2] /usr/local/bin/nvcc -I/usr/local/include -c op.cu -o op.cuda.o",
        "op.cu(3): warning #177-D: variable \"x\" was declared but never referenced",
        "[2/2] c++ -c op.cpp -o op.o",
        "g++ -shared op.o op.cuda.o -L/usr/local/lib64 -lc10 -ltorch -lcudart -o op.so",
        "/usr/bin/ld: cannot find -lcudart: No such file or directory",
        "collect2: error: ld returned 1 exit status",
        "error: command '/usr/bin/g++' failed with exit code 1",
    ])
    found = explain(log)
    assert found[0].category == "link_cudart_not_found" and found[0].line_no == 5
    assert first_error(log)[:2] == (5, "/usr/bin/ld: cannot find -lcudart: No such file or directory")


def test_nothing_recognised():
    assert explain("") == []
    assert explain("all good\n100 tests passed\n") == []


def test_first_error_skips_warnings_and_wrappers():
    log = "\n".join([
        "/x/torch/utils/cpp_extension.py:400: UserWarning: There are no g++ version bounds defined",
        "FAILED: /b/ms_deform_attn_cuda.o",
        "/b/src/cuda/ms_deform_attn_cuda.cu(64): warning: something",
        "/b/src/cuda/ms_deform_attn_cuda.cu(64): error: no suitable conversion function from \"const "
        "at::DeprecatedTypeProperties\" to \"c10::ScalarType\" exists",
        "2 errors detected in the compilation",
        "ninja: build stopped: subcommand failed.",
    ])
    line_no, line, context = first_error(log)
    assert line_no == 4 and "no suitable conversion" in line
    assert context[0].startswith("/x/torch") and len(context) == 6
    assert explain(log)[0].category == "deprecated_torch_api_in_ext"


def test_first_error_of_a_traceback_is_the_exception_line():
    log = "Traceback (most recent call last):\n  File \"setup.py\", line 3, in <module>\n" \
          "OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root."
    assert first_error(log)[0] == 3


def test_first_error_falls_back_to_wrapper_lines():
    log = "compiling\nninja: build stopped: subcommand failed.\n"
    assert first_error(log)[0] == 2
    assert first_error("nothing here\n") is None
    assert first_error("") is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=3000))
def test_explain_never_raises(text):
    found = explain(text)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for item in found:
        assert isinstance(item, Explanation)
        assert 1 <= item.line_no <= len(lines)
        assert item.confidence in ("high", "medium", "low")
    result = first_error(text)
    assert result is None or 1 <= result[0] <= len(lines)


_WORDS = ["undefined symbol: _ZN3c10", "nvidia-smi", "nvcc", "release 11.5, V11.5.119", "CUDA 11.8", "docker",
          "CUDA_VISIBLE_DEVICES", "No such file or directory: '", "/bin/nvcc'", "libcudart.so.12: cannot open",
          "error:", "warning:", "Killed", "\n", "'", ":", "(", "\x00", "é", "\r"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), max_size=40))
def test_explain_never_raises_on_near_misses(parts):
    text = " ".join(parts)
    for item in explain(text):
        assert item.diagnosis and item.fix
    first_error(text)


def test_patterns_are_fast_on_big_logs():
    # Linear patterns only: a 2 MB log of near-misses must not take the regex engine hostage.
    big = ("x" * 200 + " No such file or directory: " + ":" * 300 + "\n") * 5000
    found = explain(big)  # completes; the test fails by timeout if a pattern backtracks badly
    assert isinstance(found, list)


OUTPUTS = os.path.join(os.path.dirname(CORPUS), "outputs.jsonl")
with open(OUTPUTS, encoding="utf-8") as _fh:
    TOOL_OUTPUTS = [json.loads(line) for line in _fh if line.strip()]
FAILURE_OUTPUTS = {"smi-err-qixuema-4-no-driver": "driver_not_loaded",
                   "smi-err-ogpukm-47-nvml-mismatch": "driver_library_mismatch"}


@pytest.mark.parametrize("record", TOOL_OUTPUTS, ids=[r["id"] for r in TOOL_OUTPUTS])
def test_healthy_tool_outputs_are_not_problems(record):
    # Real nvidia-smi / nvcc outputs: only the two failure messages are problems.
    found = explain(record["text"])
    expected = FAILURE_OUTPUTS.get(record["id"])
    assert (found[0].category if found else None) == expected


def test_curly_apostrophe_from_a_paste():
    assert explain("NVIDIA-SMI has failed because it couldn\u2018t communicate with the NVIDIA driver.")[0].category \
        == "driver_not_loaded"


def test_detectron2_collect_env_lines():
    failed = "detectron2              0.1.3 @/home/wt/detectron2/detectron2\ndetectron2._C           failed to import\n"
    assert explain(failed)[0].category == "ext_not_built"
    no_cuda = "Compiler                GCC 7.5\nCUDA compiler           not available\n"
    assert explain(no_cuda)[0].category == "ext_built_without_cuda"
    # A table row saying a package is "Not found" is not an error line.
    assert first_error("cv2                    Not found\n") is None
