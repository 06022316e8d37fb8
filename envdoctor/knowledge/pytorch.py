"""Official PyTorch wheel builds: CUDA variants, torchvision pairing, arch lists, install commands."""
from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any, Dict, List, Optional, Tuple

from . import _data
from .driver import driver_runs_cuda
from .versions import cuda_major_minor, mm_of, parse_version

_WHL = "https://download.pytorch.org/whl"


@lru_cache(maxsize=None)
def _rows_by_minor() -> Dict[Tuple[int, int], Dict[str, Any]]:
    return {mm_of(r["torch"]): r for r in _data.rows("torch_release")}


def latest_torch() -> str:
    """Newest torch MAJOR.MINOR in the table."""
    return max(_data.rows("torch_release"), key=lambda r: mm_of(r["torch"]))["torch"]


def _lookup(torch_version: Any) -> Optional[Tuple[Dict[str, Any], Optional[str]]]:
    """(merged row for that release, "X.Y.Z" patch or None)."""
    version = parse_version(torch_version)
    if version is None or len(version.release) < 2:
        return None
    row = _rows_by_minor().get((version.release[0], version.release[1]))
    if row is None:
        return None
    patch = ".".join(str(p) for p in version.release[:3]) if len(version.release) >= 3 else None
    merged = {k: v for k, v in row.items() if k != "patch_overrides"}
    merged.update(row.get("patch_overrides", {}).get(patch or "", {}))
    return merged, patch


def _python_list(low: str, high: str) -> List[str]:
    (lmaj, lmin), (hmaj, hmin) = mm_of(low), mm_of(high)
    return [f"{lmaj}.{m}" for m in range(lmin, hmin + 1)] if lmaj == hmaj else [low, high]


def torch_release(torch_version: Any) -> Optional[Dict[str, Any]]:
    """What a torch release was published with; accepts "2.3", "2.3.1", "2.3.1+cu121".

    Keys: version ("2.3"), patch ("2.3.1" or None), known_patch, python (list of
    supported minors), python_experimental, cuda {"stable", "experimental"},
    cuda_builds, torchvision ("0.18"), torchvision_exact ("0.18.1" or None),
    torchaudio_exact, cxx_standard, rocm, pip_style, unverified (bool) and
    unverified_fields (names of fields resting on unverified data), note, source.
    """
    found = _lookup(torch_version)
    if found is None:
        return None
    row, patch = found
    experimental = list(row["cuda_experimental"])
    return copy.deepcopy({
        "version": row["torch"],
        "patch": patch,
        "known_patch": patch in row.get("patches", []),
        "python": _python_list(row["python_min"], row["python_max"]),
        "python_experimental": row["python_experimental"],
        "cuda": {"stable": [c for c in row["cuda"] if c not in experimental], "experimental": experimental},
        "cuda_builds": list(row["cuda"]),
        "cuda_unverified": row.get("cuda_unverified", []),
        "torchvision": row["torchvision"],
        "torchvision_exact": row["torchvision_for_patch"].get(patch or ""),
        "torchaudio_exact": row.get("torchaudio_for_patch", {}).get(patch or ""),
        "cxx_standard": row.get("cxx_standard"),
        "rocm": row.get("rocm", []),
        "pip_style": row["pip_style"],
        "unverified": bool(row.get("unverified_fields")),
        "unverified_fields": row.get("unverified_fields", []),
        "note": row.get("note"),
        "source": row["source"],
    })


def torchvision_for_torch(torch_version: Any) -> Optional[str]:
    """MAJOR.MINOR of the torchvision built against that torch: "2.14.1" -> "0.29"."""
    found = _lookup(torch_version)
    return found[0]["torchvision"] if found else None


def torch_cuda_builds(torch_version: Any) -> List[str]:
    """CUDA versions with official Linux pip wheels for that torch, oldest first."""
    found = _lookup(torch_version)
    if found is None:
        return []
    return sorted(found[0]["cuda"], key=mm_of)


def torch_arch_list(torch_version: Any, cuda: Any) -> Optional[List[str]]:
    """Known torch.cuda.get_arch_list() of that official build, None when not known."""
    row = _row_for_build("torch_arch_list", torch_version, cuda)
    return list(row["arch_list"]) if row else None


def torch_arch_list_info(torch_version: Any, cuda: Any) -> Optional[Dict[str, Any]]:
    """torch_arch_list plus its row id, kind (observed / build_script / release_md) and flags."""
    archs = torch_arch_list(torch_version, cuda)
    if archs is None:
        return None
    version, mm = parse_version(torch_version), cuda_major_minor(cuda)
    torch_mm = (version.release[0], version.release[1])
    for row in _data.rows("torch_arch_list"):
        if mm_of(row["cuda"]) == mm and mm_of(row["torch_min"]) <= torch_mm <= mm_of(row["torch_max"]):
            return {"arch_list": archs, "id": row["id"], "kind": row["kind"],
                    "unverified": bool(row.get("unverified")), "note": row.get("note")}
    return None


