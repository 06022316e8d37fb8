"""Facts the knowledge API must get right: envdoctor's verdicts rest on them."""
from __future__ import annotations

import pytest
from packaging.version import Version

from envdoctor import knowledge as kb


# --- parsing -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("12.0", "12.0"), ("V12.0.76", "12.0.76"), ("11.1.74", "11.1.74"), ("525.60.13", "525.60.13"),
    ("2.14.1+cu130", "2.14.1"), (" v2.3.1 ", "2.3.1"), ("1.12.1.post200", "1.12.1.post200"),
    ("release 11.8, V11.8.89", "11.8"), ("Driver Version: 470.82.01", "470.82.1"),
])
def test_parse_version(text, expected):
    assert kb.parse_version(text) == Version(expected)


@pytest.mark.parametrize("bad", ["", "   ", "abc", "N/A", "[Not Supported]", None, 3.5, ["12.0"], True, "x" * 500])
def test_parse_version_rejects(bad):
    assert kb.parse_version(bad) is None


@pytest.mark.parametrize("text, expected", [
    ("11.1.74", (11, 1)), ("cu118", (11, 8)), ("13.0", (13, 0)), ("cu92", (9, 2)), ("cu102", (10, 2)),
    ("2.14.1+cu130", (13, 0)), ("V12.0.76", (12, 0)), ("CUDA Version: 12.2", (12, 2)),
])
def test_cuda_major_minor(text, expected):
    assert kb.cuda_major_minor(text) == expected


@pytest.mark.parametrize("bad", ["12", "cu1180", "cpu", "", None, "2.14.1+cpu", "abc.def"])
def test_cuda_major_minor_rejects(bad):
    assert kb.cuda_major_minor(bad) is None


@pytest.mark.parametrize("raw, expected", [
    (92400, "9.24.0"), (8902, "8.9.2"), (7605, "7.6.5"), (90100, "9.1.0"), ("8902", "8.9.2"),
    (91002, "9.10.2"), ("9.1.0.70", "9.1.0"),
])
def test_cudnn_version(raw, expected):
    assert kb.cudnn_version(raw) == expected


@pytest.mark.parametrize("bad", [0, -8902, 999, 9000, 50000, True, None, "abc", 1.5, "N/A"])
def test_cudnn_version_rejects(bad):
    assert kb.cudnn_version(bad) is None


@pytest.mark.parametrize("text, expected", [
    ("8.6", "sm_86"), ("sm_86", "sm_86"), ("86", "sm_86"), ("compute_86", "sm_86"), ("8.6+PTX", "sm_86"),
    ("9.0a", "sm_90a"), ("10.0", "sm_100"), ("sm_120", "sm_120"), ("12.1", "sm_121"),
])
def test_normalize_arch(text, expected):
    assert kb.normalize_arch(text) == expected


@pytest.mark.parametrize("bad", ["", "8", "sm_8", "8.66", "abc", None, "sm_1234"])
def test_normalize_arch_rejects(bad):
    assert kb.normalize_arch(bad) is None


# --- driver <-> CUDA ---------------------------------------------------------------------------

def test_driver_525_reports_12_0_and_runs_11_8_and_12_1_but_not_13():
    assert kb.driver_max_cuda("525.60.13") == "12.0"
    assert kb.driver_runs_cuda("525.60.13", "11.8")[0] is True
    ok, reason = kb.driver_runs_cuda("525.60.13", "12.1")
    assert ok is True and "525.60.13" in reason and "minor-version" in reason
    ok, reason = kb.driver_runs_cuda("525.60.13", "13.0")
    assert ok is False and "580.65.06" in reason


def test_driver_470_does_not_run_any_12x():
    for cuda in ("12.0", "12.1", "12.4", "12.8", "cu126"):
        ok, reason = kb.driver_runs_cuda("470.82", cuda)
        assert ok is False and "525.60.13" in reason
    assert kb.driver_max_cuda("470.82.01") == "11.4"
    assert kb.driver_runs_cuda("470.82.01", "11.8")[0] is True  # minor-version compatibility


