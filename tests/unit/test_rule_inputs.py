"""A rule reads only the facts it declares (``needs`` + ``reads``), so docs/codes pages list its true
inputs and the engine's "skipped: not available" is honest."""
from __future__ import annotations

import glob
import json
import os

import pytest

from envdoctor.model import FactSet
from envdoctor.rules import all_rules
from envdoctor.rules.base import RuleContext
from tests.fixtures.recording import RecordingFacts
from tests.unit.test_rules_cases import FIRES, SILENT, make_facts

SCENARIOS = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "scenarios",
                                          "*.json")))


def _fact_sets():
    for _code, _severity, changes, _words in FIRES:
        yield make_facts(changes)
    for _code, changes in SILENT:
        yield make_facts(changes)
    for path in SCENARIOS:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        yield FactSet.from_list(data["facts"] if isinstance(data, dict) else data)


def _reads():
    reads = {rule.code: set() for rule in all_rules()}
    for facts in _fact_sets():
        for rule in all_rules():
            if rule.missing(facts):
                continue
            recording = RecordingFacts(list(facts))
            try:
                rule.fn(RuleContext(facts=recording, rule=rule))
            except Exception:  # crashes are test_rules_cases' business
                pass
            reads[rule.code] |= recording.read
    return reads


READS = _reads()


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.code)
def test_rule_reads_only_declared_facts(rule):
    undeclared = READS[rule.code] - set(rule.inputs)
    assert not undeclared, f"{rule.code} reads {sorted(undeclared)} without declaring them (needs= or reads=)"


def test_docs_pages_list_the_true_inputs():
    from envdoctor import docsgen

    pages = docsgen.code_pages()
    for rule in all_rules():
        header = pages[f"{rule.code}.md"].split("\n\n", 2)[1]  # the bullet list above the rule's own text
        for key in rule.inputs:
            assert f"`{key}`" in header, (rule.code, key)
