"""Driver and GPU probes: recorded outputs through FakeRunner, and fake
``nvidia-smi`` executables first on PATH run through the real Runner."""
from __future__ import annotations

import os
from typing import Dict

import pytest

from envdoctor.model import FactSet
from envdoctor.probes import driver, gpus
from envdoctor.probes.base import ProbeContext
from envdoctor.runner import CommandResult, FakeRunner
from tests.fixtures import corpus
from tests.fixtures.fake_bin import Response, path_with, write_fake, write_nvidia_smi, write_tree

QUERY_DRIVER = "--query-gpu=driver_version --format=csv,noheader"
QUERY_GPUS = "--query-gpu=" + ",".join(gpus.FIELDS) + " --format=csv,noheader,nounits"
QUERY_GPUS_OLD = "--query-gpu=" + ",".join(f for f in gpus.FIELDS if f != "compute_cap") + \
    " --format=csv,noheader,nounits"
QUERY_APPS = "--query-compute-apps=" + ",".join(gpus.APP_FIELDS) + " --format=csv,noheader,nounits"
NOT_LOADED = corpus.text("smi-err-qixuema-4-no-driver")
MISMATCH = corpus.text("smi-err-ogpukm-47-nvml-mismatch").split("\n", 1)[1]  # without the typed command line


def facts_of(probe, ctx) -> FactSet:
    return FactSet(probe.probe(ctx))


def context(tmp_path, responses, timeout=10.0, proc_version=None) -> ProbeContext:
    """Real Runner, fake nvidia-smi first on PATH, a temporary filesystem root."""
    bin_dir = str(tmp_path / "bin")
    write_fake(bin_dir, "nvidia-smi", responses)
    root = str(tmp_path / "root")
    os.makedirs(root, exist_ok=True)
    if proc_version:
        write_tree(root, {"proc/driver/nvidia/version": proc_version})
    return ProbeContext(env={"PATH": path_with(bin_dir)}, root=root, timeout=timeout, paths=())


def smi_parse(text):
    from envdoctor.parsers.nvidia_smi import parse_banner
    return parse_banner(text)


def smi_header_driver(record_id):
    return smi_parse(corpus.text(record_id))["driver_version"]


# ---- driver ------------------------------------------------------------------

def test_driver_from_recorded_banner(tmp_path):
    ctx = context(tmp_path, {QUERY_DRIVER: "418.43\n", "": corpus.text("smi-d2-693-418-rtx2080")})
    facts = facts_of(driver, ctx)
    assert facts.value("driver.smi")["status"] == "ok"
    assert facts.value("driver.version") == "418.43"
    assert facts.get("driver.version").source == "nvidia-smi --query-gpu=driver_version"
    assert facts.value("driver.cuda_max") == "10.1"
    source = facts.get("driver.cuda_max").source
    assert "nvidia-smi header" in source and "maximum" in source and "not an installed toolkit" in source
    assert facts.value("driver.present") is True
    assert not facts.has("driver.kernel_module_version")


def test_driver_610_umd_banner(tmp_path):
    ctx = context(tmp_path, {QUERY_DRIVER: "610.43.02\n", "": corpus.text("smi-sglang-27487-610-umd")})
    facts = facts_of(driver, ctx)
    assert facts.value("driver.cuda_max") == "13.3"
    assert "CUDA UMD Version" in facts.get("driver.cuda_max").source


def test_driver_version_from_banner_when_query_prints_nothing(tmp_path):
    ctx = context(tmp_path, {QUERY_DRIVER: "\n", "": corpus.text("smi-cudf-8018-460-indented")})
    facts = facts_of(driver, ctx)
    assert facts.value("driver.version") == "460.32.03"
    assert facts.get("driver.version").source == "nvidia-smi header"


def test_old_driver_without_cuda_version(tmp_path):
    ctx = context(tmp_path, {QUERY_DRIVER: "375.39\n", "": corpus.text("smi-pytorch-1040-375-no-cuda-field")})
    facts = facts_of(driver, ctx)
    assert facts.value("driver.version") == "375.39"
    assert not facts.has("driver.cuda_max")
    assert "410" in facts.get("driver.cuda_max").error


def test_nvidia_smi_not_installed(tmp_path):
    root = str(tmp_path)
    ctx = ProbeContext(env={"PATH": str(tmp_path / "empty")}, root=root, paths=())
    facts = facts_of(driver, ctx)
    assert facts.value("driver.smi") == {"status": "not_found", "message": "nvidia-smi is not on PATH", "path": None}
    assert facts.value("driver.present") is False
    assert not facts.has("driver.version") and not facts.has("driver.cuda_max")
    gpu_facts = facts_of(gpus, ctx)
    assert gpu_facts.get("gpus").error == "nvidia-smi is not on PATH"