def _spec(name: str, version: str) -> str:
    # A wildcard pin must be quoted or a shell may glob-expand it.
    text = f"{name}=={version}"
    return f"'{text}'" if "*" in text else text


def pip_install_command(torch_version: Any, cuda: Any) -> Optional[str]:
    """The pip command installing that torch build with its torchvision, or None.

    None when the torch release has no wheel for that CUDA version, or names a
    patch release that does not exist. When only MAJOR.MINOR is given the
    newest known patch is used; when the matching torchvision patch is not
    known the command pins torchvision to "0.Y.*", which pip resolves to the
    build that requires that torch.
    """
    found = _lookup(torch_version)
    mm = cuda_major_minor(cuda)
    if found is None or mm is None:
        return None
    row, patch = found
    cuda_text = f"{mm[0]}.{mm[1]}"
    if cuda_text not in row["cuda"]:
        return None
    if patch is None and row.get("patches"):
        patch = row["patches"][-1]
        row = _lookup(patch)[0]
    if patch is not None and row.get("patches_complete") and patch not in row["patches"]:
        return None
    tag = f"cu{mm[0]}{mm[1]}"
    torch_pin = patch or f"{row['torch']}.*"
    tv_pin = row["torchvision_for_patch"].get(patch or "") or f"{row['torchvision']}.*"
    style = row["pip_style"]
    if style != "index_url" and row.get("pypi_default_cuda") == cuda_text:
        return f"pip install {_spec('torch', torch_pin)} {_spec('torchvision', tv_pin)}"
    if style == "index_url":
        return f"pip install {_spec('torch', torch_pin)} {_spec('torchvision', tv_pin)} --index-url {_WHL}/{tag}"
    if "*" in torch_pin or "*" in tv_pin:
        return None  # local-version styles need exact pins; the tables always have them there
    if style == "lts":
        return f"pip install torch=={torch_pin} torchvision=={tv_pin} --extra-index-url {_WHL}/lts/1.8/{tag}"
    if style == "extra_index_local":
        return (f"pip install torch=={torch_pin}+{tag} torchvision=={tv_pin}+{tag} "
                f"--extra-index-url {_WHL}/{tag}")
    return f"pip install torch=={torch_pin}+{tag} torchvision=={tv_pin}+{tag} -f {_WHL}/torch_stable.html"


def best_torch_cuda_for_driver(driver_version: Any, torch_version: Any = None) -> Optional[str]:
    """Newest CUDA build of that torch (default: the latest torch) the driver can run."""
    builds = torch_cuda_builds(torch_version if torch_version is not None else latest_torch())
    for cuda in reversed(builds):
        if driver_runs_cuda(driver_version, cuda)[0]:
            return cuda
    return None


def newest_torch_for_driver(driver_version: Any) -> Optional[Tuple[str, str]]:
    """(torch MAJOR.MINOR, CUDA) of the newest official build the driver can run."""
    for minor in sorted(_rows_by_minor(), reverse=True):
        torch_text = _rows_by_minor()[minor]["torch"]
        cuda = best_torch_cuda_for_driver(driver_version, torch_text)
        if cuda is not None:
            return torch_text, cuda
    return None


def cudnn_for_torch(torch_version: Any, cuda: Any) -> Optional[str]:
    """cuDNN version the official torch build for that CUDA pins (table is unverified)."""
    row = _row_for_build("cudnn_pins", torch_version, cuda)
    return row["cudnn"] if row else None


def _row_for_build(table: str, torch_version: Any, cuda: Any) -> Optional[Dict[str, Any]]:
    """The row of a table keyed by CUDA version and an inclusive torch MAJOR.MINOR range."""
    version = parse_version(torch_version)
    mm = cuda_major_minor(cuda)
    if version is None or len(version.release) < 2 or mm is None:
        return None
    torch_mm = (version.release[0], version.release[1])
    for row in _data.rows(table):
        if mm_of(row["cuda"]) == mm and mm_of(row["torch_min"]) <= torch_mm <= mm_of(row["torch_max"]):
            return row
    return None


def detectron2_requirements() -> Dict[str, Any]:
    """What detectron2 (main) and Mask2Former need: python, torch, cuda, gcc; plus releases."""
    req = _data.table("detectron2_requirements")
    result: Dict[str, Any] = {row["project"]: {k: v for k, v in row.items() if k != "project"}
                              for row in req["rows"]}
    result["releases"] = _data.rows("detectron2_releases")
    result["source"] = req["source"]
    result["date_read"] = req["date_read"]
    return copy.deepcopy(result)