@pytest.mark.parametrize("driver", ["580", "580.65.06", "580.95.05", "595.71.05", "610.43.02"])
def test_580_and_newer_run_13_0(driver):
    assert kb.driver_runs_cuda(driver, "13.0")[0] is True


def test_older_580_builds_and_575_do_not_run_13():
    assert kb.driver_runs_cuda("580.0", "13.0")[0] is False
    assert kb.driver_runs_cuda("575.57.08", "13.0")[0] is False


def test_newer_driver_runs_older_major():
    assert kb.driver_runs_cuda("580.65.06", "12.8")[0] is True
    assert kb.driver_runs_cuda("595.71.05", "11.8")[0] is True


def test_min_driver_for_cuda():
    assert kb.min_driver_for_cuda("12.4") == "525.60.13"
    assert kb.min_driver_for_cuda("12.4", minor_compat=False) == "550.54.14"
    assert kb.min_driver_for_cuda("12.4.1", minor_compat=False) == "550.54.15"
    assert kb.min_driver_for_cuda("11.8") == "450.80.02"
    assert kb.min_driver_for_cuda("13.2") == "580.65.06"
    assert kb.min_driver_for_cuda("13.2", minor_compat=False) == "595.45.04"
    # 11.0 shipped before the 11.x floor existed: its own toolkit driver runs it.
    assert kb.min_driver_for_cuda("11.0") == "450.51.05"
    # No minor-version compatibility before CUDA 11.
    assert kb.min_driver_for_cuda("10.2") == kb.min_driver_for_cuda("10.2", minor_compat=False) == "440.33"


def test_nvcc_build_numbers_resolve_to_the_ga_release():
    # "V12.0.76" is nvcc's build number, not update 76: take 12.0 GA, never 12.0 Update 1.
    assert kb.min_driver_for_cuda("12.0.76", minor_compat=False) == "525.60.13"
    assert kb.min_driver_for_cuda("10.1.243", minor_compat=False) == "418.39"
    assert kb.min_driver_for_cuda("11.0", minor_compat=False) == "450.51.05"  # GA, not the RC row


def test_unknown_cuda_and_driver_give_none():
    assert kb.min_driver_for_cuda("12.7") is None  # never released
    assert kb.min_driver_for_cuda("14.0") is None
    assert kb.min_driver_for_cuda("garbage") is None
    assert kb.driver_max_cuda("garbage") is None
    assert kb.driver_max_cuda("390.46") is None  # before the table's branches
    assert kb.driver_max_cuda("700.10") is None  # after them
    ok, reason = kb.driver_runs_cuda("nonsense", "12.1")
    assert ok is False and "nonsense" in reason
    assert kb.check_driver_for_cuda("525.60.13", "12.7")["ok"] is None


def test_driver_max_cuda_follows_observed_headers():
    assert kb.driver_max_cuda("565.57.01") == "12.7"  # no 12.7 toolkit, the header still says it
    assert kb.driver_max_cuda("550.54.14") == "12.4"
    assert kb.driver_max_cuda("580.65.06") == "13.0"
    assert kb.driver_max_cuda("418.43") == "10.1"
    assert kb.driver_max_cuda("527.41") == "12.0"  # Windows numbering of the same branch
    assert kb.driver_info("535.216.03")["derived_from_table3"] is True
    assert kb.driver_info("560.35.03")["unverified"] is False


def test_via_minor_compat_flag_and_unverified_rows():
    verdict = kb.check_driver_for_cuda("525.60.13", "12.1")
    assert verdict["ok"] is True and verdict["via_minor_compat"] is True
    assert verdict["toolkit_driver"] == "530.30.02" and verdict["min_driver"] == "525.60.13"
    assert kb.check_driver_for_cuda("610.43.02", "13.3")["unverified"] is True
    assert kb.check_driver_for_cuda("580.65.06", "13.0")["unverified"] is False


# --- host compilers ----------------------------------------------------------------------------