def test_hanging_nvidia_smi_times_out(tmp_path):
    # Sleeps 100 s: only the runner's timeout can produce the "timeout" status.
    ctx = context(tmp_path, Response(stdout="never printed", sleep=100), timeout=0.5)
    facts = facts_of(driver, ctx)
    smi = facts.value("driver.smi")
    assert smi["status"] == "timeout"
    assert "timed out after 0.5s" in smi["message"]
    assert facts.value("driver.present") is False
    gpu_facts = facts_of(gpus, ctx)
    assert "timed out" in gpu_facts.get("gpus").error


@pytest.mark.parametrize("output, code, status, message", [
    (NOT_LOADED, 9, "not_loaded",
     "NVIDIA-SMI has failed because it couldn‘t communicate with the NVIDIA driver."),
    (MISMATCH, 18, "library_mismatch", "Failed to initialize NVML: Driver/library version mismatch"),
    ("No devices were found\n", 6, "error", "No devices were found"),
])
def test_failure_messages(tmp_path, output, code, status, message):
    ctx = context(tmp_path, Response(stdout=output, code=code))
    facts = facts_of(driver, ctx)
    assert facts.value("driver.smi")["status"] == status
    assert facts.value("driver.smi")["message"] == message
    assert facts.get("driver.smi").raw.strip() == output.strip()
    assert not facts.has("driver.version")
    assert facts.value("driver.present") is (status == "library_mismatch")


def test_kernel_module_version_and_presence(tmp_path):
    proc = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  525.60.13  Wed Nov 30 06:39:21 UTC 2022\n"
    ctx = context(tmp_path, Response(stdout=NOT_LOADED, code=9), proc_version=proc)
    facts = facts_of(driver, ctx)
    assert facts.value("driver.kernel_module_version") == "525.60.13"
    assert facts.value("driver.present") is True  # the module is loaded even though nvidia-smi fails


# ---- gpus --------------------------------------------------------------------

GPU_ROWS = ("0, NVIDIA GeForce RTX 3090, GPU-aaaaaaaa-1111-2222-3333-444444444444, 00000000:01:00.0, 24576, 9021, 8.6\n"
            "1, NVIDIA GeForce RTX 3090, GPU-bbbbbbbb-1111-2222-3333-444444444444, 00000000:02:00.0, 24576, 3, 8.6\n")
APPS = ("GPU-aaaaaaaa-1111-2222-3333-444444444444, 23811, python, 8790\n"
        "GPU-aaaaaaaa-1111-2222-3333-444444444444, 1402, /usr/lib/xorg/Xorg, 222\n")


def test_gpus_query(tmp_path):
    ctx = context(tmp_path, {QUERY_GPUS: GPU_ROWS, QUERY_APPS: APPS})
    value = facts_of(gpus, ctx).value("gpus")
    assert [g["index"] for g in value] == [0, 1]
    first = value[0]
    assert first == {
        "index": 0, "name": "NVIDIA GeForce RTX 3090", "uuid": "GPU-aaaaaaaa-1111-2222-3333-444444444444",
        "pci_bus_id": "00000000:01:00.0", "memory_total_mib": 24576, "memory_used_mib": 9021,
        "compute_cap": "8.6", "compute_cap_source": "nvidia-smi",
        "processes": [{"pid": 23811, "name": "python", "used_memory_mib": 8790},
                      {"pid": 1402, "name": "/usr/lib/xorg/Xorg", "used_memory_mib": 222}],
    }
    assert value[1]["processes"] == []


def test_old_driver_rejects_compute_cap(tmp_path, monkeypatch):
    import envdoctor.knowledge as knowledge
    monkeypatch.setattr(knowledge, "compute_capability",
                        lambda name: {"TITAN Xp": "6.1"}.get(name), raising=False)
    rejected = Response(stdout='Field "compute_cap" is not a valid field to query.\n\n', code=2)
    rows = "0, TITAN Xp, GPU-1, 00000000:02:00.0, 12189, 0\n1, Mystery GPU, GPU-2, 00000000:04:00.0, 12189, 0\n"
    ctx = context(tmp_path, {QUERY_GPUS: rejected, QUERY_GPUS_OLD: rows, QUERY_APPS: ""})
    fact = facts_of(gpus, ctx).get("gpus")
    assert "compute_cap" not in fact.source
    assert [(g["compute_cap"], g["compute_cap_source"]) for g in fact.value] == [("6.1", "table"), (None, None)]


