"""Project-level promises: README set-up commands, CI script, generated docs, help texts."""
import os
import re

import click
import pytest

from envdoctor.cli import LAZY_COMMANDS, cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as fh:
        return fh.read()


def _sh_blocks(text):
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def test_readme_has_the_two_setup_commands_and_ci_runs_the_test_one():
    blocks = [b.strip() for b in _sh_blocks(_read("README.md"))]
    assert blocks[0] == "pip install -e . && envdoctor check"
    test_command = blocks[1]
    assert "pytest" in test_command and ".[test]" in test_command
    ci_lines = [line.strip() for line in _read(".ci", "run").splitlines()]
    assert test_command in ci_lines


def test_readme_placeholders_are_filled():
    text = _read("README.md")
    assert "SAMPLE_OUTPUT" not in text and "BENCHMARK_RESULTS" not in text


def test_every_command_has_help_with_examples():
    ctx = click.Context(cli, info_name="envdoctor")
    names = cli.list_commands(ctx)
    assert set(LAZY_COMMANDS) <= set(names) and "check" in names
    for name in names:
        command = cli.get_command(ctx, name)
        assert "unavailable in this installation" not in (command.help or ""), f"{name} failed to load: {command.help}"
        assert command.help and "Examples:" in command.help, f"envdoctor {name} lacks \\b examples in its help"
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"envdoctor {name} {param.opts[0]} has no help"


def test_generated_docs_are_up_to_date():
    from envdoctor.docsgen import stale_files

    stale = [os.path.relpath(p, ROOT) for p in stale_files(ignore_wrapping=True)]
    if stale:
        import difflib

        from envdoctor.docsgen import expected_files

        expected = {os.path.relpath(p, ROOT): t for p, t in expected_files().items()}
        diff = "".join(difflib.unified_diff(_read(stale[0]).splitlines(True), expected[stale[0]].splitlines(True),
                                            stale[0], "generated now"))
        raise AssertionError(f"run `python -m envdoctor.docsgen`: {stale}\n{diff[:3000]}")


def test_every_rule_has_a_doc_page_and_codes_are_unique():
    from envdoctor.rules import all_rules, load_failures

    assert not load_failures()
    codes = [r.code for r in all_rules()]
    assert len(codes) == len(set(codes)) and codes
    for code in codes:
        assert os.path.exists(os.path.join(ROOT, "docs", "codes", f"{code}.md"))


def test_knowledge_data_ships_in_the_package():
    setup = _read("setup.py")
    assert "knowledge/data/*.json" in setup


@pytest.mark.slow
def test_wheel_carries_data_tables_op_sources_and_entry_point(tmp_path):
    import shutil
    import subprocess
    import sys
    import zipfile

    src = tmp_path / "src"
    # a copy without build artefacts, as a fresh checkout has it
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build",
                                                             ".pytest_cache", ".hypothesis"))
    out = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=600)
    (wheel,) = list(out.glob("envdoctor-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for table in ("cuda_driver", "cuda_gcc", "cuda_arch", "gpus", "torch_builds", "detectron2"):
        assert f"envdoctor/knowledge/data/{table}.json" in names
    for source in ("ms_deform_attn.cpp", "ms_deform_attn_math.h", "cpu/ms_deform_attn_cpu.cpp",
                   "cpu/ms_deform_attn_cpu_tasks.h", "cuda/ms_deform_attn_cuda.cu"):
        assert f"envdoctor/_csrc/{source}" in names
    assert "envdoctor/probes/_torch_script.py" in names
    entry_points = [n for n in names if n.endswith("entry_points.txt")]
    assert "envdoctor = envdoctor.__main__:main" in zipfile.ZipFile(wheel).read(entry_points[0]).decode()