@pytest.mark.parametrize("cuda, gcc", [
    ("11.1", 10), ("11.1.74", 10), ("12.8", 14), ("13.0", 15), ("10.2", 8), ("11.8", 11),
    ("12.4", 13), ("12.6", 13), ("12.9", 14), ("13.2", 15), ("11.4.0", 10), ("11.4.3", 11),
])
def test_max_gcc_for_cuda(cuda, gcc):
    assert kb.max_gcc_for_cuda(cuda) == gcc


def test_gcc_ambiguous_and_unverified_flags():
    info = kb.gcc_support("11.4")  # 11.4.0 accepts GCC <= 10, 11.4.1+ GCC <= 11
    assert info["ambiguous"] is True and info["gcc_max"] == 11
    assert kb.gcc_support("13.3")["unverified"] is True
    assert kb.gcc_support("10.1")["disputed"] is True
    assert kb.gcc_support("12.8")["unverified"] is False


def test_min_gcc_and_clang():
    assert kb.min_gcc_for_cuda("11.0") == 5
    assert kb.min_gcc_for_cuda("11.4.1") == 6
    assert kb.min_gcc_for_cuda("10.2") is None  # not stated by the source
    assert kb.max_clang_for_cuda("12.8") == 19
    assert kb.max_clang_for_cuda("13.0") == 20


def test_gcc_supported_by_cuda():
    assert kb.gcc_supported_by_cuda(13, "12.8") is True
    assert kb.gcc_supported_by_cuda(15, "12.8") is False
    assert kb.gcc_supported_by_cuda("15", "13.0") is True
    assert kb.gcc_supported_by_cuda(5, "12.0") is False
    assert kb.gcc_supported_by_cuda("x", "12.0") is None
    assert kb.gcc_supported_by_cuda(11, "12.7") is None


@pytest.mark.parametrize("bad", ["12.7", "9.2", "14.0", "garbage", None])
def test_compiler_queries_unknown(bad):
    assert kb.max_gcc_for_cuda(bad) is None
    assert kb.min_gcc_for_cuda(bad) is None
    assert kb.max_clang_for_cuda(bad) is None


# --- architectures -----------------------------------------------------------------------------

def test_cuda_13_cannot_build_volta_but_can_ampere_hopper_blackwell():
    assert not kb.arch_supported_by_cuda("sm_70", "13.0")
    for arch in ("sm_80", "sm_90", "sm_120", "8.6", "75", "compute_100"):
        assert kb.arch_supported_by_cuda(arch, "13.0"), arch
    assert "sm_70" not in kb.nvcc_archs("13.0")
    assert kb.nvcc_archs("13.0")[0] == "sm_75"


def test_sm_90_needs_only_11_8():
    assert kb.arch_supported_by_cuda("sm_90", "11.8")
    assert kb.arch_supported_by_cuda("sm_89", "11.8")
    assert not kb.arch_supported_by_cuda("sm_90", "11.7")
    assert kb.first_cuda_for_arch("9.0") == "11.8"


def test_arch_history():
    assert kb.arch_supported_by_cuda("8.6", "11.1") and not kb.arch_supported_by_cuda("8.6", "11.0")
    assert kb.arch_supported_by_cuda("sm_70", "12.9")
    assert kb.arch_supported_by_cuda("sm_120", "12.8") and not kb.arch_supported_by_cuda("sm_120", "12.6")
    assert kb.arch_supported_by_cuda("sm_35", "11.8") and not kb.arch_supported_by_cuda("sm_35", "12.0")
    assert kb.arch_supported_by_cuda("sm_101", "12.9") and not kb.arch_supported_by_cuda("sm_101", "13.0")
    assert kb.arch_supported_by_cuda("sm_110", "13.0")
    assert kb.arch_supported_by_cuda("sm_90a", "12.0") and not kb.arch_supported_by_cuda("sm_90a", "11.8")
    assert kb.last_cuda_for_arch("sm_70") == "12.9"


