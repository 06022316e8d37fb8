"""The deprecated-API scanner and the rewrite it proposes."""
from __future__ import annotations

import os

from envdoctor.fix.sources import patch_bytes, patch_text, scan, unified_diff
from tests.fix.ext_fixtures import write_old_msda_ops


def test_scan_names_each_deprecated_line(tmp_path):
    root = write_old_msda_ops(str(tmp_path / "ops"))
    hits = scan(root)
    by_file = {}
    for hit in hits:
        by_file.setdefault(os.path.relpath(hit["file"], root), []).append((hit["line"], hit["api"]))
    assert by_file["src/cpu/ms_deform_attn_cpu.cpp"] == [
        (5, "AT_CHECK"), (7, "AT_DISPATCH_*(x.type(), ...)"), (8, ".data<T>()"), (9, ".data<T>()")]
    assert (17, "AT_DISPATCH_*(x.type(), ...)") in by_file["src/cuda/ms_deform_attn_cuda.cu"]
    assert by_file["src/ms_deform_attn.h"] == [(9, "x.type().is_cuda()")]
    dispatch = next(h for h in hits if h["api"].startswith("AT_DISPATCH") and h["file"].endswith(".cu"))
    assert dispatch["text"].startswith("AT_DISPATCH_FLOATING_TYPES(value.type(),")
    assert dispatch["replacement"].startswith("AT_DISPATCH_FLOATING_TYPES(value.scalar_type(),")


def test_dispatch_argument_on_the_next_line():
    src = 'AT_DISPATCH_FLOATING_TYPES_AND_HALF(\n    grad_output.type(), "backward", ([&] {\n'
    assert patch_text(src) == 'AT_DISPATCH_FLOATING_TYPES_AND_HALF(\n    grad_output.scalar_type(), "backward", ([&] {\n'


def test_thc_era_code_is_ported_line_for_line():
    src = ("#include <THC/THC.h>\n#include <THC/THCAtomics.cuh>\n#include <THC/THCDeviceUtils.cuh>\n"
           "extern THCState *state;\n"
           "  THCState *state = at::globalContext().lazyInitCUDA();\n"
           "  cudaStream_t s = THCState_getCurrentStream(state);\n"
           "  THCudaCheck(cudaGetLastError());\n"
           "  int blocks = THCCeilDiv(n, 512);\n"
           "  AT_ASSERTM(x.type().is_cuda(), \"x\");\n"
           "  float* p = x.data<float>();\n")
    out = patch_text(src)
    assert out.count("\n") == src.count("\n")
    assert not [line for line in out.splitlines() if "THC" in line and not line.startswith("// envdoctor: removed")]
    assert "#include <ATen/cuda/CUDAContext.h>" in out and "#include <ATen/cuda/Atomic.cuh>" in out
    assert "at::cuda::getCurrentCUDAStream()" in out and "C10_CUDA_CHECK(cudaGetLastError())" in out
    assert "at::ceil_div(n, 512)" in out and "x.is_cuda()" in out and "x.data_ptr<float>()" in out


def test_current_code_is_left_alone():
    src = 'AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "f", ([&] { v.data_ptr<scalar_t>(); }));\n'
    assert patch_text(src) == src


def test_non_utf8_bytes_survive():
    data = b"// caf\xe9 \xff\nAT_CHECK(x, \"m\");\n"
    assert patch_bytes(data) == b"// caf\xe9 \xff\nTORCH_CHECK(x, \"m\");\n"


def test_diff_shows_the_change():
    diff = unified_diff("/p/a.cu", b"AT_CHECK(x);\n", b"TORCH_CHECK(x);\n")
    assert "-AT_CHECK(x);" in diff and "+TORCH_CHECK(x);" in diff and diff.startswith("--- a/p/a.cu")
