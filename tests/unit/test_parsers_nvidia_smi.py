"""nvidia-smi parsers on real recorded outputs (tests/fixtures/corpus)."""
from __future__ import annotations

import pytest

from envdoctor.parsers import nvidia_smi as smi
from tests.fixtures import corpus

# id -> (smi version, driver version, CUDA version, label, [(index, name, bus id, used, total)])
# Written by hand from reading each recorded table.
BANNERS = {
    "smi-d2-693-418-rtx2080": ("418.43", "418.43", "10.1", "CUDA Version",
                               [(0, "GeForce RTX 208...", "00000000:04:00.0", 0, 10989)]),
    "smi-pytorch-1040-375-no-cuda-field": ("375.39", "375.39", None, None,
                                           [(0, "TITAN X (Pascal)", "0000:01:00.0", None, None)]),
    "smi-tffrcnn-235-384-gridk520": ("384.81", "384.81", None, None,
                                     [(0, "GRID K520", "00000000:00:03.0", 11, 4036)]),
    "smi-kaolin-8-418-mangled-sep": ("418.56", "418.56", "10.1", "CUDA Version",
                                     [(0, "GeForce GTX TIT...", "00000000:04:00.0", 11, 12212),
                                      (1, "GeForce GTX TIT...", "00000000:06:00.0", 11, 12212)]),
    "smi-alphapose-305-384-titanxp": ("384.98", "384.98", None, None,
                                      [(0, "TITAN Xp", "00000000:02:00.0", 0, 12189),
                                       (1, "TITAN Xp", "00000000:04:00.0", 0, 12189)]),
    "smi-pytorch-45028-450-a100-mig": ("450.119.03", "450.119.03", "11.0", "CUDA Version",
                                       [(0, "A100-SXM4-40GB", "00000000:04:00.0", 1404, 40537)]),
    "smi-daskcuda-761-wsl-510": ("510.00", "510.06", "11.6", "CUDA Version",
                                 [(0, "NVIDIA GeForce ...", "00000000:01:00.0", 164, 6144)]),
    "smi-devcontainers-1295-535-newfmt": ("535.216.03", "535.216.03", "12.2", "CUDA Version", []),
    "smi-cudf-8018-460-indented": ("460.32.03", "460.32.03", "11.2", "CUDA Version",
                                   [(0, "GeForce RTX 208...", "00000000:1A:00.0", 0, 11019),
                                    (1, "GeForce RTX 208...", "00000000:68:00.0", 0, 11016)]),
    "smi-colabfold-74-470": ("470.103.01", "470.103.01", "11.4", "CUDA Version", []),
    "smi-mmcv-204-450-header": ("450.102.04", "450.102.04", "11.0", "CUDA Version", []),
    "smi-bladebit-431-515-no-leading-bar": ("515.48.07", "515.48.07", "11.7", "CUDA Version", []),
    "smi-sglang-27487-610-umd": ("610.43.02", "610.43.02", "13.3", "CUDA UMD Version",
                                 [(0, "NVIDIA B200", "00000000:63:00.0", 0, 183359),
                                  (1, "NVIDIA B200", "00000000:68:00.0", 0, 183359)]),
    "smi-mistralrs-2287-610-rtx5070": ("610.43.02", "610.43.02", "13.3", "CUDA UMD Version",
                                       [(0, "NVIDIA GeForce RTX 5070 ...", "00000000:02:00.0", 273, 12227)]),
}
NOT_BANNERS = ("smi-L-colabfold-74-gtx1650", "smi-err-qixuema-4-no-driver", "smi-err-ogpukm-47-nvml-mismatch")


def test_every_nvidia_smi_record_has_an_expectation():
    assert set(corpus.ids("nvidia-smi")) == set(BANNERS) | set(NOT_BANNERS)


@pytest.mark.parametrize("record_id", sorted(BANNERS))
def test_banner(record_id):
    smi_version, driver, cuda, label, gpus = BANNERS[record_id]
    parsed = smi.parse_banner(corpus.text(record_id))
    assert parsed["smi_version"] == smi_version
    assert parsed["driver_version"] == driver
    assert parsed["cuda_version"] == cuda
    assert parsed["cuda_label"] == label
    got = [(g["index"], g["name"], g["pci_bus_id"], g["memory_used_mib"], g["memory_total_mib"])
           for g in parsed["gpus"]]
    assert got == gpus
    assert parsed["processes"] == []