def test_arch_unverified_cells_are_flagged():
    info = kb.arch_support("sm_72", "13.0")
    assert info["supported"] is False and info["unverified"] is True
    assert kb.arch_support("sm_80", "13.0")["unverified"] is False


def test_nvcc_archs_sorted_and_variants():
    archs = kb.nvcc_archs("12.8")
    assert archs == sorted(archs, key=lambda a: int(a[3:]))
    assert "sm_90a" not in archs and "sm_90a" in kb.nvcc_archs("12.8", variants=True)


@pytest.mark.parametrize("cuda", ["12.7", "9.2", "14.0", "nonsense", None])
def test_arch_queries_unknown_cuda(cuda):
    assert kb.nvcc_archs(cuda) == []
    assert kb.arch_supported_by_cuda("sm_80", cuda) is False
    assert kb.arch_support("sm_80", cuda) is None


def test_arch_not_in_table_is_unsupported():
    assert kb.arch_supported_by_cuda("sm_20", "10.0") is False
    assert kb.arch_supported_by_cuda("bogus", "12.0") is False


# --- GPU names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, cc", [
    ("NVIDIA GeForce RTX 3090", "8.6"), ("GeForce RTX 3090", "8.6"), ("NVIDIA A100-SXM4-80GB", "8.0"),
    ("A100-SXM4-40GB", "8.0"), ("Tesla V100-SXM2-32GB", "7.0"), ("NVIDIA H100 80GB HBM3", "9.0"),
    ("NVIDIA H100 PCIe", "9.0"), ("Tesla T4", "7.5"), ("Tesla P40", "6.1"), ("TITAN Xp", "6.1"),
    ("TITAN X (Pascal)", "6.1"), ("GeForce GTX TITAN X", "5.2"), ("NVIDIA GeForce RTX 2080 Ti", "7.5"),
    ("NVIDIA GeForce GTX 1650", "7.5"), ("NVIDIA RTX A6000", "8.6"), ("NVIDIA RTX 6000 Ada Generation", "8.9"),
    ("Quadro RTX 6000", "7.5"), ("NVIDIA GeForce RTX 5090", "12.0"), ("NVIDIA GB10", "12.1"),
    ("nvidia geforce rtx 4090", "8.9"),
])
def test_compute_capability(name, cc):
    assert kb.compute_capability(name) == cc


def test_truncated_rtx_208x_is_7_5_because_every_2080_is_turing():
    # nvidia-smi cuts names at 18 characters. 2080, 2080 Ti and 2080 Super are all CC 7.5, so
    # the cut name still has one answer; it is flagged as an inference.
    info = kb.gpu_info("GeForce RTX 208...")
    assert info["cc"] == "7.5" and info["match"] == "truncated" and info["unverified"] is True


@pytest.mark.parametrize("name", [
    "GeForce GTX TIT...",   # GTX TITAN X is 5.2, GTX TITAN / Black / Z are 3.5: no model number, no answer
    "NVIDIA GeForce ...",   # brand only
    "Quadro RTX 6...",      # too short a model number
    "GRID K520",            # not in the table
    "NVIDIA A10G",          # not in the table, must not match A10
    "Tesla V100S-PCIE-32GB",
    "NVIDIA TITAN X",       # Maxwell GTX TITAN X or Pascal TITAN X: ambiguous
    "", "   ", None, 42,
])
def test_compute_capability_unknown_or_ambiguous(name):
    assert kb.compute_capability(name) is None


def test_suffix_fallbacks_are_flagged():
    info = kb.gpu_info("NVIDIA GeForce RTX 4080 SUPER")
    assert (info["cc"], info["match"], info["unverified"]) == ("8.9", "base_model", True)
    info = kb.gpu_info("NVIDIA GeForce RTX 3080 Laptop GPU")
    assert (info["cc"], info["match"], info["unverified"]) == ("8.6", "variant", True)
    assert kb.gpu_info("NVIDIA A100-SXM4-80GB")["unverified"] is False
    assert kb.gpu_info("GeForce RTX 3070")["unverified"] is True  # secondary-source row


