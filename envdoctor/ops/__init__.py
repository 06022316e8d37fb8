"""The MSDeformAttn op: compiled CPU/CUDA kernels built on demand, and a pure-PyTorch reference.

    from envdoctor import ops
    ops.load_extension(build=True)        # build (cached) and load the op for this environment
    out = ops.ms_deform_attn(value, spatial_shapes, level_start_index, locations, weights)
    ops.active_implementation("cuda")     # "compiled" or "reference"
"""
from envdoctor.ops import build
from envdoctor.ops.build import BuildResult, build_extension
from envdoctor.ops.errors import BuildRefused, MSDeformAttnInputError, OpLoadError, OpNotBuiltError
from envdoctor.ops.functional import IMPLS, ms_deform_attn
from envdoctor.ops.loader import active_implementation, load_extension, loaded_variant
from envdoctor.ops.module import MSDeformAttn
from envdoctor.ops.reference import ms_deform_attn_reference

__all__ = [
    "build", "BuildResult", "build_extension", "BuildRefused", "MSDeformAttnInputError", "OpLoadError",
    "OpNotBuiltError", "IMPLS", "ms_deform_attn", "active_implementation", "load_extension", "loaded_variant",
    "MSDeformAttn", "ms_deform_attn_reference",
]