def test_truncated_names_are_flagged():
    parsed = smi.parse_banner(corpus.text("smi-d2-693-418-rtx2080"))
    assert parsed["gpus"][0]["name_truncated"] is True
    parsed = smi.parse_banner(corpus.text("smi-alphapose-305-384-titanxp"))
    assert parsed["gpus"][0]["name_truncated"] is False


@pytest.mark.parametrize("record_id", NOT_BANNERS)
def test_non_banner_outputs_have_no_header(record_id):
    assert smi.parse_header(corpus.text(record_id)) is None
    assert smi.parse_banner(corpus.text(record_id))["gpus"] == []


def test_wsl_smi_version_differs_from_driver_version():
    header = smi.parse_header(corpus.text("smi-daskcuda-761-wsl-510"))
    assert (header["smi_version"], header["driver_version"]) == ("510.00", "510.06")


def test_header_with_cuda_na_is_not_a_version():
    text = "| NVIDIA-SMI 470.57.02    Driver Version: 470.57.02    CUDA Version: N/A      |"
    assert smi.parse_header(text) == {"smi_version": "470.57.02", "driver_version": "470.57.02",
                                      "cuda_version": None, "cuda_label": "CUDA Version"}


# A table in the 535+ layout with a processes section, in the shape nvidia-smi
# prints it (GI/CI columns for MIG, "N/A" for them otherwise).
PROCESS_TABLE = """\
+---------------------------------------------------------------------------------------+
| NVIDIA-SMI 535.104.05             Driver Version: 535.104.05   CUDA Version: 12.2     |
|-----------------------------------------+----------------------+----------------------+
|=========================================+======================+======================|
|   0  NVIDIA GeForce RTX 3090        Off | 00000000:01:00.0  On |                  N/A |
| 30%   45C    P2             110W / 350W |   9021MiB / 24576MiB |     35%      Default |
+-----------------------------------------+----------------------+----------------------+
|   1  NVIDIA GeForce RTX 3090        Off | 00000000:02:00.0 Off |                  N/A |
| 30%   35C    P8              20W / 350W |      3MiB / 24576MiB |      0%      Default |
+-----------------------------------------+----------------------+----------------------+

+---------------------------------------------------------------------------------------+
| Processes:                                                                            |
|  GPU   GI   CI        PID   Type   Process name                            GPU Memory |
|        ID   ID                                                             Usage      |
|=======================================================================================|
|    0   N/A  N/A      1402      G   /usr/lib/xorg/Xorg                          222MiB |
|    0   N/A  N/A     23811      C   python train.py                            8790MiB |
+---------------------------------------------------------------------------------------+
"""
OLD_PROCESS_TABLE = """\
| Processes:                                                       GPU Memory |
|  GPU       PID   Type   Process name                             Usage      |
|=============================================================================|
|    0      4242      C   python                                      1024MiB |
|    1      4243    C+G   /opt/app/bin/render                          N/A    |
+-----------------------------------------------------------------------------+
"""


def test_processes_535_layout():
    parsed = smi.parse_banner(PROCESS_TABLE)
    assert [g["index"] for g in parsed["gpus"]] == [0, 1]
    assert parsed["gpus"][0]["memory_used_mib"] == 9021
    assert parsed["processes"] == [
        {"gpu": 0, "pid": 1402, "type": "G", "name": "/usr/lib/xorg/Xorg", "used_memory_mib": 222},
        {"gpu": 0, "pid": 23811, "type": "C", "name": "python train.py", "used_memory_mib": 8790},
    ]


def test_processes_old_layout():
    parsed = smi.parse_banner(OLD_PROCESS_TABLE)
    assert parsed["processes"] == [
        {"gpu": 0, "pid": 4242, "type": "C", "name": "python", "used_memory_mib": 1024},
        {"gpu": 1, "pid": 4243, "type": "C+G", "name": "/opt/app/bin/render", "used_memory_mib": None},
    ]


GPU_FIELDS = ("index", "name", "uuid", "pci.bus_id", "memory.total", "memory.used", "compute_cap")