def test_truncated_v100_uses_complete_words():
    assert kb.compute_capability("Tesla V100-SXM2...") == "7.0"


# --- PyTorch -----------------------------------------------------------------------------------

@pytest.mark.parametrize("torch_version, vision", [
    ("2.14.1", "0.29"), ("2.14.1+cu130", "0.29"), ("1.9", "0.10"), ("1.9.1", "0.10"), ("2.0.1", "0.15"),
    ("1.7.0", "0.8"), ("2.13", "0.28"),
])
def test_torchvision_for_torch(torch_version, vision):
    assert kb.torchvision_for_torch(torch_version) == vision


@pytest.mark.parametrize("bad", ["1.6", "3.0", "2.15", "garbage", None, "2"])
def test_torch_queries_unknown(bad):
    assert kb.torchvision_for_torch(bad) is None
    assert kb.torch_release(bad) is None
    assert kb.torch_cuda_builds(bad) == []
    assert kb.pip_install_command(bad, "12.1") is None


def test_torch_release_shape():
    rel = kb.torch_release("2.3.1+cu121")
    assert rel["version"] == "2.3" and rel["patch"] == "2.3.1" and rel["known_patch"] is True
    assert rel["torchvision"] == "0.18" and rel["torchvision_exact"] == "0.18.1"
    assert rel["python"] == ["3.8", "3.9", "3.10", "3.11"] and rel["python_experimental"] == ["3.12"]
    assert rel["cuda"] == {"stable": ["11.8", "12.1"], "experimental": []}
    rel = kb.torch_release("2.4")
    assert rel["cuda"] == {"stable": ["11.8", "12.1"], "experimental": ["12.4"]}
    assert rel["unverified"] is True and "torchaudio" in rel["unverified_fields"]


def test_torch_patch_overrides():
    assert kb.torch_cuda_builds("1.8.0") == ["10.2", "11.1"]
    assert kb.torch_cuda_builds("1.8.1") == ["10.1", "10.2", "11.1"]
    assert kb.torch_release("1.8.2")["pip_style"] == "lts"


def test_torch_cuda_builds():
    assert kb.torch_cuda_builds("2.3.1") == ["11.8", "12.1"]
    assert kb.torch_cuda_builds("2.14.1") == ["12.6", "13.0", "13.2"]
    assert kb.torch_cuda_builds("2.11") == ["12.6", "12.8", "13.0"]


def test_torch_arch_list():
    assert kb.torch_arch_list("2.14.1+cu130", "13.0") == ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
    assert "sm_70" in kb.torch_arch_list("2.14", "12.6")
    assert "sm_70" in kb.torch_arch_list("2.10", "12.8")
    assert "sm_70" not in kb.torch_arch_list("2.11", "cu128")
    assert kb.torch_arch_list("2.3", "12.1") is None  # not known
    assert kb.torch_arch_list_info("2.13", "13.0")["unverified"] is True


@pytest.mark.parametrize("torch_version, cuda, command", [
    ("2.14.1", "13.0", "pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cu130"),
    ("2.3.1", "12.1", "pip install torch==2.3.1 torchvision==0.18.1 --index-url https://download.pytorch.org/whl/cu121"),
    ("2.3", "cu118", "pip install torch==2.3.1 torchvision==0.18.1 --index-url https://download.pytorch.org/whl/cu118"),
    ("2.0.0", "11.8", "pip install torch==2.0.0 torchvision==0.15.1 --index-url https://download.pytorch.org/whl/cu118"),
    ("2.5.1", "12.4", "pip install torch==2.5.1 'torchvision==0.20.*' --index-url https://download.pytorch.org/whl/cu124"),
    ("1.12.1", "11.3", "pip install torch==1.12.1+cu113 torchvision==0.13.1+cu113 --extra-index-url https://download.pytorch.org/whl/cu113"),
    ("1.13.1", "11.7", "pip install torch==1.13.1 torchvision==0.14.1"),
    ("1.9.0", "11.1", "pip install torch==1.9.0+cu111 torchvision==0.10.0+cu111 -f https://download.pytorch.org/whl/torch_stable.html"),
    ("1.7.1", "10.2", "pip install torch==1.7.1 torchvision==0.8.2"),
    ("1.8.2", "11.1", "pip install torch==1.8.2 torchvision==0.9.2 --extra-index-url https://download.pytorch.org/whl/lts/1.8/cu111"),
])
def test_pip_install_command(torch_version, cuda, command):
    assert kb.pip_install_command(torch_version, cuda) == command


