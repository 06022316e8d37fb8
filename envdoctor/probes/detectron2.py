"""The detectron2 probe: version, whether it imports, and what its compiled ``_C`` was built with.

Runs in a subprocess of the diagnosed Python (importing detectron2 imports
torch, which may crash or hang). Not installed is normal, not a problem: the
fact is then unavailable with "not installed" and detectron2 rules are skipped.
"""
from __future__ import annotations

import json
import os
import re
import signal
from typing import Any, Dict, List, Optional

from envdoctor.model import Fact
from envdoctor.parsers import elf
from envdoctor.probes import _ext_device, builds
from envdoctor.probes._inproc import find_spec_as_child, same_interpreter, spec_location
from envdoctor.probes.base import Probe, ProbeContext
from envdoctor.runner import CommandResult

MARK = "@@envdoctor-d2 "
TIMEOUT = 60.0
NOT_INSTALLED = "not installed"
QUICK = "not tested (quick mode)"

# Python 3.6+ syntax, standard library only: it runs in the user's interpreter.
SCRIPT = r'''
import importlib.util, json, os, sys
MARK = "@@envdoctor-d2 "
def emit(section, data):
    sys.stdout.write(MARK + json.dumps({"section": section, "data": data}, default=str) + "\n")
    sys.stdout.flush()
def err(exc):
    return "{}: {}".format(type(exc).__name__, exc)
try:
    spec = importlib.util.find_spec("detectron2")
except Exception as exc:
    spec = None
if spec is None:
    emit("installed", {"installed": False})
    sys.exit(0)
location = list(spec.submodule_search_locations or [])[:1] or [os.path.dirname(spec.origin or "")]
emit("installed", {"installed": True, "path": location[0],
                   "c_files": sorted(n for n in os.listdir(location[0]) if n.startswith("_C"))})
if "--quick" in sys.argv[1:]:
    # No import (it imports torch): the version from the package's own file.
    import re
    try:
        with open(os.path.join(location[0], "__init__.py"), encoding="utf-8") as fh:
            found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", fh.read(), re.M)
    except OSError:
        found = None
    emit("quick", {"version": found.group(1) if found else None})
    sys.exit(0)
try:
    import detectron2
    emit("package", {"version": getattr(detectron2, "__version__", None), "path": os.path.dirname(detectron2.__file__)})
except BaseException as exc:
    emit("package", {"error": err(exc)})
    sys.exit(0)
try:
    from detectron2 import _C
except BaseException as exc:
    emit("c", {"error": err(exc)})
    sys.exit(0)
data = {}
for name in ("get_cuda_version", "get_compiler_version"):
    try:
        data[name] = str(getattr(_C, name)())
    except BaseException as exc:
        data[name] = None
        data[name + "_error"] = err(exc)
emit("c", data)
'''


def probe_detectron2(ctx: ProbeContext) -> List[Fact]:
    sections = _sections_in_process(ctx)
    result = CommandResult((ctx.python, "-c"), 0)
    if sections is None:
        env = dict(ctx.env)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        argv = [ctx.python, "-c", SCRIPT] + (["--quick"] if ctx.quick else [])
        result = ctx.runner.run(argv, timeout=max(TIMEOUT, ctx.timeout), env=env)
        sections = _sections(result.stdout)
    source = f"{ctx.python}: import detectron2, detectron2._C"
    raw = (result.stderr or "").strip()[-4000:] or None
    installed = sections.get("installed")
    if installed is None:
        return [Fact.unavailable("detectron2", "could not check detectron2: " + _failure(result), source=source,
                                 raw=raw)]
    if not installed.get("installed"):
        return [Fact.unavailable("detectron2", NOT_INSTALLED, source=source)]
    value = detectron2_value(sections, result)
    _add_build_facts(value)
    return [Fact("detectron2", value, source=source, raw=raw)]


def _sections_in_process(ctx: ProbeContext) -> Optional[Dict[str, Dict[str, Any]]]:
    """What SCRIPT would print, computed here when no import is needed (not installed, or quick
    mode) and the diagnosed Python is this one: detectron2 is usually absent, and finding that
    out must not cost an interpreter start beside the torch import. None: run SCRIPT."""
    if not same_interpreter(ctx):
        return None
    location = spec_location(find_spec_as_child("detectron2", ""))  # `python -c`: cwd first
    if location is None:
        return {"installed": {"installed": False}}
    if not ctx.quick:
        return None  # importing it (and torch) is the point: in a child, as before
    try:
        c_files = sorted(n for n in os.listdir(location) if n.startswith("_C"))
    except OSError:
        return None  # let the child report it the way it always has
    try:
        with open(os.path.join(location, "__init__.py"), encoding="utf-8") as fh:
            found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", fh.read(), re.M)
    except OSError:
        found = None
    return {"installed": {"installed": True, "path": location, "c_files": c_files},
            "quick": {"version": found.group(1) if found else None}}


