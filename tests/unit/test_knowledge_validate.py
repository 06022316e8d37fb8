"""The data validator passes the packaged tables and catches each kind of breakage."""
from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from envdoctor.knowledge import _data, validate


def _files():
    return {name: copy.deepcopy(_data.load_file(name)) for name in _data.DATA_FILES}


def _table(files, name):
    for content in files.values():
        if name in content["tables"]:
            return content["tables"][name]
    raise KeyError(name)


def test_packaged_data_is_valid():
    assert validate.problems() == []


def test_command_line_reports_ok():
    run = subprocess.run([sys.executable, "-m", "envdoctor.knowledge.validate"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "knowledge data OK" in run.stdout


def _drop_source(t):
    del t["source"]


def _bad_date(t):
    t["date_read"] = "23 Nov 2026"


def _no_bounds(t):
    t["bounds"] = ""


def _dup_key(t):
    t["rows"].append(copy.deepcopy(t["rows"][0]))


def _false_flag(t):
    t["rows"][0]["unverified"] = False


def _unordered_toolkits(t):
    t["rows"][0], t["rows"][1] = t["rows"][1], t["rows"][0]


def _driver_drops(t):
    t["rows"][-2]["linux_min_driver"] = "400.1"


def _bad_driver(t):
    t["rows"][3]["linux_min_driver"] = "five-two-five"


def _gcc_inverted(t):
    t["rows"][5]["gcc_min_major"] = 99


def _gcc_string(t):
    t["rows"][5]["gcc_max_major"] = "11"


def _arch_range_inverted(t):
    row = next(r for r in t["rows"] if r["arch"] == "sm_70")
    row["first_cuda"], row["last_cuda"] = "13.0", "12.9"


def _arch_name(t):
    t["rows"][0]["arch"] = "86"


def _gpu_cc_mismatch(t):
    t["rows"][0]["arch"] = "sm_86"


def _unknown_source_id(t):
    t["rows"][0]["source"] = "nvidia_curent"


def _python_inverted(t):
    t["rows"][0]["python_min"] = "3.12"


def _experimental_not_published(t):
    t["rows"][-1]["cuda_experimental"] = ["99.9"]


def _torch_range_inverted(t):
    t["rows"][0]["torch_min"], t["rows"][0]["torch_max"] = "2.14", "2.8"


def _arch_entry(t):
    t["rows"][0]["arch_list"].append("8.6")


@pytest.mark.parametrize("table, mutate, expected", [
    ("gpu_cc", _drop_source, "'source'"),
    ("toolkit_driver", _bad_date, "date_read"),
    ("nvcc_arch", _no_bounds, "missing 'bounds'"),
    ("torch_release", _dup_key, "duplicate key"),
    ("gpu_cc", _false_flag, "unverified"),
    ("toolkit_driver", _unordered_toolkits, "sorted"),
    ("toolkit_driver", _driver_drops, "lower than"),
    ("toolkit_driver", _bad_driver, "not a version"),
    ("cuda_host_compiler", _gcc_inverted, "gcc range"),
    ("cuda_host_compiler", _gcc_string, "integers"),
    ("nvcc_arch", _arch_range_inverted, "range 13.0 > 12.9"),
    ("nvcc_arch", _arch_name, "must look like sm_86"),
    ("gpu_cc", _gpu_cc_mismatch, "inconsistent"),
    ("gpu_cc", _unknown_source_id, "unknown source id"),
    ("torch_release", _python_inverted, "python"),
    ("torch_release", _experimental_not_published, "experimental"),
    ("torch_arch_list", _torch_range_inverted, "range 2.14 > 2.8"),
    ("torch_arch_list", _arch_entry, "arch entry"),
    ("cudnn_pins", _torch_range_inverted, "range"),
])
def test_each_breakage_is_reported(table, mutate, expected):
    files = _files()
    mutate(_table(files, table))
    found = validate.problems(files)
    assert any(table in line and expected in line for line in found), found


def test_table_defined_twice_and_schema_version():
    files = _files()
    files["cudnn"]["tables"]["gpu_cc"] = copy.deepcopy(_table(files, "gpu_cc"))
    files["gpus"]["schema_version"] = 2
    found = validate.problems(files)
    assert any("defined in both" in line for line in found)
    assert any("gpus.json: schema_version" in line for line in found)
