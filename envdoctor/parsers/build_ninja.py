"""Parse the ``build.ninja`` that torch.utils.cpp_extension writes: what a build was made with.

Pure ``str -> dict`` (plus :func:`torch_version_near`, which reads the files
beside a torch include dir). The fields match ``built_with`` in docs/facts.md:
``torch, cuda_home, nvcc, cuda, python, archs, cxx11_abi``, plus what helped to
find them (``torch_include``, ``name``, ``sources``, ``is_cuda``).
"""
from __future__ import annotations

import os
import re
import shlex
from typing import Any, Dict, List, Optional

_VAR = re.compile(r"^([A-Za-z_][\w.]*)\s*=\s?(.*)$")
_GENCODE = re.compile(r"(?:-gencode|--generate-code)[= ]?arch=(compute_\d+\w?),code=\[?([\w,]+)\]?")
_ARCH_FLAG = re.compile(r"(?:^|\s)(?:-arch|--gpu-architecture)[= ](sm_\d+\w?|compute_\d+\w?)")
_CUDA_DIR_VERSION = re.compile(r"cuda[-_]?(\d+\.\d+)")
_PY_INCLUDE = re.compile(r"/include/python(\d+\.\d+)")
_TEMP_DIR_PY = re.compile(r"temp\.[^/]*?-(?:cpython-|cp)?(\d)(\d+)$|temp\.[^/]*-(\d+\.\d+)$")
_JIT_DIR_PY = re.compile(r"/py(\d)(\d+)_cu(\d+)/")


def read_variables(text: str) -> Dict[str, str]:
    """Top-level ``name = value`` lines (ninja's ``$`` line continuation joined)."""
    text = re.sub(r"\$\n\s*", "", text)
    variables: Dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith((" ", "\t", "#")):
            continue  # rule/build bodies and comments
        match = _VAR.match(line)
        if match:
            variables[match.group(1)] = match.group(2).strip()
    return variables


def _split(flags: str) -> List[str]:
    try:
        return shlex.split(flags)
    except ValueError:  # an unbalanced quote: fall back to whitespace
        return flags.split()


def include_dirs(flags: str) -> List[str]:
    words = _split(flags)
    found: List[str] = []
    for i, word in enumerate(words):
        if word in ("-I", "-isystem") and i + 1 < len(words):
            found.append(words[i + 1])
        elif word.startswith("-I") and len(word) > 2:
            found.append(word[2:])
        elif word.startswith("-isystem") and len(word) > 8:
            found.append(word[8:])
    return found


def library_dirs(flags: str) -> List[str]:
    return [w[2:] for w in _split(flags) if w.startswith("-L") and len(w) > 2]


def archs(flags: str) -> List[str]:
    """``-gencode arch=compute_80,code=sm_80`` -> ``["sm_80"]``; PTX targets as ``compute_80``."""
    found: List[str] = []
    for virtual, codes in _GENCODE.findall(flags):
        for code in codes.split(","):
            code = code.strip()
            if code and code not in found:
                found.append(code)
        if not codes and virtual not in found:
            found.append(virtual)
    for arch in _ARCH_FLAG.findall(flags):
        if arch not in found:
            found.append(arch)
    return found


def _cuda_home(nvcc: Optional[str], includes: List[str], libdirs: List[str]) -> Optional[str]:
    if nvcc and os.path.isabs(nvcc) and os.path.basename(os.path.dirname(nvcc)) == "bin":
        return os.path.dirname(os.path.dirname(nvcc))
    for path in includes:
        if path.rstrip("/").endswith("/include") and re.search(r"cuda", path, re.I) and "torch" not in path:
            return os.path.dirname(path.rstrip("/"))
    for path in libdirs:
        if re.search(r"cuda", path, re.I) and os.path.basename(path.rstrip("/")) in ("lib64", "lib"):
            return os.path.dirname(path.rstrip("/"))
    return None


def _python_version(includes: List[str], build_dir: Optional[str]) -> Optional[str]:
    for path in includes:
        match = _PY_INCLUDE.search(path + "/")
        if match:
            return match.group(1)
    if build_dir:
        match = _TEMP_DIR_PY.search(build_dir.rstrip("/"))
        if match and match.group(1):
            return f"{match.group(1)}.{match.group(2)}"
        if match and match.group(3):
            return match.group(3)
        match = _JIT_DIR_PY.search(build_dir.rstrip("/") + "/")
        if match:
            return f"{match.group(1)}.{match.group(2)}"
    return None


def _torch_include(includes: List[str]) -> Optional[str]:
    for path in includes:
        if path.rstrip("/").endswith("/torch/include"):
            return path.rstrip("/")
    return None


