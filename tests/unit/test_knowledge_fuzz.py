"""The knowledge API never raises, whatever text a probe hands it."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from envdoctor import knowledge as kb

# Arbitrary text plus text shaped like what tools print, so the interesting
# branches (dots, cu tags, truncation marks, brand words) are reached often.
VERSIONISH = st.from_regex(r"[vV]?[0-9]{1,4}(\.[0-9]{1,4}){0,4}(\+[a-z0-9.]{0,8})?", fullmatch=True)
CU_TAGS = st.from_regex(r"(cu|CU)[0-9]{1,4}", fullmatch=True)
GPU_NAMES = st.builds(
    lambda brand, words, tail: " ".join([brand, *words]) + tail,
    st.sampled_from(["", "NVIDIA", "NVIDIA GeForce", "Tesla", "Quadro"]),
    st.lists(st.sampled_from(["RTX", "GTX", "A100", "3090", "208", "TITAN", "X", "Ti", "SUPER",
                              "SXM4-80GB", "(Pascal)", "Laptop", "GPU", "Ada", "", "-", "…"]), max_size=5),
    st.sampled_from(["", "...", "…", " ", "-"]),
)
ANY_TEXT = st.one_of(st.text(max_size=60), VERSIONISH, CU_TAGS, GPU_NAMES)
ANY_VALUE = st.one_of(ANY_TEXT, st.integers(), st.none(), st.booleans(), st.floats(allow_nan=True))


@settings(max_examples=150, deadline=None)
@given(ANY_VALUE)
def test_parse_version_never_raises(value):
    result = kb.parse_version(value)
    assert result is None or isinstance(result, Version)
    if result is not None:
        assert not result.local  # the local part is always dropped


@settings(max_examples=150, deadline=None)
@given(ANY_VALUE)
def test_cuda_major_minor_never_raises(value):
    result = kb.cuda_major_minor(value)
    assert result is None or (isinstance(result, tuple) and len(result) == 2
                              and all(isinstance(x, int) for x in result))


@settings(max_examples=150, deadline=None)
@given(ANY_VALUE)
def test_compute_capability_never_raises(value):
    result = kb.compute_capability(value)
    assert result is None or kb.normalize_arch(result) is not None


@settings(max_examples=200, deadline=None)
@given(ANY_VALUE)
def test_cudnn_and_arch_decoders_never_raise(value):
    assert kb.cudnn_version(value) is None or isinstance(kb.cudnn_version(value), str)
    assert kb.normalize_arch(value) is None or kb.normalize_arch(value).startswith("sm_")


@settings(max_examples=150, deadline=None)
@given(ANY_VALUE, ANY_VALUE)
def test_two_argument_queries_never_raise(a, b):
    ok, reason = kb.driver_runs_cuda(a, b)
    assert isinstance(ok, bool) and isinstance(reason, str) and reason
    kb.arch_supported_by_cuda(a, b)
    kb.pip_install_command(a, b)
    kb.torch_arch_list(a, b)
    kb.best_torch_cuda_for_driver(a, b if isinstance(b, str) else None)
    kb.gcc_supported_by_cuda(a, b)


@settings(max_examples=150, deadline=None)
@given(ANY_VALUE)
def test_one_argument_queries_never_raise(value):
    kb.min_driver_for_cuda(value)
    kb.min_driver_for_cuda(value, minor_compat=False)
    kb.driver_max_cuda(value)
    kb.max_gcc_for_cuda(value)
    kb.min_gcc_for_cuda(value)
    kb.max_clang_for_cuda(value)
    assert isinstance(kb.nvcc_archs(value), list)
    kb.torch_release(value)
    kb.torchvision_for_torch(value)
    assert isinstance(kb.torch_cuda_builds(value), list)
    kb.is_unverified("gpu_cc", value)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["10.0", "10.2", "11.0", "11.4", "11.8", "12.0", "12.4", "12.8", "13.0", "13.2"]),
       st.integers(min_value=400, max_value=700), st.integers(min_value=0, max_value=200))
def test_driver_verdict_is_monotonic_in_the_driver(cuda, major, minor):
    # A newer driver never runs less: if driver d runs CUDA c, so does every driver above d.
    lower = f"{major}.{minor:02d}"
    higher = f"{major + 1}.{minor:02d}"
    if kb.driver_runs_cuda(lower, cuda)[0]:
        assert kb.driver_runs_cuda(higher, cuda)[0]