def test_capability_table_missing_or_broken_is_tolerated(monkeypatch):
    import envdoctor.knowledge as knowledge
    monkeypatch.delattr(knowledge, "compute_capability", raising=False)
    assert gpus.table_capability("TITAN Xp") is None

    def broken(name):
        raise RuntimeError("table not loaded")
    monkeypatch.setattr(knowledge, "compute_capability", broken, raising=False)
    assert gpus.table_capability("TITAN Xp") is None


def test_gpus_fall_back_to_the_banner(tmp_path, monkeypatch):
    import envdoctor.knowledge as knowledge
    monkeypatch.setattr(knowledge, "compute_capability", lambda name: None, raising=False)
    invalid = Response(stdout="Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n",
                       code=2)
    ctx = context(tmp_path, {"--query-gpu=*": invalid, "": corpus.text("smi-alphapose-305-384-titanxp")})
    fact = facts_of(gpus, ctx).get("gpus")
    assert fact.source == "nvidia-smi table"
    assert [(g["index"], g["name"], g["pci_bus_id"], g["memory_total_mib"], g["uuid"]) for g in fact.value] == [
        (0, "TITAN Xp", "00000000:02:00.0", 12189, None), (1, "TITAN Xp", "00000000:04:00.0", 12189, None)]


def test_gpus_when_driver_not_loaded(tmp_path):
    ctx = context(tmp_path, Response(stdout=NOT_LOADED, code=9))
    fact = facts_of(gpus, ctx).get("gpus")
    assert not fact.available
    assert "couldn" in fact.error


def test_gpus_with_fake_runner_records_commands(tmp_path):
    bin_dir = str(tmp_path / "bin")
    write_fake(bin_dir, "nvidia-smi", "unused")

    def answer(argv):
        joined = " ".join(argv[1:])
        table: Dict[str, str] = {QUERY_GPUS: GPU_ROWS, QUERY_APPS: ""}
        return CommandResult(argv, 0, table.get(joined, ""))
    runner = FakeRunner({"nvidia-smi": answer})
    ctx = ProbeContext(env={"PATH": bin_dir}, root=str(tmp_path), runner=runner, paths=())
    assert len(facts_of(gpus, ctx).value("gpus")) == 2
    assert all(isinstance(call, tuple) and call[0].endswith("/nvidia-smi") for call in runner.calls)
    assert len(runner.calls) == 2  # the query and the process list, nothing else


def test_banner_fallback_uses_the_knowledge_table(tmp_path):
    import envdoctor.knowledge as knowledge
    if not hasattr(knowledge, "compute_capability"):
        pytest.skip("knowledge table not available")
    invalid = Response(stdout="Invalid combination of input arguments.\n", code=2)
    ctx = context(tmp_path, {"--query-gpu=*": invalid, "": corpus.text("smi-alphapose-305-384-titanxp")})
    value = facts_of(gpus, ctx).value("gpus")
    assert [(g["compute_cap"], g["compute_cap_source"]) for g in value] == [("6.1", "table"), ("6.1", "table")]


@pytest.mark.parametrize("record_id", [r for r in corpus.ids("nvidia-smi")
                                       if smi_header_driver(r)])
def test_fake_nvidia_smi_from_every_recorded_banner(tmp_path, record_id):
    """Both probes agree with the recorded banner whatever the driver's age."""
    text = corpus.text(record_id)
    parsed = smi_parse(text)
    bin_dir = str(tmp_path / "bin")
    write_nvidia_smi(bin_dir, text, compute_caps={0: "7.5"})
    ctx = ProbeContext(env={"PATH": path_with(bin_dir)}, root=str(tmp_path), paths=())
    facts = FactSet(driver.probe(ctx) + gpus.probe(ctx))
    assert facts.value("driver.version") == parsed["driver_version"]
    assert facts.value("driver.cuda_max") == parsed["cuda_version"]
    if parsed["gpus"]:
        got = facts.value("gpus")
        assert [(g["index"], g["name"], g["pci_bus_id"]) for g in got] == \
            [(g["index"], g["name"], g["pci_bus_id"]) for g in parsed["gpus"]]
        new_driver = int(parsed["driver_version"].split(".")[0]) >= 510
        assert (got[0]["compute_cap_source"] == "nvidia-smi") is new_driver
    else:  # a truncated paste: the fake's query lists no GPUs, and neither does the probe
        assert facts.value("gpus") == []


def test_driver_smi_raw_is_the_banner_when_it_ran(tmp_path):
    banner = corpus.text("smi-colabfold-74-470")
    ctx = context(tmp_path, {QUERY_DRIVER: "470.103.01\n", "": banner})
    assert facts_of(driver, ctx).get("driver.smi").raw == banner
