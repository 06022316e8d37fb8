import pytest

from envdoctor.fleet.bandwidth import (SizeError, algbw, allreduce_busbw, analyse_pairs, bandwidth_findings,
                                       expected_busbw, format_size, parse_sizes, ring_rounds, sweep_rows)
from envdoctor.knowledge import _data


# Lines of real all_reduce_perf output (size, time us, algbw, busbw as printed, ranks):
# 2 nodes x 8 V100 (p3dn.24xlarge, EFA), 16 ranks:
#   https://gist.github.com/jacobkahn/a92f4425abf831ac0799fabe9079263d
# 2 GPUs in one machine (RTX 4070 Ti SUPER): https://pastebin.com/ne4ipn6K
NCCL_TESTS_LINES = [
    (16384, 174.9, 0.09, 0.18, 16),
    (32768, 184.8, 0.18, 0.33, 16),
    (8192, 8.69, 0.94, 0.94, 2),
    (4096, 7.62, 0.54, 0.54, 2),
]


@pytest.mark.parametrize("size, time_us, alg, bus, ranks", NCCL_TESTS_LINES)
def test_busbw_matches_nccl_tests_output(size, time_us, alg, bus, ranks):
    measured = algbw(size, time_us / 1e6)
    assert round(measured, 2) == alg
    assert round(allreduce_busbw(measured, ranks), 2) == bus


def test_busbw_formula_on_round_numbers():
    # 8 ranks, 1 GB in 10 ms: algbw 100 GB/s, busbw = 100 * 2 * 7 / 8 = 175 GB/s
    assert algbw(1e9, 0.01) == pytest.approx(100.0)
    assert allreduce_busbw(100.0, 8) == pytest.approx(175.0)
    assert allreduce_busbw(100.0, 1) == 0.0


def test_sweep_row_takes_the_slowest_rank():
    (row,) = sweep_rows({1 << 20: [0.001, 0.002]}, ranks=2)
    assert row["time_us"] == 2000.0 and row["algbw_gbps"] == pytest.approx((1 << 20) / 0.002 / 1e9, abs=1e-4)
    assert row["busbw_gbps"] == row["algbw_gbps"] and row["size"] == "1M"


def test_sizes():
    assert parse_sizes("1M, 64K,1G,64k") == [65536, 1 << 20, 1 << 30]
    assert parse_sizes("4099") == [4096]  # whole float32 elements
    assert format_size(65536) == "64K" and format_size(4100) == "4100"
    for bad in ("", "abc", "1X", "2"):
        with pytest.raises(SizeError):
            parse_sizes(bad)


def test_expected_figures_come_from_the_sourced_table():
    h100 = ["NVIDIA H100 80GB HBM3"] * 8
    row = expected_busbw(h100, 8, nodes=1, ranks=8, backend="nccl")
    assert (row["id"], row["busbw_gbps"], row["source"]) == ("8xH100-SXM", 460.0, "aznhc_nd96isr_h100_v5")
    a100 = ["NVIDIA A100-SXM4-40GB"] * 8
    assert expected_busbw(a100, 8, 1, 8, "nccl")["busbw_gbps"] == 228.0
    assert expected_busbw(h100, 8, 1, 8, "gloo") is None  # no figure for gloo
    assert expected_busbw(h100, 8, 2, 16, "nccl") is None  # nor for several nodes
    assert expected_busbw(["NVIDIA H100 PCIe"] * 8, 8, 1, 8, "nccl") is None
    table = _data.table("allreduce_busbw")
    assert table["date_read"] and all(r["source"] in table["sources"] for r in table["rows"])


def test_below_expected_fires_and_at_expected_is_silent():
    expected = {"id": "8xH100-SXM", "busbw_gbps": 460.0, "message_bytes": 16 << 30, "source": "s"}
    rows = sweep_rows({1 << 30: [(1 << 30) / 1e9 / (400.0 * 8 / 14)]}, ranks=8)  # busbw 400 GB/s at 1G
    (finding,) = bandwidth_findings(rows, expected)
    assert finding.code == "ED912" and finding.message.startswith(
        "best all-reduce bus bandwidth 400.0 GB/s (at 1G) is below the 460 GB/s expected of a healthy 8xH100-SXM node")
    assert "rerun with --sizes 16G" in finding.message
    fast = sweep_rows({1 << 30: [(1 << 30) / 1e9 / (470.0 * 8 / 14)]}, ranks=8)
    assert bandwidth_findings(fast, expected) == []
    assert bandwidth_findings(rows, None) == []


