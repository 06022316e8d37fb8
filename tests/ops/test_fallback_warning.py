"""impl="auto" without a built op runs the reference, and says so once per process, naming
`envdoctor build`; impl="compiled" keeps raising. In a fresh interpreter: the op's load state is per process."""
from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = r"""
import warnings
import torch
from envdoctor import ops
from envdoctor.ops.errors import OpNotBuiltError
from envdoctor.ops.loader import ReferenceFallbackWarning

shapes = torch.tensor([[2, 2]]); start = torch.tensor([0])
value = torch.rand(1, 4, 1, 2); loc = torch.rand(1, 3, 1, 1, 1, 2); w = torch.rand(1, 3, 1, 1, 1)
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    first = ops.ms_deform_attn(value, shapes, start, loc, w)
    ops.ms_deform_attn(value, shapes, start, loc, w)
    ops.ms_deform_attn(value, shapes, start, loc, w, impl="reference")
ours = [s for s in seen if issubclass(s.category, ReferenceFallbackWarning)]
print("warnings:", len(ours))
print("message:", ours[0].message if ours else None)
print("same as reference:", torch.equal(first, ops.ms_deform_attn_reference(value, shapes, start, loc, w)))
try:
    ops.ms_deform_attn(value, shapes, start, loc, w, impl="compiled")
except OpNotBuiltError as exc:
    print("compiled raises:", type(exc).__name__)
"""


def test_reference_fallback_warns_once_naming_envdoctor_build(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO, ENVDOCTOR_CACHE_DIR=str(tmp_path / "empty-cache"))
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "warnings: 1"
    assert lines[1].startswith("message: envdoctor's MSDeformAttn runs the pure-PyTorch reference: ")
    assert "Build it with `envdoctor build --cpu-only`" in lines[1]
    assert lines[2:] == ["same as reference: True", "compiled raises: OpNotBuiltError"]