def _cxx11_abi(flags: str) -> Optional[bool]:
    match = re.search(r"-D_GLIBCXX_USE_CXX11_ABI=(\d)", flags)
    return bool(int(match.group(1))) if match else None


def _torch_version_from_path(torch_include: Optional[str]) -> Optional[str]:
    """conda pkgs (``pytorch-1.9.0-py3.8_cuda11.1…``) and eggs (``torch-1.9.0-py3.8….egg``) name it."""
    if not torch_include:
        return None
    match = re.search(r"/(?:py)?torch-(\d+\.\d+\.\d+(?:[+.\w]*?))(?:-py|-cp|-|/)", torch_include)
    return match.group(1) if match else None


def parse(text: str, build_dir: Optional[str] = None) -> Dict[str, Any]:
    """What the build described by ``text`` (a build.ninja) was made with."""
    variables = read_variables(text)
    host_flags = " ".join(variables.get(k, "") for k in ("cflags", "post_cflags"))
    cuda_flags = " ".join(variables.get(k, "") for k in ("cuda_cflags", "cuda_post_cflags"))
    all_flags = " ".join((host_flags, cuda_flags, variables.get("ldflags", "")))
    includes = include_dirs(host_flags + " " + cuda_flags)
    nvcc = variables.get("nvcc") or None
    cuda_home = _cuda_home(nvcc, includes, library_dirs(all_flags))
    torch_include = _torch_include(includes)
    name = re.search(r"-DTORCH_EXTENSION_NAME=(\w+)", all_flags)
    version = _CUDA_DIR_VERSION.search(cuda_home or "") or _CUDA_DIR_VERSION.search(nvcc or "")
    return {
        "name": name.group(1) if name else None,
        "torch": _torch_version_from_path(torch_include),
        "torch_include": torch_include,
        "cuda_home": cuda_home,
        "nvcc": nvcc,
        "cuda": version.group(1) if version else None,
        "is_cuda": bool(nvcc or cuda_flags.strip()),
        "python": _python_version(includes, build_dir),
        "archs": archs(cuda_flags),
        "cxx11_abi": _cxx11_abi(all_flags),
        "cxx": variables.get("cxx"),
        "sources": re.findall(r"^build [^:]+:\s*\w+\s+(\S+)", text, re.M),
    }


def cuda_version_of(home: Optional[str]) -> Optional[str]:
    """The toolkit version recorded in ``home`` now (version.json / version.txt), if it still exists."""
    if not home:
        return None
    import json

    try:
        with open(os.path.join(home, "version.json"), encoding="utf-8") as fh:
            data = json.load(fh)
        version = data.get("cuda", {}).get("version")
        if version:
            return ".".join(str(version).split(".")[:2])
    except (OSError, ValueError, AttributeError):
        pass
    try:
        with open(os.path.join(home, "version.txt"), encoding="utf-8") as fh:
            match = re.search(r"CUDA Version (\d+\.\d+)", fh.read())
        return match.group(1) if match else None
    except OSError:
        return None


def torch_version_near(torch_include: Optional[str], built_at: Optional[float]) -> Dict[str, Any]:
    """The torch now installed where the build found its headers, and whether it changed since.

    ``.../torch/include`` has ``torch/version.py`` one level up (written when torch
    was installed, by pip or conda alike) and often ``torch-X.dist-info`` beside the
    torch package. When they are newer than the build, torch was reinstalled after
    the build: the version there is today's torch, not the build's.
    """
    result: Dict[str, Any] = {"installed_now": None, "reinstalled_after_build": None}
    if not torch_include:
        return result
    torch_dir = os.path.dirname(torch_include)
    site = os.path.dirname(torch_dir)
    stamps = []
    version_py = os.path.join(torch_dir, "version.py")
    try:
        with open(version_py, encoding="utf-8") as fh:
            match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", fh.read(), re.M)
        result["installed_now"] = match.group(1) if match else None
        stamps.append(os.stat(version_py).st_mtime)
    except OSError:
        pass
    try:
        names = os.listdir(site)
    except OSError:
        names = []
    for name in names:
        match = re.match(r"^torch-([^-]+)\.(?:dist-info|egg-info)$", name)
        if match:
            result["installed_now"] = result["installed_now"] or match.group(1)
            try:
                stamps.append(os.stat(os.path.join(site, name)).st_mtime)
            except OSError:
                pass
            break
    if stamps and built_at is not None:
        result["reinstalled_after_build"] = max(stamps) > built_at + 1
    return result
