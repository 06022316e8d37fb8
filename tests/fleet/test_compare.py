import pytest

from envdoctor.fleet.compare import (FIELDS, Group, clock_skew, compare_groups, digest, duplicate_hostnames,
                                     group_ranks, node_values)
from envdoctor.model import Fact, FactSet, Finding, Report, Severity

GPU = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559, "compute_cap": "9.0"}


def _report(driver="550.54.15", gpus=(GPU,), errors=()):
    facts = FactSet([Fact("driver.version", driver), Fact("driver.cuda_max", "12.4"),
                     Fact("torch", {"version": "2.4.0", "cuda": "12.4"}), Fact("gpus", [dict(g) for g in gpus])])
    findings = [Finding(code, Severity.ERROR, "x", "t", "m") for code in errors]
    return Report(facts=facts, findings=findings)


FLEET = {"nccl_torch": "2.20.5", "nccl_loaded": ["/opt/venv/nvidia/nccl/lib/libnccl.so.2"],
         "nccl_net_plugins": ["libnccl-net.so"], "network_env": {"NCCL": {"NCCL_IB_HCA": "mlx5"}, "UCX": {}, "FI": {}},
         "infiniband": [{"device": "mlx5_0", "port": 1, "state": "ACTIVE", "rate": "400 Gb/sec (4X NDR)"}]}


def test_node_values_cover_every_field():
    values = node_values(_report(gpus=(GPU, dict(GPU, index=1))), FLEET)
    assert list(values) == list(FIELDS)
    assert values["driver"] == "550.54.15" and values["gpu_count"] == 2 and values["gpu_model"] == [GPU["name"]]
    assert values["nccl_env"] == {"NCCL_IB_HCA": "mlx5"}
    assert values["infiniband"] == ["mlx5_0/1 ACTIVE 400 Gb/sec (4X NDR)"]
    assert node_values(_report(errors=("ED203",)), FLEET)["check_errors"] == ["ED203"]


def _groups(*values_per_node):
    return [Group(label=f"n{i}", node=f"n{i}", ranks=[i], digest=digest(v), values=v)
            for i, v in enumerate(values_per_node)]


def test_majority_and_odd_node_named_with_values():
    good = node_values(_report(), FLEET)
    odd = node_values(_report(driver="470.103.01"), FLEET)
    rows, findings = compare_groups(_groups(good, good, odd, good))
    driver = next(r for r in rows if r["field"] == "driver")
    assert driver["majority"] == "550.54.15" and driver["majority_nodes"] == ["n0", "n1", "n3"]
    assert [o["node"] for o in driver["odd"]] == ["n2"]
    assert [(f.code, f.severity) for f in findings] == [("ED903", Severity.ERROR)]
    assert findings[0].message == ("NVIDIA driver: n2 has 470.103.01; the majority (3 of 4 nodes: n0, n1, n3) "
                                   "have 550.54.15.")


def test_a_tie_takes_rank_zeros_node_as_the_reference():
    a = node_values(_report(), FLEET)
    b = node_values(_report(driver="470.103.01"), FLEET)
    _, findings = compare_groups(_groups(a, b))
    assert "n1 has 470.103.01" in findings[0].message
    _, findings = compare_groups(_groups(b, a))
    assert "n1 has 550.54.15" in findings[0].message


def test_identical_nodes_give_no_findings():
    good = node_values(_report(), FLEET)
    rows, findings = compare_groups(_groups(good, good, good))
    assert findings == [] and all(r["odd"] == [] for r in rows)


def test_each_family_has_its_code():
    base = node_values(_report(), FLEET)
    changes = {"torch": ("2.3.1", "ED904"), "nccl_torch": ("2.18.3", "ED905"), "nccl_net_plugins": ([], "ED906"),
               "nccl_env": ({}, "ED907"), "gpu_count": (7, "ED908"), "check_errors": (["ED203"], "ED914")}
    for field, (value, code) in changes.items():
        _, findings = compare_groups(_groups(base, base, dict(base, **{field: value})))
        assert [f.code for f in findings] == [code], field


def test_down_infiniband_port_is_an_error_even_when_everyone_agrees():
    down = dict(FLEET, infiniband=[{"device": "mlx5_0", "port": 1, "state": "DOWN", "rate": "10 Gb/sec"}])
    values = node_values(_report(), down)
    _, findings = compare_groups(_groups(values, values))
    assert [f.code for f in findings] == ["ED909"]
    assert findings[0].message == "InfiniBand ports not ACTIVE: n0: mlx5_0/1 DOWN 10 Gb/sec; n1: mlx5_0/1 DOWN 10 Gb/sec."


def test_ranks_of_one_node_that_differ_are_shown_apart():
    records = [{"rank": 0, "node": "a", "digest": "d1"}, {"rank": 1, "node": "a", "digest": "d2"},
               {"rank": 2, "node": "b", "digest": "d1"}]
    groups = group_ranks(records, {"d1": {"x": 1}, "d2": {"x": 2}})
    assert [(g.label, g.ranks) for g in groups] == [("a (ranks 0)", [0]), ("a (ranks 1)", [1]), ("b", [2])]


def test_duplicate_hostname_needs_two_boot_ids():
    same_machine = [{"rank": 0, "node": "gpu1", "boot_id": "aaaa1111"}, {"rank": 1, "node": "gpu1", "boot_id": "aaaa1111"}]
    assert duplicate_hostnames(same_machine) == []
    two = same_machine + [{"rank": 2, "node": "gpu1", "boot_id": "bbbb2222"}]
    (finding,) = duplicate_hostnames(two)
    assert finding.code == "ED910"
    assert finding.message == "node name gpu1 is used by 2 different machines (boot ids aaaa1111, bbbb2222)."


def test_clock_skew_against_rank_zero():
    records = [{"rank": 0, "node": "a", "clock": 1000.0}, {"rank": 1, "node": "b", "clock": 1000.2},
               {"rank": 2, "node": "c", "clock": 997.5}]
    skew, offsets, findings = clock_skew(records)
    assert skew == pytest.approx(2.7) and offsets == pytest.approx({"a": 0.0, "b": 0.2, "c": -2.5})
    assert [f.code for f in findings] == ["ED911"] and findings[0].message == (
        "clocks differ from rank 0's by more than 1 s: c -2.50 s.")
    assert clock_skew(records[:2])[2] == []