def test_ring_rounds_cover_each_neighbour_pair_once_and_no_rank_twice_per_round():
    assert ring_rounds(1) == [] and ring_rounds(2) == [[(0, 1)]]
    assert ring_rounds(3) == [[(0, 1)], [(1, 2)], [(2, 0)]]
    assert ring_rounds(4) == [[(0, 1), (2, 3)], [(1, 2), (3, 0)]]
    for n in (5, 8, 9, 4096):
        rounds = ring_rounds(n)
        assert len(rounds) == (2 if n % 2 == 0 else 3)
        pairs = [p for r in rounds for p in r]
        assert sorted(pairs) == sorted((i, (i + 1) % n) for i in range(n))
        for r in rounds:
            ranks = [x for p in r for x in p]
            assert len(ranks) == len(set(ranks))


NODES = {0: "a", 1: "b", 2: "c", 3: "d"}


def test_a_rank_in_only_slow_pairs_is_the_slow_rank():
    pairs = [{"a": 0, "b": 1, "gbps": 10.0}, {"a": 2, "b": 3, "gbps": 1.0}, {"a": 1, "b": 2, "gbps": 1.2},
             {"a": 3, "b": 0, "gbps": 9.0}]
    marked, findings = analyse_pairs(pairs, NODES)
    assert [p["slow"] for p in marked] == [False, True, True, False]
    assert [f.message for f in findings] == [
        "rank 2 (c) is slow: every pair it is in reached at most 1.200 GB/s, against 10.000 GB/s for the good pairs."]


def test_one_slow_pair_is_a_slow_link():
    pairs = [{"a": 0, "b": 1, "gbps": 10.0}, {"a": 2, "b": 3, "gbps": 9.5}, {"a": 1, "b": 2, "gbps": 2.0},
             {"a": 3, "b": 0, "gbps": 9.0}]
    _, findings = analyse_pairs(pairs, NODES)
    assert [f.message for f in findings] == [
        "the link between rank 1 (b) and rank 2 (c) is slow: 2.000 GB/s against 10.000 GB/s for the good pairs."]


def test_even_pairs_are_silent():
    pairs = [{"a": 0, "b": 1, "gbps": 10.0}, {"a": 1, "b": 2, "gbps": 7.0}, {"a": 2, "b": 0, "gbps": 8.0}]
    assert analyse_pairs(pairs, NODES)[1] == []
    assert analyse_pairs(pairs[:1], NODES)[1] == []  # one pair: nothing to compare with


def test_nccl_only_when_every_rank_has_a_gpu_of_its_own():
    from envdoctor.fleet.comm import choose_backend

    own = [{"node": "a", "cuda_devices": 1, "gpu_uuid": "GPU-1"}, {"node": "a", "cuda_devices": 1, "gpu_uuid": "GPU-2"},
           {"node": "b", "cuda_devices": 8, "gpu_uuid": "GPU-1"}]  # same UUID on another node: another GPU
    assert choose_backend(own) == "nccl"
    shared = own + [{"node": "a", "cuda_devices": 1, "gpu_uuid": "GPU-2"}]
    assert choose_backend(shared) == "gloo"
    assert choose_backend([{"node": "a", "cuda_devices": 0, "gpu_uuid": None}]) == "gloo"


def test_gloo_needs_a_wider_margin_than_nccl():
    pairs = [{"a": 0, "b": 1, "gbps": 10.0}, {"a": 2, "b": 3, "gbps": 9.5}, {"a": 1, "b": 2, "gbps": 4.0},
             {"a": 3, "b": 0, "gbps": 9.0}]
    assert [f.code for f in analyse_pairs(pairs, NODES, "nccl")[1]] == ["ED913"]
    assert analyse_pairs(pairs, NODES, "gloo")[1] == []
