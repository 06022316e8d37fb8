"""GPU product name -> compute capability, tolerant of how tools print names.

nvidia-smi prints "NVIDIA A100-SXM4-80GB", "Tesla V100-SXM2-32GB",
"NVIDIA H100 80GB HBM3" and, in its table view, truncates to 18 characters
plus "..." ("GeForce RTX 208..."). Matching is on words:

* brand words (NVIDIA, GeForce, Tesla) are ignored wherever they appear;
* a table name must be a word prefix of the query; the remaining words may be
  memory / form-factor suffixes ("80GB", "SXM4", "PCIe", "HBM3", "NVL",
  "Generation") -> match "exact";
* remaining "Ti" / "Super" words fall back to the base model -> "base_model",
  and laptop words ("Laptop GPU", "Max-Q", "Mobile") -> "variant"; both are
  flagged unverified because the table does not list those products;
* a truncated name answers only if it still contains a 3+ digit model number
  and every table product it could be shares one compute capability ->
  "truncated", flagged unverified. "GeForce RTX 208..." gives 7.5 (2080,
  2080 Ti and 2080 Super are all 7.5); "GeForce GTX TIT..." gives None (no
  model number: GTX TITAN X is 5.2 but GTX TITAN / Black / Z are 3.5).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Dict, List, Optional, Tuple

from . import _data

_BRAND_WORDS = frozenset({"nvidia", "geforce", "tesla"})
_NOISE_WORD = re.compile(r"^(?:[0-9]+(?:gb|g)|sxm[0-9]*|pcie|pci|nvl|hbm[0-9]*e?|generation)$", re.ASCII)
_BASE_MODEL_WORDS = frozenset({"ti", "super"})
_VARIANT_WORDS = frozenset({"laptop", "gpu", "mobile", "max", "q"})
_TRUNCATION = ("...", "\u2026")
_MODEL_NUMBER = re.compile(r"[0-9]{3,}", re.ASCII)
_MAX_NAME = 120


def _words(name: str) -> Tuple[str, ...]:
    text = re.sub(r"[-_/,]", " ", name.lower())
    return tuple(w for w in text.split() if w not in _BRAND_WORDS)


@lru_cache(maxsize=None)
def _entries() -> Tuple[Tuple[Tuple[str, ...], Dict[str, Any]], ...]:
    entries = []
    for row in _data.rows("gpu_cc"):
        for printed in [row["name"], *row.get("aliases", [])]:
            entries.append((_words(printed), row))
    return tuple(entries)


def _classify(rest: Tuple[str, ...]) -> Optional[str]:
    """How a query's words beyond a table name relate to it, or None if unrelated."""
    kind = "exact"
    for word in rest:
        if _NOISE_WORD.match(word):
            continue
        if word in _BASE_MODEL_WORDS:
            kind = "base_model" if kind == "exact" else kind
        elif word in _VARIANT_WORDS:
            kind = "variant"
        else:
            return None
    return kind


def _match_words(words: Tuple[str, ...]) -> Optional[Tuple[Dict[str, Any], str]]:
    best: Optional[Tuple[int, Dict[str, Any], str]] = None
    for table_words, row in _entries():
        n = len(table_words)
        if n == 0 or words[:n] != table_words:
            continue
        kind = _classify(words[n:])
        if kind is not None and (best is None or n > best[0]):
            best = (n, row, kind)
    return (best[1], best[2]) if best else None


def _match_truncated(words: Tuple[str, ...]) -> Optional[Dict[str, Any]]:
    joined = " ".join(words)
    if not _MODEL_NUMBER.search(joined):
        return None
    candidates: List[Dict[str, Any]] = [row for tw, row in _entries() if " ".join(tw).startswith(joined)]
    # The last word may be cut short; the words before it are complete.
    whole = _match_words(words[:-1]) if len(words) > 1 else None
    if whole is not None:
        candidates.append(whole[0])
    ccs = {row["cc"] for row in candidates}
    return candidates[0] if len(ccs) == 1 else None


def _result(row: Dict[str, Any], match: str, query: str) -> Dict[str, Any]:
    return {
        "query": query,
        "name": row["name"],
        "cc": row["cc"],
        "arch": row["arch"],
        "architecture": row["architecture"],
        "match": match,
        "unverified": bool(row.get("unverified")) or match != "exact",
        "source": row["source"],
    }


def gpu_info(gpu_name: Any) -> Optional[Dict[str, Any]]:
    """The table row a printed GPU name matches, with how it matched; None if none."""
    if not isinstance(gpu_name, str):
        return None
    text = gpu_name.strip()
    if not text or len(text) > _MAX_NAME:
        return None
    truncated = text.endswith(_TRUNCATION)
    if truncated:
        text = text.rstrip(".\u2026 ")
    words = _words(text)
    if not words:
        return None
    if truncated:
        row = _match_truncated(words)
        return _result(row, "truncated", gpu_name) if row else None
    hit = _match_words(words)
    return _result(hit[0], hit[1], gpu_name) if hit else None


def compute_capability(gpu_name: Any) -> Optional[str]:
    """Compute capability "X.Y" of a printed GPU name, None when unknown or ambiguous."""
    info = gpu_info(gpu_name)
    return info["cc"] if info else None
