"""Project-level promises: README set-up commands, CI script, generated docs, help texts."""
import os
import re

import click

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
