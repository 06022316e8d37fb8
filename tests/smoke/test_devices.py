import pytest

from envdoctor.smoke.devices import (GpuRequestError, build_map, child_env_for, late_visible_change,
                                     normalize_uuid, requested_uuids, verify_placement, visible_gpus)

# nvidia-smi order is PCI order: GPU 0 is an older T4 on bus 04, GPU 1 an A100 on bus 05, GPU 2 a T4 on 65.
GPUS = [
    {"index": 0, "name": "Tesla T4", "uuid": "GPU-11111111-aaaa", "pci_bus_id": "00000000:04:00.0",
     "memory_total_mib": 15360, "compute_cap": "7.5"},
    {"index": 1, "name": "A100", "uuid": "GPU-22222222-bbbb", "pci_bus_id": "00000000:05:00.0",
     "memory_total_mib": 40960, "compute_cap": "8.0"},
    {"index": 2, "name": "Tesla T4", "uuid": "GPU-33333333-cccc", "pci_bus_id": "00000000:65:00.0",
     "memory_total_mib": 15360, "compute_cap": "7.5"},
]


def smi(mapping):
    return [(r.nvidia_smi_index, r.cuda_index, r.uuid) for r in mapping.rows]


def test_pci_order_maps_indices_one_to_one():
    mapping = build_map(GPUS, None, "PCI_BUS_ID")
    assert smi(mapping) == [(0, 0, "GPU-11111111-aaaa"), (1, 1, "GPU-22222222-bbbb"), (2, 2, "GPU-33333333-cccc")]
    assert mapping.problems == []


def test_fastest_first_order_differs_from_nvidia_smi_and_says_so():
    mapping = build_map(GPUS, None, None)
    assert [r.nvidia_smi_index for r in mapping.rows] == [1, 0, 2]
    assert len(mapping.problems) == 1
    assert "CUDA device 0 is nvidia-smi GPU 1 (A100), not GPU 0" in mapping.problems[0]
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in mapping.problems[0]


def test_visible_devices_integers_use_cuda_numbering():
    # CUDA_VISIBLE_DEVICES=0 with the default order picks the A100 (nvidia-smi GPU 1), a classic surprise.
    mapping = build_map(GPUS, "0", None)
    assert smi(mapping) == [(1, 0, "GPU-22222222-bbbb")]
    assert "CUDA_VISIBLE_DEVICES entry 0 is nvidia-smi GPU 1" in mapping.problems[0]
    assert build_map(GPUS, "0", "PCI_BUS_ID").problems == []


def test_visible_devices_by_uuid_and_prefix_never_surprise():
    mapping = build_map(GPUS, "GPU-33333333,GPU-11111111-aaaa", None)
    assert smi(mapping) == [(2, 0, "GPU-33333333-cccc"), (0, 1, "GPU-11111111-aaaa")]
    assert mapping.problems == []


def test_mig_entry_names_its_parent_gpu():
    chosen, problems = visible_gpus(GPUS, "MIG-GPU-22222222-bbbb/1/0", None)
    assert [g["index"] for g in chosen] == [1] and problems == []


@pytest.mark.parametrize("value, visible, problem", [
    ("0,7,1", [1], "entry '7' names no GPU on this machine: CUDA stops reading there, so the entries after it (1)"),
    ("GPU-99999999", [], "entry 'GPU-99999999' names no GPU"),
    ("-1", [], "entry '-1' names no GPU"),
    ("1,1", [0], "entry '1' repeats an earlier entry"),
    ("", [], "set but empty: CUDA sees no GPU at all"),
])
def test_invalid_visible_entries(value, visible, problem):
    chosen, problems = visible_gpus(GPUS, value, None)
    assert [g["index"] for g in chosen] == visible
    assert problem in problems[0]


def test_torch_uuids_are_the_truth():
    # torch says CUDA 0 is the T4 on bus 65 (the prediction would say the A100): the table follows torch.
    mapping = build_map(GPUS, None, None, torch_uuids=["33333333-cccc", "22222222-bbbb", "11111111-aaaa"])
    assert smi(mapping) == [(2, 0, "GPU-33333333-cccc"), (1, 1, "GPU-22222222-bbbb"), (0, 2, "GPU-11111111-aaaa")]
    assert "CUDA device 0 is nvidia-smi GPU 2" in mapping.problems[0]


def test_unknown_torch_uuid_keeps_a_row_without_nvidia_smi_index():
    mapping = build_map([], None, None, torch_uuids=["abcd"])
    assert smi(mapping) == [(None, 0, "GPU-abcd")]


def test_late_change_of_visible_devices_is_detected():
    assert late_visible_change("0", "1", cuda_initialized=True).startswith(
        "CUDA_VISIBLE_DEVICES was changed from '0' to '1' after CUDA had initialised")
    assert late_visible_change("0", "1", cuda_initialized=False) is None
    assert late_visible_change("0", "0", cuda_initialized=True) is None
    assert late_visible_change(None, "1", cuda_initialized=True) is not None


def test_requested_gpus_are_nvidia_smi_indices_or_uuids():
    assert requested_uuids("2,0", GPUS) == ["GPU-33333333-cccc", "GPU-11111111-aaaa"]
    assert requested_uuids("GPU-2222", GPUS) == ["GPU-22222222-bbbb"]
    with pytest.raises(GpuRequestError, match=r"no GPU '5' \(nvidia-smi GPUs here: 0, 1, 2\)"):
        requested_uuids("1,5", GPUS)
    assert child_env_for(["GPU-a", "GPU-b"]) == {"CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b",
                                                 "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def test_placement_is_verified_by_uuid():
    expected = ["GPU-33333333-cccc", "GPU-11111111-aaaa"]
    good = [{"rank": 0, "local_rank": 0, "uuid": "33333333-cccc"}, {"rank": 1, "local_rank": 1,
                                                                     "uuid": "GPU-11111111-aaaa"}]
    assert verify_placement(expected, good) == []
    bad = [{"rank": 0, "local_rank": 0, "uuid": "GPU-22222222-bbbb"}]
    assert verify_placement(expected, bad) == ["rank 0 ran on GPU-22222222-bbbb, but GPU-33333333-cccc was asked for"]


def test_uuid_normalisation():
    assert normalize_uuid("GPU-ABC") == normalize_uuid("abc") == "abc"