def test_query_csv_with_not_available_values():
    text = ("0, NVIDIA A100-SXM4-80GB, GPU-11111111-2222-3333-4444-555555555555, 00000000:07:00.0, 81920, 4, 8.0\n"
            "1, Tesla K80, GPU-aaaa, 00000000:08:00.0, [N/A], N/A, [Not Supported]\n")
    rows = smi.parse_query_csv(text, GPU_FIELDS)
    assert rows == [
        {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "uuid": "GPU-11111111-2222-3333-4444-555555555555",
         "pci.bus_id": "00000000:07:00.0", "memory.total": 81920, "memory.used": 4, "compute_cap": "8.0"},
        {"index": 1, "name": "Tesla K80", "uuid": "GPU-aaaa", "pci.bus_id": "00000000:08:00.0",
         "memory.total": None, "memory.used": None, "compute_cap": None},
    ]


def test_query_csv_with_units_and_header():
    text = "index, memory.total [MiB]\n0, 24576 MiB\n"
    assert smi.parse_query_csv(text, ("index", "memory.total")) == [{"index": 0, "memory.total": 24576}]


def test_query_csv_error_message_is_none():
    text = 'Field "compute_cap" is not a valid field to query.\n\n'
    assert smi.parse_query_csv(text, GPU_FIELDS) is None
    assert smi.invalid_field(text) == "compute_cap"
    assert smi.invalid_field("0, Tesla T4") is None


def test_query_compute_apps():
    fields = ("gpu_uuid", "pid", "process_name", "used_memory")
    text = "GPU-1, 23811, python, 8790\nGPU-1, 99, [Insufficient Permissions], [N/A]\n"
    assert smi.parse_query_csv(text, fields) == [
        {"gpu_uuid": "GPU-1", "pid": 23811, "process_name": "python", "used_memory": 8790},
        {"gpu_uuid": "GPU-1", "pid": 99, "process_name": None, "used_memory": None},
    ]
    assert smi.parse_query_csv("", fields) == []


def test_list():
    assert smi.parse_list(corpus.text("smi-L-colabfold-74-gtx1650")) == [
        {"index": 0, "name": "NVIDIA GeForce GTX 1650", "uuid": "GPU-8f480a3f-eda9-2ff4-56e2-f22e03187748",
         "mig": []}]
    text = ("GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)\n"
            "  MIG 1g.5gb      Device  0: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)\n")
    parsed = smi.parse_list(text)
    assert parsed[0]["mig"] == [{"profile": "1g.5gb", "index": 0, "uuid": "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f"}]


@pytest.mark.parametrize("record_id, status, message, nvml", [
    ("smi-err-qixuema-4-no-driver", "not_loaded",
     "NVIDIA-SMI has failed because it couldn‘t communicate with the NVIDIA driver.", None),
    ("smi-err-ogpukm-47-nvml-mismatch", "library_mismatch",
     "Failed to initialize NVML: Driver/library version mismatch", "570.124"),
])
def test_failures(record_id, status, message, nvml):
    assert smi.classify_failure(corpus.text(record_id)) == {"status": status, "message": message,
                                                            "nvml_version": nvml}


def test_other_failures_are_errors():
    assert smi.classify_failure("No devices were found\n")["status"] == "error"
    assert smi.classify_failure("No devices were found\n")["message"] == "No devices were found"
    assert smi.classify_failure("Failed to initialize NVML: Unknown Error")["status"] == "error"
    assert smi.classify_failure("") == {"status": "error", "message": "", "nvml_version": None}


def test_proc_version():
    closed = ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  525.60.13  Wed Nov 30 06:39:21 UTC 2022\n"
              "GCC version:  gcc version 11.3.0 (Ubuntu 11.3.0-1ubuntu1~22.04)\n")
    assert smi.parse_proc_version(closed) == {"version": "525.60.13", "open": False, "gcc": "11.3.0"}
    opened = ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  535.104.05  Release Build  "
              "(dvs-builder@U16-I3-B03-4-3)  Sat Aug 19 01:13:48 UTC 2023\n")
    assert smi.parse_proc_version(opened) == {"version": "535.104.05", "open": True, "gcc": None}
    assert smi.parse_proc_version("garbage") is None


def test_windows_driver_model_rows():
    text = ("| NVIDIA-SMI 531.14                 Driver Version: 531.14       CUDA Version: 12.1     |\n"
            "|   0  NVIDIA GeForce RTX 3060      WDDM | 00000000:01:00.0  On |                  N/A |\n"
            "|  0%   45C    P8               15W / 170W |    713MiB / 12288MiB |      3%      Default |\n")
    parsed = smi.parse_banner(text)
    assert [(g["name"], g["pci_bus_id"], g["memory_total_mib"]) for g in parsed["gpus"]] == [
        ("NVIDIA GeForce RTX 3060", "00000000:01:00.0", 12288)]
