"""Property tests: parsers never raise on garbage and round-trip what they read."""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from envdoctor.parsers import nvcc, nvidia_smi as smi, versions
from tests.fixtures import corpus

REAL = [r["text"] for r in corpus.records()]
PARSERS = (
    smi.parse_header, smi.parse_banner, smi.parse_list, smi.classify_failure, smi.parse_proc_version,
    smi.invalid_field, nvcc.parse_version, nvcc.parse_list_gpu_arch, nvcc.parse_wrapper_target,
    versions.parse_compiler_version, versions.parse_cuda_version_json, versions.parse_cuda_version_txt,
    versions.parse_dist_info_name, versions.parse_conda_meta_name, versions.parse_ninja_version,
    versions.version_tuple,
)


@st.composite
def mangled_real(draw):
    """A real recorded output, cut, with lines dropped, duplicated or garbled:
    what a paste into an issue does to it."""
    lines = draw(st.sampled_from(REAL)).splitlines()
    start = draw(st.integers(0, max(0, len(lines) - 1)))
    end = draw(st.integers(start, len(lines)))
    chunk = lines[start:end]
    if chunk and draw(st.booleans()):
        i = draw(st.integers(0, len(chunk) - 1))
        cut = draw(st.integers(0, len(chunk[i])))
        chunk[i] = chunk[i][:cut] + draw(st.text(max_size=8)) + chunk[i][cut:]
    indent = draw(st.sampled_from(["", "    ", "\t", "> "]))
    return "\n".join(indent + line for line in chunk)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=400), mangled_real()))
def test_no_parser_raises(text):
    for parser in PARSERS:
        parser(text)
    smi.parse_query_csv(text, ("index", "name", "memory.total"))


@settings(max_examples=100, deadline=None)
@given(mangled_real())
def test_banner_shape_is_stable(text):
    parsed = smi.parse_banner(text)
    assert set(parsed) == {"smi_version", "driver_version", "cuda_version", "cuda_label", "gpus", "processes"}
    for gpu in parsed["gpus"]:
        assert isinstance(gpu["index"], int)
        assert gpu["memory_total_mib"] is None or isinstance(gpu["memory_total_mib"], int)
    if parsed["cuda_version"] is not None:
        assert re.fullmatch(r"\d+\.\d+(\.\d+)?", parsed["cuda_version"])
    assert smi.classify_failure(text)["status"] in ("not_loaded", "library_mismatch", "error")


versions_st = st.builds(lambda a, b, c: f"{a}.{b:02d}.{c:02d}", st.integers(100, 999), st.integers(0, 99),
                        st.integers(0, 99))
cuda_st = st.builds(lambda a, b: f"{a}.{b}", st.integers(8, 14), st.integers(0, 9))


@settings(max_examples=100, deadline=None)
@given(versions_st, cuda_st, st.booleans(), st.booleans(), st.sampled_from(["", "   ", "\t"]))
def test_header_round_trip(driver, cuda, umd, lost_bar, indent):
    label = "CUDA UMD Version" if umd else "CUDA Version"
    driver_label = "KMD Version" if umd else "Driver Version"
    line = f"| NVIDIA-SMI {driver}    {driver_label}: {driver}    {label}: {cuda}     |"
    if lost_bar:
        line = line[1:]
    header = smi.parse_header(indent + line)
    assert header == {"smi_version": driver, "driver_version": driver, "cuda_version": cuda, "cuda_label": label}


cell = st.text(alphabet=st.characters(blacklist_characters=",\n\r", blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
               min_size=1, max_size=20).map(str.strip).filter(lambda s: s and not smi.not_available(s))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 64), cell, st.one_of(st.none(), st.integers(0, 10 ** 6))),
                max_size=8))
def test_query_csv_round_trip(rows):
    fields = ("index", "name", "memory.total")
    text = "".join(f"{i}, {name}, {'[N/A]' if mem is None else mem}\n" for i, name, mem in rows)
    parsed = smi.parse_query_csv(text, fields)
    assert parsed == [{"index": i, "name": name, "memory.total": mem} for i, name, mem in rows]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["compute", "sm", "lto"]), max_size=6),
       st.lists(st.integers(10, 130), max_size=6))
def test_list_gpu_arch_is_idempotent(prefixes, numbers):
    text = "\n".join(f"{p}_{n}" for p, n in zip(prefixes, numbers))
    archs = nvcc.parse_list_gpu_arch(text)
    assert len(archs) == len(set(archs))
    assert all(a.startswith("sm_") for a in archs)
    assert nvcc.parse_list_gpu_arch("\n".join(archs)) == archs


segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12)


@settings(max_examples=100, deadline=None)
@given(st.lists(segment, min_size=1, max_size=4), st.sampled_from(['"$@"', "$*", '"$*"', ""]),
       st.sampled_from(["exec ", ""]), st.booleans())
def test_wrapper_round_trip(parts, args, exec_word, quoted):
    target = "/" + "/".join(parts) + "/bin/nvcc"
    word = f'"{target}"' if quoted else target
    script = f"#!/bin/sh\n# a wrapper\n{exec_word}{word} {args}\n"
    assert nvcc.parse_wrapper_target(script) == target


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 14), st.integers(0, 9), st.integers(0, 300), st.booleans())
def test_nvcc_version_round_trip(major, minor, patch, build_line):
    text = ("nvcc: NVIDIA (R) Cuda compiler driver\n"
            f"Cuda compilation tools, release {major}.{minor}, V{major}.{minor}.{patch}\n")
    if build_line:
        text += f"Build cuda_{major}.{minor}.r{major}.{minor}/compiler.1234_0\n"
    assert nvcc.parse_version(text) == f"{major}.{minor}.{patch}"
