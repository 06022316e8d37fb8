"""Cross-table consistency of envdoctor/knowledge/data/*.json.

Per-table structure (sources, dates, keys, parseable and ordered values) is
checked by envdoctor.knowledge.validate, tested in test_knowledge_validate.py.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from packaging.version import Version

from envdoctor import knowledge as kb
from envdoctor.knowledge import _data
from envdoctor.knowledge.versions import arch_cc, mm_of, normalize_arch

DATA_DIR = Path(kb.__file__).parent / "data"


def _rows(name):
    return _data.rows(name)


def test_every_data_file_is_loaded_and_vice_versa():
    on_disk = sorted(p.stem for p in DATA_DIR.glob("*.json"))
    assert on_disk == sorted(_data.DATA_FILES)


@pytest.mark.parametrize("path", sorted(DATA_DIR.glob("*.json")), ids=lambda p: p.name)
def test_data_file_has_no_duplicate_json_keys(path):
    def no_dupes(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"duplicate keys in {path.name}: {keys}"
        return dict(pairs)

    data = json.loads(path.read_text("utf-8"), object_pairs_hook=no_dupes)
    assert data["schema_version"] == 1
    assert data["tables"]


def test_tables_reports_metadata_and_is_a_copy():
    meta = kb.tables()
    assert set(meta) >= {"toolkit_driver", "minor_compat", "smi_branch", "cuda_host_compiler",
                         "nvcc_arch", "gpu_cc", "torch_release", "torch_arch_list", "cudnn_pins"}
    for name, table_meta in meta.items():
        assert table_meta["source"] and table_meta["date_read"], name
        assert table_meta["row_count"] == len(_rows(name))
    assert "rows" not in meta["gpu_cc"]
    assert "GeForce RTX 3070" in meta["gpu_cc"]["unverified_keys"]
    meta["gpu_cc"]["source"] = "changed"
    assert kb.tables()["gpu_cc"]["source"] != "changed"


# --- driver tables -------------------------------------------------------------------------

def test_minor_compat_floors_match_table3_ga_rows():
    floors = {int(r["cuda_major"]): r for r in _rows("minor_compat")}
    assert sorted(floors) == [11, 12, 13]
    assert floors[12]["linux_floor"] == kb.toolkit_row("12.0.0")["linux_min_driver"]
    assert floors[13]["linux_floor"] == kb.toolkit_row("13.0.0")["linux_min_driver"]
    assert Version(floors[11]["linux_floor"]) < Version(floors[12]["linux_floor"]) < Version(floors[13]["linux_floor"])
    for major, row in floors.items():
        assert Version(row["linux_floor"]).release[0] == int(row["branch_floor"])


def test_smi_branches_are_unique_and_reported_cuda_rises():
    seen, pairs = set(), []
    for row in _rows("smi_branch"):
        for branch in row["branches"]:
            assert branch.isdigit() and branch not in seen
            seen.add(branch)
            pairs.append((int(branch), Version(row["reported_cuda"])))
    pairs.sort()
    assert [cuda for _, cuda in pairs] == sorted(cuda for _, cuda in pairs)


def test_derived_branch_rows_agree_with_table3():
    # A derived row says "branch B reports the CUDA whose GA first bundled B": check it.
    for row in _rows("smi_branch"):
        if not row.get("derived_from_table3"):
            continue
        ga = kb.toolkit_row(row["reported_cuda"])
        assert ga is not None, row["branch"]
        assert str(Version(ga["linux_min_driver"]).release[0]) in row["branches"], row["branch"]


# --- compilers -------------------------------------------------------------------------------

def test_host_compiler_rows_are_ordered_ranges():
    rows = _rows("cuda_host_compiler")
    order = [(mm_of(r["release"]), tuple(r["updates"] or (0, 0))) for r in rows]
    assert order == sorted(order) and len(set(order)) == len(order)
    last_gcc = last_clang = 0
    for row in rows:
        if row["gcc_min_major"] is not None:
            assert row["gcc_min_major"] <= row["gcc_max_major"]
        if row["updates"]:
            assert row["updates"][0] <= row["updates"][1]
        assert row["gcc_max_major"] >= last_gcc and row["clang_max_major"] >= last_clang, row["cuda"]
        last_gcc, last_clang = row["gcc_max_major"], row["clang_max_major"]
        assert int(row["clang_min"].split(".")[0]) <= row["clang_max_major"]


# --- architectures ---------------------------------------------------------------------------

def test_arch_rows_are_consistent():
    for row in _rows("nvcc_arch"):
        assert re.match(r"^sm_\d{2,3}[af]?$", row["arch"])
        assert arch_cc(row["arch"]) == row["cc"]
        if row.get("last_cuda"):
            assert mm_of(row["first_cuda"]) <= mm_of(row["last_cuda"])
        if row.get("removed_in"):
            assert row.get("last_cuda") and mm_of(row["removed_in"]) > mm_of(row["last_cuda"])


def test_toolkit_ranges_match_per_arch_ranges():
    # nvcc_toolkits (per release) and nvcc_arch (per arch) were read separately: they must agree.
    for row in _rows("nvcc_toolkits"):
        archs = kb.nvcc_archs(row["cuda"], variants=True)
        assert archs[0] == row["sm_min"], row["cuda"]
        assert archs[-1] == row["sm_max"], row["cuda"]
        for added in row.get("added", []):
            assert added in archs
        for removed in row.get("removed", []):
            assert removed.split(" ")[0] not in archs


def test_every_gpu_row_names_a_known_arch_and_round_trips():
    known_archs = {r["arch"] for r in _rows("nvcc_arch")}
    for row in _rows("gpu_cc"):
        assert re.match(r"^\d{1,2}\.\d$", row["cc"])
        assert row["arch"] == normalize_arch(row["cc"]) and row["arch"] in known_archs
        info = kb.gpu_info(row["name"])
        assert info is not None and info["name"] == row["name"] and info["match"] == "exact"
        for alias in row.get("aliases", []):
            assert kb.gpu_info(alias)["name"] == row["name"]


# --- torch -----------------------------------------------------------------------------------

def test_torch_release_rows():
    rows = _rows("torch_release")
    styles = set(_data.table("torch_release")["pip_styles"])
    torch_mm = [mm_of(r["torch"]) for r in rows]
    vision_mm = [mm_of(r["torchvision"]) for r in rows]
    assert torch_mm == sorted(torch_mm) and vision_mm == sorted(vision_mm)
    assert len(set(vision_mm)) == len(vision_mm)
    for row in rows:
        assert mm_of(row["python_min"]) <= mm_of(row["python_max"])
        cudas = [mm_of(c) for c in row["cuda"]]
        assert cudas == sorted(cudas) and len(set(cudas)) == len(cudas)
        assert set(row["cuda_experimental"]) <= set(row["cuda"])
        assert row["pip_style"] in styles
        for patch, tv in row["torchvision_for_patch"].items():
            assert patch in row["patches"] and patch.startswith(row["torch"] + ".")
            assert tv.startswith(row["torchvision"] + ".")
        for patch, override in row.get("patch_overrides", {}).items():
            assert patch in row["patches"]
            assert set(override.get("cuda", [])) <= set(row["cuda"]) | {"10.1"}


def _torch_minors(lo, hi):
    return [r["torch"] for r in _rows("torch_release") if mm_of(lo) <= mm_of(r["torch"]) <= mm_of(hi)]


@pytest.mark.parametrize("table_name", ["torch_arch_list", "cudnn_pins"])
def test_build_rows_name_published_builds_without_overlap(table_name):
    covered = set()
    for row in _rows(table_name):
        minors = _torch_minors(row["torch_min"], row["torch_max"])
        assert minors, row["id"]
        for minor in minors:
            assert row["cuda"] in kb.torch_cuda_builds(minor), (row["id"], minor)
            assert (row["cuda"], minor) not in covered, row["id"]
            covered.add((row["cuda"], minor))


def test_torch_arch_lists_are_buildable_by_their_nvcc():
    for row in _rows("torch_arch_list"):
        for arch in row["arch_list"]:
            assert re.match(r"^(sm|compute)_\d{2,3}$", arch)
            assert kb.arch_supported_by_cuda(arch, row["cuda"]), (row["id"], arch)


def test_cudnn_major_follows_the_cuda_11_rule():
    # cuDNN 8 for torch <= 2.3, cuDNN 9 from 2.4 (matrix: major_rule_observed).
    for row in _rows("cudnn_pins"):
        major = int(row["cudnn"].split(".")[0])
        assert major == (8 if mm_of(row["torch_max"]) <= (2, 3) else 9), row["id"]


def test_detectron2_rows_parse():
    for row in _rows("detectron2_releases"):
        assert Version(row["torch_min"])
        for torch_minor, cudas in (row["prebuilt"] or {}).get("torch_cuda", {}).items():
            assert Version(torch_minor)
            assert all(c == "cpu" or kb.cuda_major_minor(c) for c in cudas)
