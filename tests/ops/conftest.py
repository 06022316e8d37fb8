"""Shared fixtures: the CPU variant is built once per session (into a session tmp dir) and loaded."""
from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(scope="session")
def ops_cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("envdoctor-ops-cache"))


@pytest.fixture(scope="session")
def cpu_build(ops_cache_dir):
    from envdoctor.ops.build import build_extension

    result = build_extension(cuda=False, cache_dir=ops_cache_dir)
    assert result.ok, result.error
    return result


@pytest.fixture(scope="session")
def compiled(cpu_build):
    """The CPU variant, loaded into this process."""
    from envdoctor.ops import loader

    loader.load_library(cpu_build.path, "cpu")
    assert loader.has_kernel("CPU")
    return cpu_build


def make_inputs(n=2, m=3, d=5, lq=7, shapes=((6, 5), (3, 4), (2, 2)), p=4, dtype=torch.float64,
                spread=(-0.2, 1.2), seed=0, requires_grad=False):
    """Random op inputs; sampling locations in ``spread`` so some fall outside [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    spatial_shapes = torch.tensor(shapes, dtype=torch.int64).reshape(-1, 2)
    sizes = spatial_shapes[:, 0] * spatial_shapes[:, 1]
    level_start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    levels, s = len(shapes), int(sizes.sum())
    value = torch.randn(n, s, m, d, generator=gen, dtype=dtype)
    lo, hi = spread
    loc = torch.rand(n, lq, m, levels, p, 2, generator=gen, dtype=dtype) * (hi - lo) + lo
    attn = torch.rand(n, lq, m, levels, p, generator=gen, dtype=dtype)
    attn = attn / attn.sum((-1, -2), keepdim=True).clamp_min(1e-6)
    if requires_grad:
        value.requires_grad_()
        loc.requires_grad_()
        attn.requires_grad_()
    return value, spatial_shapes, level_start_index, loc, attn


def env_without(*names):
    env = dict(os.environ)
    for name in names:
        env.pop(name, None)
    return env