@pytest.mark.parametrize("torch_version, cuda", [
    ("2.3.1", "12.4"),   # not published
    ("2.3.7", "12.1"),   # no such patch release
    ("1.8.2", "10.1"),   # LTS had no cu101
    ("2.14.1", "bogus"),
])
def test_pip_install_command_unpublished(torch_version, cuda):
    assert kb.pip_install_command(torch_version, cuda) is None


def test_best_torch_cuda_for_driver():
    assert kb.best_torch_cuda_for_driver("525.60.13") == "12.6"  # latest torch: 12.6 / 13.0 / 13.2
    assert kb.best_torch_cuda_for_driver("580.65.06") == "13.2"
    assert kb.best_torch_cuda_for_driver("525.60.13", "2.3.1") == "12.1"
    assert kb.best_torch_cuda_for_driver("470.82.01") is None
    assert kb.best_torch_cuda_for_driver("470.82.01", "2.7") == "11.8"
    assert kb.best_torch_cuda_for_driver("bogus") is None
    assert kb.newest_torch_for_driver("470.82.01") == ("2.7", "11.8")


def test_cudnn_for_torch_matches_the_local_wheel_encoding():
    assert kb.cudnn_for_torch("2.14.1", "13.0") == "9.24.0.43"
    assert kb.cudnn_version(92400) == "9.24.0"
    assert kb.cudnn_for_torch("2.3", "12.1") == "8.9.2.26"
    assert kb.cudnn_for_torch("2.3", "12.4") is None
    assert kb.is_unverified("cudnn_pins", "cu130-2.14") is True


# --- projects and provenance -------------------------------------------------------------------

def test_detectron2_requirements():
    req = kb.detectron2_requirements()
    assert req["detectron2"]["torch_min"] == "1.8" and req["detectron2"]["torch_max"] is None
    assert req["detectron2"]["gcc_min"] == "5.4" and req["detectron2"]["prebuilt_wheels"] is False
    assert req["mask2former"]["torch_min"] == "1.9"
    assert req["source"] and req["date_read"] == "2026-11-23"
    v06 = next(r for r in req["releases"] if r["version"] == "v0.6")
    assert v06["prebuilt"]["torch_cuda"]["1.10"] == ["11.3", "11.1", "10.2", "cpu"]
    req["detectron2"]["torch_min"] = "9"
    assert kb.detectron2_requirements()["detectron2"]["torch_min"] == "1.8"  # callers get copies


def test_is_unverified():
    assert kb.is_unverified("gpu_cc", "GeForce RTX 3070") is True
    assert kb.is_unverified("gpu_cc", "GeForce RTX 3090") is False
    assert kb.is_unverified("toolkit_driver", "13.3.0") is True
    assert kb.is_unverified("toolkit_driver", "12.0.0") is False
    assert kb.is_unverified("cuda_host_compiler", "13.3") is True
    assert kb.is_unverified("torch_release", "2.14") is True  # torchaudio / ROCm fields unread
    assert kb.is_unverified("torch_release", "2.3") is False
    assert kb.is_unverified("no_such_table", "x") is False
    assert kb.is_unverified("gpu_cc", "no such gpu") is False


def test_returned_structures_are_copies():
    kb.torch_release("2.3")["cuda"]["stable"].append("99.9")
    assert kb.torch_cuda_builds("2.3") == ["11.8", "12.1"]
    kb.torch_arch_list("2.14", "13.0").append("sm_999")
    assert "sm_999" not in kb.torch_arch_list("2.14", "13.0")
