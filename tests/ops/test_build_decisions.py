"""What the build decides before compiling (arch list, jobs, variant), from the same facts and
rules as `envdoctor check`; and reading failed build logs. No compiling here."""
from __future__ import annotations

import json
import os

import pytest

from envdoctor.engine import diagnose
from envdoctor.model import Fact, FactSet
from envdoctor.ops import build, buildlog
from envdoctor.ops.errors import BuildRefused
from envdoctor.parsers import arch_list
from envdoctor.rules import _build_model as model

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "corpus",
                      "public.jsonl")


# ---- TORCH_CUDA_ARCH_LIST: exactly what torch's builder accepts ----------------------------

@pytest.mark.parametrize("value,entries", [
    ("8.0;9.0", ["8.0", "9.0"]),
    ("8.0 8.6+PTX", ["8.0", "8.6+PTX"]),
    ("Ampere", ["8.0", "8.6+PTX"]),
    ("Hopper;Ampere+Tegra", ["9.0+PTX", "8.7"]),
    ("9.0a", ["9.0a"]),
    ("12.0a+PTX", ["12.0a+PTX"]),
])
def test_arch_list_torch_accepts(value, entries):
    parsed = arch_list.parse(value)
    assert parsed.ok and parsed.entries == entries


@pytest.mark.parametrize("value,bad", [
    ("8.0,8.6", "8.0,8.6"),  # commas are not a separator for torch
    ("sm_80", "sm_80"),
    ("86", "86"),
    ("8.0;", ""),  # an empty entry is an unknown arch too
    ("9.0f", "9.0f"),
])
def test_arch_list_torch_refuses(value, bad):
    parsed = arch_list.parse(value)
    assert not parsed.ok and bad in parsed.invalid
    assert parsed.error() == f"Unknown CUDA arch ({parsed.invalid[0]}) or GPU not supported"


def test_arch_list_parser_matches_torch_itself():
    # The real torch builder is the judge: it raises for exactly the values the parser refuses.
    torch_ext = pytest.importorskip("torch.utils.cpp_extension")
    for value in ("8.0;9.0", "Ampere", "9.0a", "8.0,8.6", "sm_80", "8.0;", "7.5 8.6+PTX", "Blackwell"):
        old = os.environ.get("TORCH_CUDA_ARCH_LIST")
        os.environ["TORCH_CUDA_ARCH_LIST"] = value
        try:
            try:
                torch_ext._get_cuda_arch_flags()
                accepted = True
            except ValueError:
                accepted = False
        finally:
            if old is None:
                os.environ.pop("TORCH_CUDA_ARCH_LIST")
            else:
                os.environ["TORCH_CUDA_ARCH_LIST"] = old
        assert arch_list.parse(value).ok == accepted, value


def test_unset_or_native_means_the_visible_gpus():
    assert arch_list.parse(None).from_gpus and arch_list.parse("native").from_gpus
    assert arch_list.from_capabilities([(9, 0), (8, 0), (8, 0)]) == "8.0;9.0+PTX"


def test_build_refuses_what_check_calls_an_error():
    # One parser: ED501 fires for the value the build refuses, with torch's own words.
    with pytest.raises(BuildRefused, match=r"Unknown CUDA arch \(8.0,8.6\).*ED501"):
        build.resolve_archs(None, {"TORCH_CUDA_ARCH_LIST": "8.0,8.6"}, "13.0.88")
    facts = FactSet([Fact("env.vars", {"TORCH_CUDA_ARCH_LIST": "8.0,8.6"}), Fact("nvcc.version", "13.0.88")])
    (finding,) = diagnose(facts, only=["ED501"]).findings
    assert "Unknown CUDA arch (8.0,8.6)" in finding.message


def test_build_checks_archs_against_the_nvcc_that_builds():
    assert build.resolve_archs(["9.0", "8.0"], {}, "13.0.88") == ["8.0", "9.0"]
    with pytest.raises(BuildRefused, match="nvcc 13.0.88 cannot build 7.0"):
        build.resolve_archs(["7.0"], {}, "13.0.88")
    assert build.resolve_archs(["7.0"], {}, "12.8.93") == ["7.0"]


def test_no_gpu_and_no_arch_list_is_refused_naming_ed508(monkeypatch):
    monkeypatch.setattr(build, "present_gpu_archs", lambda: [])
    with pytest.raises(BuildRefused, match="ED508.*--arch 8.0"):
        build.resolve_archs(None, {}, "13.0.88")


# ---- one RAM budget ---------------------------------------------------------------------------

def _resources(cpus, available_mib):
    return FactSet([Fact("env.resources", {"cpu_count": cpus, "ram_available_mib": available_mib})])


def test_jobs_fit_the_ram_budget_check_uses():
    assert build.choose_jobs({"MAX_JOBS": "3"}, "cuda", _resources(8, 100000)) == 3
    assert build.choose_jobs({}, "cuda", _resources(8, 4096)) == 4096 // model.MIB_PER_JOB["cuda"]
    assert build.choose_jobs({}, "cpu", _resources(2, 65536)) == 2  # core-bound
    assert build.choose_jobs({}, "cuda", _resources(8, 512)) == 1  # never zero
    # ED504 warns exactly above what the build would choose.
    fits = model.jobs_that_fit(_resources(8, 4096), "cuda")
    facts = _resources(8, 4096)
    facts.add(Fact("env.vars", {"MAX_JOBS": str(fits)}))
    assert diagnose(facts, only=["ED504"]).findings == []
    facts.add(Fact("env.vars", {"MAX_JOBS": str(fits + 1)}))
    assert [f.code for f in diagnose(facts, only=["ED504"]).findings] == ["ED504"]


# ---- reading failed build logs -----------------------------------------------------------------

def _corpus(category):
    with open(CORPUS, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if json.loads(line)["category"] == category]


@pytest.mark.parametrize("category,needle", [
    ("gcc_unsupported_by_nvcc", "gcc this CUDA accepts"),
    ("arch_unsupported_by_nvcc", "TORCH_CUDA_ARCH_LIST="),
    ("build_oom", "MAX_JOBS="),
])
def test_real_failure_logs_get_first_error_and_explanation(category, needle):
    cases = _corpus(category)
    assert cases, f"no {category} case in the corpus"
    for case in cases:
        summary = buildlog.summarize_failure(case["error_text"], "/tmp/build.log")
        assert "first error:" in summary, case["id"]
        assert needle in summary, case["id"]


def test_first_error_skips_ninja_and_python_noise():
    log = "\n".join([
        "[1/3] c++ -c /src/ms_deform_attn.cpp -o ms_deform_attn.o",
        "[2/3] c++ -c /src/cpu/ms_deform_attn_cpu.cpp -o ms_deform_attn_cpu.o",
        "FAILED: envdoctor_msda_cuda.so",
        "c++ ms_deform_attn.o -shared -L/usr/local/lib64 -lcudart -o envdoctor_msda_cuda.so",
        "/usr/bin/ld: cannot find -lcudart: No such file or directory",
        "collect2: error: ld returned 1 exit status",
        "ninja: build stopped: subcommand failed.",
        "Traceback (most recent call last):",
        "RuntimeError: Error building extension 'envdoctor_msda_cuda'",
    ] + ["noise line"] * 300)
    error = buildlog.first_error(log)
    assert error.splitlines()[0] == "/usr/bin/ld: cannot find -lcudart: No such file or directory"
    summary = buildlog.summarize_failure(log, "/x/build.log")
    assert len(summary.splitlines()) < 12
    assert "CUDA_HOME" in summary and "/x/build.log" in summary
