"""Import declared modules in fresh interpreters, and read the device code of their binaries.

Run for the ``imports`` and ``cuda_kernels`` requirements (``envdoctor/require.py``),
not by every check: it is not in ``PROBE_MODULES``. Each module is imported in its
own child of the diagnosed Python (argv list, timeout), so one that segfaults or
hangs costs only its own verdict. The child prints where the module lives; the
binaries there are read for device code with ``envdoctor.parsers.fatbin``.

Facts:
- ``import_check``: ``{module: {"status": "ok"|"import_error"|"crashed"|"timeout", "message", "file"}}``
- ``device_code``: ``{module: {"file", "binaries": [{"path", "archs", "error"}], "error"}}``
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Sequence

from envdoctor.model import Fact
from envdoctor.parsers import fatbin
from envdoctor.probes.base import ProbeContext

MARK = "@@envdoctor-module "
IMPORT_TIMEOUT = 60.0  # importing torch takes 2-8 s; a hang must still end
MAX_BINARIES = 200  # shared objects read under one package directory

# The child imports argv[1] and says where it lives. The name is data, never code.
_CHILD = (
    "import importlib, json, sys\n"
    "name = sys.argv[1]\n"
    "try:\n"
    "    module = importlib.import_module(name)\n"
    "except BaseException as exc:\n"
    "    print(sys.argv[2] + json.dumps({'ok': False, 'error': type(exc).__name__ + ': ' + str(exc)}))\n"
    "    sys.exit(0)\n"
    "paths = list(getattr(module, '__path__', None) or [])\n"
    "print(sys.argv[2] + json.dumps({'ok': True, 'file': getattr(module, '__file__', None),"
    " 'package_dir': paths[0] if paths else None}))\n"
)


def import_module(ctx: ProbeContext, name: str) -> Dict[str, Any]:
    env = dict(ctx.env)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    res = ctx.runner.run([ctx.python, "-c", _CHILD, name, MARK], env=env,
                         timeout=max(IMPORT_TIMEOUT, ctx.timeout))
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith(MARK)), None)
    if res.error and res.error.startswith("timed out"):
        return {"status": "timeout", "message": f"import {name} {res.error}", "file": None, "package_dir": None}
    if line is None:
        tail = (res.stderr or res.stdout).strip().splitlines()
        if res.returncode is not None and res.returncode < 0:
            why = f"the interpreter was killed by signal {-res.returncode} while importing {name}"
        else:
            why = res.describe_failure()
        return {"status": "crashed", "message": why + (f": {tail[-1]}" if tail else ""), "file": None,
                "package_dir": None}
    item = json.loads(line[len(MARK):])
    if not item.get("ok"):
        return {"status": "import_error", "message": item.get("error") or "", "file": None, "package_dir": None}
    return {"status": "ok", "message": "", "file": item.get("file"), "package_dir": item.get("package_dir")}


def binaries_of(outcome: Dict[str, Any]) -> List[str]:
    """The shared objects a module is made of: itself, or those under its package directory."""
    file = outcome.get("file") or ""
    if file.endswith(".so") or ".so." in os.path.basename(file):
        return [file]
    found: List[str] = []
    directory = outcome.get("package_dir")
    if directory and os.path.isdir(directory):
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(".so") or ".so." in name:
                    found.append(os.path.join(root, name))
                    if len(found) >= MAX_BINARIES:
                        return found
    return found


def probe_imports(ctx: ProbeContext, modules: Sequence[str], kernels: Sequence[str] = ()) -> List[Fact]:
    names = list(dict.fromkeys(list(modules) + list(kernels)))
    if not names:
        return []
    with ThreadPoolExecutor(max_workers=min(4, len(names))) as pool:
        outcomes = dict(zip(names, pool.map(lambda n: import_module(ctx, n), names)))
    source = f"{ctx.python} -c 'import MODULE' (one fresh interpreter per module)"
    facts = [Fact("import_check", {n: {k: v for k, v in o.items() if k != "package_dir"}
                                   for n, o in outcomes.items()}, source=source)]
    if kernels:
        device: Dict[str, Any] = {}
        for name in kernels:
            outcome = outcomes[name]
            if outcome["status"] != "ok":
                device[name] = {"file": None, "binaries": [], "error": f"does not import: {outcome['message']}"}
                continue
            binaries = []
            for path in binaries_of(outcome):
                read = fatbin.device_archs(path)
                binaries.append({"path": path, "archs": read["archs"], "error": read["error"]})
            device[name] = {"file": outcome.get("file"), "binaries": binaries,
                            "error": None if binaries else "no compiled binary (.so) found for this module"}
        facts.append(Fact("device_code", device, source=".nv_fatbin sections of the modules' binaries"))
    return facts
