"""Loading of the packaged knowledge tables (``knowledge/data/*.json``).

Every data file has the shape ``{"schema_version": 1, "tables": {name: table}}``
and every table carries ``source``, ``date_read``, ``key`` (the row field that
names a row), ``bounds`` (whether range bounds are inclusive) and ``rows``.
Files are read once through importlib.resources, so the tables work from a
wheel, a zip or a source checkout alike; nothing else is touched.
"""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from importlib import resources
from typing import Any, Dict, List, Tuple

DATA_FILES: Tuple[str, ...] = (
    "cuda_driver",
    "cuda_gcc",
    "cuda_arch",
    "gpus",
    "torch_builds",
    "detectron2",
    "cudnn",
    "fleet_bandwidth",
)


@lru_cache(maxsize=None)
def load_file(name: str) -> Dict[str, Any]:
    """The parsed JSON of one data file (cached; callers must not mutate it)."""
    text = resources.files("envdoctor.knowledge").joinpath("data", f"{name}.json").read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=None)
def _index() -> Dict[str, Tuple[str, Dict[str, Any]]]:
    index: Dict[str, Tuple[str, Dict[str, Any]]] = {}
    for file_name in DATA_FILES:
        for table_name, table in load_file(file_name)["tables"].items():
            if table_name in index:
                # Two files defining one table would make lookups depend on order.
                raise ValueError(f"knowledge table {table_name!r} defined twice")
            index[table_name] = (file_name, table)
    return index


def table(name: str) -> Dict[str, Any]:
    """The raw table (shared, read-only by convention)."""
    return _index()[name][1]


def rows(name: str) -> List[Dict[str, Any]]:
    return table(name)["rows"]


def tables() -> Dict[str, Dict[str, Any]]:
    """name -> metadata of every table: source, date_read, bounds, ... (no rows).

    Adds ``file`` (data file), ``row_count`` and ``unverified_keys`` (the keys
    of rows flagged unverified) so reports and docs can cite them.
    """
    result: Dict[str, Dict[str, Any]] = {}
    for name, (file_name, tbl) in _index().items():
        meta = {k: copy.deepcopy(v) for k, v in tbl.items() if k != "rows"}
        meta["file"] = f"knowledge/data/{file_name}.json"
        meta["row_count"] = len(tbl["rows"])
        meta["unverified_keys"] = [str(r.get(tbl["key"])) for r in tbl["rows"] if row_unverified(r)]
        result[name] = meta
    return result


def is_unverified(table_name: str, key: Any) -> bool:
    """True when the row of ``table_name`` whose key equals ``key`` is flagged unverified.

    Unknown tables or keys give False: there is no cell, so nothing rests on it.
    """
    try:
        tbl = table(table_name)
    except KeyError:
        return False
    wanted = str(key).strip().casefold()
    for row in tbl["rows"]:
        if str(row.get(tbl["key"])).casefold() == wanted:
            return row_unverified(row)
    return False


def row_unverified(row: Dict[str, Any]) -> bool:
    """A row is unverified when flagged whole, or when some of its fields are
    (``unverified_fields``: e.g. a torch release whose torchaudio pin is unread)."""
    return bool(row.get("unverified") or row.get("unverified_fields"))


def find_row(table_name: str, key: Any) -> Dict[str, Any] | None:
    """A deep copy of the row with that key, or None."""
    tbl = table(table_name)
    wanted = str(key).strip().casefold()
    for row in tbl["rows"]:
        if str(row.get(tbl["key"])).casefold() == wanted:
            return copy.deepcopy(row)
    return None