def _add_build_facts(value: Dict[str, Any]) -> None:
    """What the files say even when ``_C`` does not import: its CUDA (from the libraries it
    needs) and, for a source install with its ``build/`` dir, the torch it was built against."""
    package = value.get("path")
    if not package:
        return
    for name in value.get("c_files") or []:
        if name.endswith(".so"):
            needs = elf.cuda_from_needed(elf.read_dynamic(os.path.join(package, name))["needed"])
            value["c_needs_cuda"] = needs["cuda"]
            # Whether _C has kernels at all: its fatbin, read from the file (no GPU, no import needed).
            code = _ext_device.device_code(os.path.join(package, name))
            value["c_path"] = os.path.join(package, name)
            value["c_device"] = {"sm": code["sm"], "ptx": code["ptx"], "error": code["error"]}
            value["c_has_cuda"] = None if code["error"] else bool(code["sm"] or code["ptx"])
            if value.get("cuda") is None and value.get("imports") is not True:
                value["cuda"] = needs["cuda"]  # "11" from libcudart.so.11.0: the major is what is known
    build = os.path.join(os.path.dirname(package.rstrip("/")), "build")
    if os.path.isdir(build) and value.get("torch_built") is None:
        try:
            built_with = builds.describe_build_dir(build)["built_with"]
        except (OSError, ValueError, UnicodeError):
            return
        value["build_dir"] = build
        if not built_with.get("torch_reinstalled_after_build"):
            value["torch_built"] = built_with.get("torch")


def _sections(stdout: str) -> Dict[str, Dict[str, Any]]:
    found: Dict[str, Dict[str, Any]] = {}
    for line in stdout.splitlines():
        if line.startswith(MARK):
            try:
                item = json.loads(line[len(MARK):])
            except ValueError:
                continue
            if isinstance(item, dict) and isinstance(item.get("data"), dict):
                found[str(item.get("section"))] = item["data"]
    return found


def _failure(result: Any) -> str:
    if result.error:
        return result.error
    if result.returncode is not None and result.returncode < 0:
        try:
            return f"the process was killed by {signal.Signals(-result.returncode).name}"
        except ValueError:
            return f"the process was killed by signal {-result.returncode}"
    lines = (result.stderr or result.stdout or "").strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode} without output"


def detectron2_value(sections: Dict[str, Dict[str, Any]], result: Any) -> Dict[str, Any]:
    installed, package, c = sections["installed"], sections.get("package"), sections.get("c")
    value: Dict[str, Any] = {"version": None, "path": installed.get("path"), "cuda": None, "compiler": None,
                             "torch_built": None, "imports": False, "import_error": None,
                             "c_files": installed.get("c_files") or []}
    if "quick" in sections:
        value.update(version=sections["quick"].get("version"), imports=None, import_error=QUICK)
        return value
    if package is None or c is None:
        # The process died or hung on the way: that is the import error.
        value["import_error"] = _failure(result)
    if package is not None:
        value["version"] = package.get("version")
        value["path"] = package.get("path") or value["path"]
        if package.get("error"):
            value["import_error"] = package["error"]
            return value
    if c is not None:
        if c.get("error"):
            value["import_error"] = c["error"]
            return value
        value["imports"] = True
        value["cuda"] = cuda_of(c.get("get_cuda_version"))
        value["c_cuda_version"] = c.get("get_cuda_version")  # its own words: "not available" on a CPU build
        value["compiler"] = c.get("get_compiler_version")
    return value


def cuda_of(text: Optional[str]) -> Optional[str]:
    """detectron2's ``_C.get_cuda_version()``: "CUDA 11.1" -> "11.1"; "not available" (CPU build) -> None."""
    if not text:
        return None
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match and "HIP" not in text else None


PROBE = Probe(name="detectron2", fn=probe_detectron2, keys=("detectron2",), slow=True)
