"""The block's shell lines do what the Python model of them says, in a real bash."""
from __future__ import annotations

import subprocess

import pytest

from envdoctor.fix.settings import (EnvSettings, SettingsError, apply_to_env, ci_lines, export_lines, merge,
                                    render_block)


def _bash_env(block: bytes, env: dict, tmp_path) -> dict:
    rc = tmp_path / "block.sh"
    rc.write_bytes(block)
    out = subprocess.run(["bash", "-c", 'source "$1"; env -0', "x", str(rc)], env=env, capture_output=True,
                         check=True).stdout.decode()
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def _settings():
    s = EnvSettings()
    merge("ED101", {"vars": {"CUDA_HOME": "/usr/local/cuda-13.0", "WEIRD": "it's $HOME `x` \"q\""},
                    "path_prepend": ["/usr/local/cuda-13.0/bin"],
                    "ld_library_path_prepend": ["/usr/local/cuda-13.0/lib64"],
                    "unset": ["/old/cuda/lib64", "CUDA_PATH"]}, s)
    return s


@pytest.mark.parametrize("ld", [None, "", "/old/cuda/lib64", "/a:/old/cuda/lib64:/b"])
def test_bash_and_python_agree(tmp_path, ld):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CUDA_PATH": "/old"}
    if ld is not None:
        env["LD_LIBRARY_PATH"] = ld
    s = _settings()
    got = _bash_env(render_block(s), env, tmp_path)
    want = apply_to_env(s, env)
    for name in ("CUDA_HOME", "PATH", "WEIRD"):
        assert got[name] == want[name]
    assert got.get("LD_LIBRARY_PATH", "").strip(":") == want.get("LD_LIBRARY_PATH", "").strip(":")
    assert "CUDA_PATH" not in got
    assert got["WEIRD"] == "it's $HOME `x` \"q\""  # quoted, never interpreted


def test_path_is_extended_not_frozen():
    lines = export_lines(_settings())
    path_line = next(line for line in lines if line.startswith("export PATH="))
    assert "$PATH" in path_line and "/usr/bin" not in path_line


def test_first_finding_wins_and_conflict_is_reported():
    s = EnvSettings()
    merge("ED101", {"vars": {"CUDA_HOME": "/a"}}, s)
    merge("ED202", {"vars": {"CUDA_HOME": "/b", "MAX_JOBS": "2"}}, s)
    assert s.vars == {"CUDA_HOME": "/a", "MAX_JOBS": "2"}
    assert "kept '/a' (from ED101), ignored '/b' (from ED202)" in s.conflicts[0]


@pytest.mark.parametrize("params", [
    {"vars": {"CUDA_HOME": "/a\n# <<< envdoctor <<<"}},
    {"vars": {"BAD NAME": "x"}},
    {"vars": {"PATH": "/frozen:/usr/bin"}},
    {"path_prepend": ["relative/bin"]},
])
def test_unsafe_values_are_refused(params):
    with pytest.raises(SettingsError):
        merge("ED1", params, EnvSettings())


def test_fish_syntax():
    lines = export_lines(_settings(), "fish")
    assert "set -gx CUDA_HOME '/usr/local/cuda-13.0'" in lines
    assert "set -gx PATH '/usr/local/cuda-13.0/bin' $PATH" in lines
    assert "set -e CUDA_PATH" in lines


def test_ci_lines():
    env_lines, path_lines = ci_lines(_settings(), {"LD_LIBRARY_PATH": "/x:/old/cuda/lib64"})
    assert "CUDA_HOME=/usr/local/cuda-13.0" in env_lines
    assert "LD_LIBRARY_PATH=/usr/local/cuda-13.0/lib64:/x" in env_lines
    assert path_lines == ["/usr/local/cuda-13.0/bin"]
