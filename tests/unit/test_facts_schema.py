"""Facts are typed records: every probe's output on this machine, every recorded scenario and every
rule-case fact set fits envdoctor/facts_schema.py, and the schema is the documented catalogue."""
from __future__ import annotations

import glob
import json
import os
import re

import pytest

from envdoctor import engine, facts_schema
from envdoctor.model import FactSet
from envdoctor.probes import load_probes
from tests.unit.test_rules_cases import FIRES, SILENT, make_facts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECORDED = sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "scenarios", "*.json"))
                  + glob.glob(os.path.join(ROOT, "tests", "fixtures", "driver", "*.json")))


def test_every_probe_key_has_a_shape_and_every_shape_a_probe():
    probes, failures = load_probes(None)
    assert not failures
    produced = {key for probe in probes for key in probe.keys}
    assert produced == set(facts_schema.SCHEMA)


def test_every_shape_is_documented():
    with open(os.path.join(ROOT, "docs", "facts.md"), encoding="utf-8") as fh:
        documented = set(re.findall(r"^\| `([a-z0-9_.]+)` \|", fh.read(), re.M))
    assert set(facts_schema.SCHEMA) <= documented


def test_this_machine_fits_the_schema(tmp_path):
    # Real probes on this real machine (whatever it has: a GPU or not, a distribution toolkit or not).
    report = engine.run_check(quick=True, paths=(str(tmp_path),))
    assert facts_schema.check_all(list(report.facts)) == []


@pytest.mark.parametrize("path", RECORDED, ids=os.path.basename)
def test_recorded_machines_fit_the_schema(path):
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    facts = FactSet.from_list(data["facts"] if isinstance(data, dict) else data)
    assert facts_schema.check_all(list(facts)) == []


def test_rule_case_facts_fit_the_schema():
    for changes in [c[2] for c in FIRES] + [c[1] for c in SILENT]:
        assert facts_schema.check_all(list(make_facts(changes))) == [], changes


def test_the_schema_catches_what_it_should():
    assert facts_schema.problems("torch", {"version": "2.14.1", "cuda_version": "13.0"}) == [
        "torch.cuda_version: not a declared field"]
    assert facts_schema.problems("nvcc.all", ["/usr/bin/nvcc", 3]) == ["nvcc.all[1]: expected str, got int"]
    assert facts_schema.problems("driver.present", "yes") == ["driver.present: expected bool, got str"]
    assert facts_schema.problems("gpus", [{"index": 0, "vram": 1}]) == ["gpus[0].vram: not a declared field"]
    assert facts_schema.problems("made.up", 1) == ["made.up: not a declared fact (envdoctor/facts_schema.py)"]
    assert facts_schema.problems("probe.torch.seconds", 0.5) == []
