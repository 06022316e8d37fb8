"""The rules' shared helpers: toolkit identity, architectures, versions, and the shell
lines of fixes (quoted, so that no value is ever interpreted by the shell)."""
from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envdoctor.model import Fact, FactSet
from envdoctor.rules import _helpers as h

TOOLKITS = [
    {"root": "/usr/local/cuda-13.0", "real_root": "/usr/local/cuda-13.0", "aliases": ["/usr/local/cuda"],
     "kind": "system", "has_nvcc": True, "has_runtime_header": True, "has_cudart": True, "version": "13.0.88"},
    {"root": "/opt/cuda-link", "real_root": "/opt/cuda-12.8", "aliases": [],
     "kind": "system", "has_nvcc": True, "has_runtime_header": True, "has_cudart": True, "version": "12.8.93"},
    {"root": "/home/u/venv/lib/python3.11/site-packages/nvidia/cu13", "real_root":
     "/home/u/venv/lib/python3.11/site-packages/nvidia/cu13", "kind": "pip", "has_nvcc": False,
     "has_runtime_header": True, "has_cudart": True, "version": "13.0.96"},
]


@pytest.mark.parametrize("a, b, same", [
    ("/usr/local/cuda", "/usr/local/cuda-13.0", True),
    ("/usr/local/cuda/", "/usr/local/cuda-13.0", True),
    ("/usr/local//cuda-13.0/.", "/usr/local/cuda", True),
    ("/opt/cuda-link", "/opt/cuda-12.8", True),
    ("/usr/local/cuda", "/opt/cuda-12.8", False),
    ("/usr/local", "/usr/local/cuda", False),
    (None, "/usr/local/cuda", False),
])
def test_paths_are_compared_as_the_toolkits_they_name(a, b, same):
    assert h.same_toolkit(a, b, TOOLKITS) is same


def test_find_toolkit_accepts_bin_and_nvcc_paths_but_not_the_parent():
    assert h.find_toolkit("/usr/local/cuda/bin/nvcc", TOOLKITS)["version"] == "13.0.88"
    assert h.find_toolkit("/usr/local/cuda-13.0/bin", TOOLKITS)["version"] == "13.0.88"
    assert h.find_toolkit("/usr/local", TOOLKITS) is None
    assert h.find_toolkit("", TOOLKITS) is None


def test_matching_toolkits_prefers_exact_minor_and_skips_pip_wheels():
    assert [t["real_root"] for t in h.matching_toolkits((13, 0), TOOLKITS)] == ["/usr/local/cuda-13.0"]
    assert [t["real_root"] for t in h.matching_toolkits((12, 6), TOOLKITS)] == ["/opt/cuda-12.8"]
    assert h.matching_toolkits((11, 8), TOOLKITS) == []


@pytest.mark.parametrize("text, cc", [
    ("8.6", (8, 6)), ("sm_86", (8, 6)), ("compute_90", (9, 0)), ("86", (8, 6)), ("8.6+PTX", (8, 6)),
    ("sm_90a", (9, 0)), ("12.1", (12, 1)), ("sm_120", (12, 0)), ("sm_100f", (10, 0)), ("Ampere", None), ("", None),
])
def test_cc_of(text, cc):
    assert h.cc_of(text) == cc


@pytest.mark.parametrize("gpu, archs, runs", [
    ((8, 6), ["sm_80"], True),           # same major, lower minor SASS
    ((8, 9), ["sm_86"], True),
    ((8, 0), ["sm_86"], False),          # higher minor SASS does not run on a lower minor
    ((9, 0), ["sm_80", "sm_86"], False),  # no SASS across majors
    ((12, 0), ["sm_80", "compute_90"], True),  # PTX is JIT-compiled for newer GPUs
    ((7, 5), ["compute_80"], False),     # but never for older ones
    ((9, 0), ["sm_90a"], True),
    ((9, 1), ["sm_90a"], False),         # arch-specific code runs on exactly that capability
    ((12, 0), ["7.5", "8.6+PTX"], True),  # TORCH_CUDA_ARCH_LIST notation
])
def test_arch_list_runs(gpu, archs, runs):
    assert h.arch_list_runs(gpu, archs) is runs


