"""Find and rewrite torch C++ APIs that current torch no longer compiles.

The MSDeformAttn sources that Mask2Former and Deformable DETR ship (and many
forks of them) were written for torch 1.x: ``AT_DISPATCH_*(value.type(), ...)``
stops compiling once ``DeprecatedTypeProperties`` no longer converts to
``ScalarType``; older forks also include ``THC/THC.h`` (removed in torch 1.11)
and use ``AT_CHECK`` and ``.data<T>()``.

:func:`scan` names each such line (the check probes call it); :func:`patch_text`
is the pure rewrite ``fix`` shows as a diff. Every rewrite keeps the number of
lines, so line numbers in the scan and in compiler errors stay valid.
"""
from __future__ import annotations

import difflib
import os
import re
from typing import Callable, Dict, Iterable, List, Tuple, Union

SOURCE_SUFFIXES = (".cpp", ".cc", ".cxx", ".cu", ".cuh", ".h", ".hpp")
SKIP_DIRS = {"build", ".git", "__pycache__", "dist"}

_IDENT_CHAIN = r"[A-Za-z_]\w*(?:(?:\.|->)[A-Za-z_]\w*)*"
Replacement = Union[str, Callable[["re.Match[str]"], str]]


def _thc_include(m: "re.Match[str]") -> str:
    header = m.group(2)
    if header == "THC.h":
        return "#include <ATen/cuda/CUDAContext.h>"
    if header == "THCAtomics.cuh":
        return "#include <ATen/cuda/Atomic.cuh>"
    # Other THC headers have no direct successor; what they offered is in ATen/CUDA now.
    return f"// envdoctor: removed {m.group(0).strip()} (THC was removed from torch)"


# (api name, pattern, replacement); applied in this order.
RULES: Tuple[Tuple[str, "re.Pattern[str]", Replacement], ...] = (
    ("x.type().is_cuda()", re.compile(r"\.type\(\)\s*\.is_cuda\(\)"), ".is_cuda()"),
    ("x.type().is_sparse()", re.compile(r"\.type\(\)\s*\.is_sparse\(\)"), ".is_sparse()"),
    ("x.type().scalarType()", re.compile(r"\.type\(\)\s*\.scalarType\(\)"), ".scalar_type()"),
    ("AT_DISPATCH_*(x.type(), ...)",
     re.compile(r"(AT_DISPATCH_\w+\s*\(\s*)(" + _IDENT_CHAIN + r")\.type\(\)"), r"\1\2.scalar_type()"),
    ("AT_CHECK", re.compile(r"\bAT_CHECK\s*\("), "TORCH_CHECK("),
    (".data<T>()", re.compile(r"\.data\s*<\s*([\w:]+(?:\s*<[\w:\s,]*>)?\s*\*?)\s*>\s*\(\)"), r".data_ptr<\1>()"),
    ("THC include", re.compile(r"#\s*include\s*([<\"])THC/(\w+\.\w+)[>\"]"), _thc_include),
    ("THCudaCheck", re.compile(r"\bTHCudaCheck\s*\("), "C10_CUDA_CHECK("),
    ("THCState_getCurrentStream", re.compile(r"\bTHCState_getCurrentStream\s*\(\s*\w*\s*\)"),
     "at::cuda::getCurrentCUDAStream()"),
    ("THCState", re.compile(r"^[ \t]*(?:extern\s+)?THCState\s*\*\s*\w+\s*(?:=[^;\n]*)?;", re.M),
     lambda m: "// envdoctor: removed " + m.group(0).strip() + " (THC was removed from torch)"),
    ("THCCeilDiv", re.compile(r"\bTHCCeilDiv\s*\("), "at::ceil_div("),
)


def _decode(data: bytes) -> str:
    # surrogateescape keeps bytes that are not UTF-8 through the round trip.
    return data.decode("utf-8", errors="surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _apply_rules(text: str) -> Tuple[str, List[Tuple[str, int]]]:
    """The patched text and, per rewrite, (api, 1-based line)."""
    hits: List[Tuple[str, int]] = []
    for api, pattern, repl in RULES:
        for m in pattern.finditer(text):
            # The line holding the end of the match is where the deprecated call sits.
            hits.append((api, _line_of(text, max(m.start(), m.end() - 1))))
        text = pattern.sub(repl, text)
    return text, hits


def patch_text(text: str) -> str:
    """The rewritten source (same number of lines)."""
    return _apply_rules(text)[0]


def patch_bytes(data: bytes) -> bytes:
    return _encode(patch_text(_decode(data)))


def iter_source_files(path: str) -> Iterable[str]:
    """``path`` itself if a file, else the C++/CUDA sources below it (no build dirs, no links)."""
    if os.path.isfile(path):
        yield path
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not os.path.islink(os.path.join(root, d)))
        for name in sorted(files):
            full = os.path.join(root, name)
            if name.endswith(SOURCE_SUFFIXES) and not os.path.islink(full):
                yield full


def scan_file(path: str) -> List[Dict[str, object]]:
    with open(path, "rb") as fh:
        text = _decode(fh.read())
    patched, hits = _apply_rules(text)
    old_lines, new_lines = text.split("\n"), patched.split("\n")
    result = []
    for api, line in sorted(hits, key=lambda h: h[1]):
        result.append({"file": path, "line": line, "api": api, "text": old_lines[line - 1].strip(),
                       "replacement": new_lines[line - 1].strip()})
    return result


def scan(path: str) -> List[Dict[str, object]]:
    """Every deprecated API use under ``path``: dicts with file, line, api, text, replacement."""
    found: List[Dict[str, object]] = []
    for name in iter_source_files(path):
        try:
            found.extend(scan_file(name))
        except OSError:
            continue  # unreadable file: the probe reports what it could read
    return found


def unified_diff(path: str, old: bytes, new: bytes) -> str:
    """A ``diff -u`` style text for showing a planned change."""
    # For showing only: bytes that are not UTF-8 appear as \xNN escapes.
    a = old.decode("utf-8", errors="backslashreplace").splitlines(keepends=True)
    b = new.decode("utf-8", errors="backslashreplace").splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, fromfile=f"a{path}" if path.startswith("/") else f"a/{path}",
                                 tofile=f"b{path}" if path.startswith("/") else f"b/{path}")
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


# Deformable-DETR's ops/setup.py builds the CUDA op only when torch sees a GPU, and raises
# "Cuda is not availabel" otherwise; Mask2Former's copy also accepts FORCE_CUDA=1. The same
# escape hatch makes the first buildable on a machine (or in a container) without a GPU.
_GPU_ONLY_SETUP = re.compile(r"\btorch\.cuda\.is_available\(\)(\s+and\s+CUDA_HOME\s+is\s+not\s+None)")


def patch_setup_text(text: str) -> str:
    """setup.py accepting FORCE_CUDA=1 where it insisted on a visible GPU (same number of lines);
    unchanged when it already reads FORCE_CUDA or does not import os."""
    if "FORCE_CUDA" in text or not re.search(r"^\s*import\s+os\b", text, re.M):
        return text
    return _GPU_ONLY_SETUP.sub(r'(torch.cuda.is_available() or os.environ.get("FORCE_CUDA") == "1")\1', text)


def patch_setup_bytes(data: bytes) -> bytes:
    return _encode(patch_setup_text(_decode(data)))
