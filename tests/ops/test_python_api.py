"""Python-side API: validation messages, impl selection, fallback when nothing is built."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from envdoctor import ops
from tests.ops.conftest import make_inputs


@pytest.mark.parametrize("mutate,message", [
    (lambda v, s, i, lo, a: (v[0], s, i, lo, a), r"value must be 4-D \[N, S, M, D\], got shape \[46, 3, 5\]"),
    (lambda v, s, i, lo, a: (v, s.int(), i, lo, a), r"spatial_shapes must be int64, got torch.int32"),
    (lambda v, s, i, lo, a: (v, s, i[:2], lo, a), r"level_start_index must be \[L\] = \[3\], got shape \[2\]"),
    (lambda v, s, i, lo, a: (v, s, i, lo[:, :, :2], a),
     r"sampling_locations must be \[N, Lq, M, L, P, 2\] = \[2, Lq, 3, 3, P, 2\], got shape \[2, 7, 2, 3, 4, 2\]"),
    (lambda v, s, i, lo, a: (v, s, i, lo, a[..., :3]),
     r"attention_weights must be \[N, Lq, M, L, P\] = \[2, 7, 3, 3, 4\], got shape \[2, 7, 3, 3, 3\]"),
    (lambda v, s, i, lo, a: (v, s, i, lo.float(), a), r"sampling_locations must have value's dtype torch.float64"),
    (lambda v, s, i, lo, a: (v[:, :-1], s, i, lo, a), r"value has S = 45 positions but spatial_shapes .* sum to 46"),
    (lambda v, s, i, lo, a: (v, s, i + 1, lo, a), r"level_start_index must be the running sum of H\*W = \[0, 30, 42\]"),
])
def test_validation_says_expected_and_got(mutate, message):
    args = mutate(*make_inputs())
    with pytest.raises(ops.MSDeformAttnInputError, match=message):
        ops.ms_deform_attn(*args, impl="reference")


def test_unknown_impl_is_rejected():
    with pytest.raises(ValueError, match="impl must be one of auto, compiled, reference, got 'fast'"):
        ops.ms_deform_attn(*make_inputs(), impl="fast")


def test_module_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="d_model must be divisible by n_heads, got d_model=30, n_heads=8"):
        ops.MSDeformAttn(d_model=30, n_heads=8)


def test_module_standard_initialisation():
    module = ops.MSDeformAttn(d_model=16, n_levels=2, n_heads=4, n_points=3)
    bias = module.sampling_offsets.bias.view(4, 2, 3, 2)
    # head 0 points along +x, the i-th point i+1 pixels out; attention starts uniform
    torch.testing.assert_close(bias[0, 0, :, 0], torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(bias[0, 0, :, 1], torch.zeros(3))
    assert torch.count_nonzero(module.attention_weights.weight) == 0
    assert torch.count_nonzero(module.sampling_offsets.weight) == 0


_FALLBACK_SCRIPT = r"""
import json, torch
from envdoctor import ops
from tests.ops.conftest import make_inputs
args = make_inputs()
out = {"active_cpu": ops.active_implementation("cpu"), "loaded": ops.load_extension(build=False)}
out["auto_matches_reference"] = bool(torch.equal(ops.ms_deform_attn(*args), ops.ms_deform_attn_reference(*args)))
try:
    ops.ms_deform_attn(*args, impl="compiled")
    out["compiled_error"] = None
except ops.OpNotBuiltError as exc:
    out["compiled_error"] = str(exc)
print(json.dumps(out))
"""


def test_fallback_to_reference_when_not_built(tmp_path):
    # A fresh process with an empty cache: nothing is built, nothing is loaded.
    import os

    env = dict(os.environ, ENVDOCTOR_CACHE_DIR=str(tmp_path / "empty-cache"))
    proc = subprocess.run([sys.executable, "-c", _FALLBACK_SCRIPT], capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["active_cpu"] == "reference"
    assert result["loaded"] is False
    assert result["auto_matches_reference"] is True
    assert "envdoctor build --cpu-only" in result["compiled_error"]
    assert "not built for this environment" in result["compiled_error"]


_BROKEN_LIBRARY_SCRIPT = r"""
import sys
from envdoctor import ops
from envdoctor.ops import loader
try:
    loader.load_library(sys.argv[1], "cpu")
except ops.OpLoadError as exc:
    print(exc)
"""


def test_unloadable_binary_gives_an_actionable_error(tmp_path):
    # What a binary built against another torch looks like to the loader: dlopen fails.
    import os

    broken = tmp_path / "envdoctor_msda_cpu.so"
    broken.write_bytes(b"\x7fELF not really a library")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run([sys.executable, "-c", _BROKEN_LIBRARY_SCRIPT, str(broken)], capture_output=True,
                          text=True, cwd=root, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"the compiled MSDeformAttn op at {broken} cannot be loaded" in proc.stdout
    assert "envdoctor build --force" in proc.stdout


def test_build_progress_lines_name_the_step():
    from envdoctor.ops.build import _step

    assert _step("[3/4] /usr/local/cuda/bin/nvcc -MD -c /x/csrc/cuda/ms_deform_attn_cuda.cu -o a.o") == \
        "[3/4] compiling ms_deform_attn_cuda.cu"
    assert _step("[4/4] c++ a.o b.o -shared -o envdoctor_msda_cpu.so") == "[4/4] linking"
    assert _step("In file included from x.h") is None