def test_versions():
    assert h.mm("11.1.74") == (11, 1) and h.mm("cu118") == (11, 8) and h.mm(None) is None
    assert h.release_mm("2.14.1+cu130") == (2, 14) and h.release_mm("junk") is None
    assert h.public_version("2.14.1+cu130") == "2.14.1"


def test_torch_releases_are_newest_first_and_known():
    releases = h.torch_releases()
    assert releases[0] == h.latest_torch_release()
    assert "1.9" in releases and "2.4" in releases
    keys = [h.release_mm(r) for r in releases]
    assert keys == sorted(keys, reverse=True)


def test_find_torch_build_respects_driver_and_python():
    facts = FactSet([Fact("driver.version", "525.60.13"), Fact("env.python", {"version": "3.8.13"})])
    release, cuda = h.find_torch_build(facts, lambda r, c: c.startswith("12."))
    assert h.mm(cuda)[0] == 12
    assert h.python_supported(release, (3, 8))
    facts = FactSet([Fact("driver.version", "470.82.01"), Fact("env.python", {"version": "3.11.7"})])
    assert h.find_torch_build(facts, lambda r, c: c.startswith("12.")) is None  # 470 runs no CUDA 12 build


def test_set_env_fix_params_and_commands():
    fix = h.set_env_fix("s", {"CUDA_HOME": "/usr/local/cuda-13.0"}, path_prepend=["/usr/local/cuda-13.0/bin"],
                        unset=["CUDA_VISIBLE_DEVICES"])
    assert fix.action == "set_env"
    assert fix.params == {"vars": {"CUDA_HOME": "/usr/local/cuda-13.0"},
                          "path_prepend": ["/usr/local/cuda-13.0/bin"], "unset": ["CUDA_VISIBLE_DEVICES"]}
    assert 'export PATH=/usr/local/cuda-13.0/bin"${PATH:+:$PATH}"' in fix.commands  # extended, never frozen
    assert "unset CUDA_VISIBLE_DEVICES" in fix.commands


def _run(lines, env, show):
    script = "\n".join(lines) + "\n" + show
    # Bytes, decoded without newline translation: a "\r" in a value must come back as "\r".
    out = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, timeout=10).stdout
    return out.decode("utf-8", "surrogateescape")


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n\r"), max_size=40))
def test_exported_values_reach_the_shell_verbatim(value):
    """Values are shell-quoted: `$(...)`, quotes or `;` in them are never run."""
    lines = h.export_lines({"ED_VALUE": value})
    out = _run(lines, {"PATH": "/usr/bin:/bin"}, 'printf "%s" "$ED_VALUE"')
    assert out == value


def test_ld_library_path_entry_is_removed_and_others_kept():
    lines = h.export_lines({}, unset=["/usr/local/cuda/lib64"])
    out = _run(lines, {"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": "/a:/usr/local/cuda/lib64:/b c"},
               'printf "%s" "$LD_LIBRARY_PATH"')
    assert out == "/a:/b c"


def test_line_breaks_are_refused_not_rendered():
    # The rc block cannot hold them safely: the renderer refuses, and a finding's fix applies nothing.
    from envdoctor.fix.settings import SettingsError

    with pytest.raises(SettingsError):
        h.export_lines({"ED_VALUE": "a\nb"})
    fix = h.set_env_fix("s", {"ED_VALUE": "a\rb"})
    assert fix.action is None and not fix.commands and "cannot write" in fix.summary


def test_finding_lines_are_the_lines_fix_writes():
    from envdoctor.fix import settings as settings_mod

    fix = h.set_env_fix("s", {"CUDA_HOME": "/opt/cuda 13", "TORCH_CUDA_ARCH_LIST": "8.0;9.0+PTX"},
                        path_prepend=["/opt/cuda 13/bin"], unset=["CC"])
    merged = settings_mod.EnvSettings()
    settings_mod.merge("ED203", fix.params, merged)
    block = settings_mod.render_block(merged).decode().splitlines()
    assert list(fix.commands) == block[2:-1]  # between the markers and the header: byte for byte
