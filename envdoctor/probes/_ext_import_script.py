"""Try to load compiled torch extensions in the diagnosed Python; one marked JSON line per file.

Run as ``python _ext_import_script.py SO_PATH...`` by ``envdoctor.probes.builds``.
Standard library only, Python 3.6+ syntax (it runs in the user's interpreter).
A ``start`` line precedes each attempt, so that when loading one file kills the
process (a segfault in a static initialiser) the parent knows which one it was.
"""
import importlib.machinery
import importlib.util
import json
import os
import re
import sys

MARK = "@@envdoctor-import "


def emit(item):
    sys.stdout.write(MARK + json.dumps(item) + "\n")
    sys.stdout.flush()


def error_text(exc):
    return "{}: {}".format(type(exc).__name__, exc)


def abi_mismatch(path):
    """A ``cpython-38`` file cannot load into 3.11: say so instead of a confusing loader error."""
    match = re.search(r"\.cpython-(\d)(\d+)", os.path.basename(path))
    if not match:
        return None
    built = (int(match.group(1)), int(match.group(2)))
    if built != tuple(sys.version_info[:2]):
        return "built for CPython {}.{}; this Python is {}.{}".format(built[0], built[1], *sys.version_info[:2])
    return None


def load_module(path):
    name = os.path.basename(path).split(".")[0]
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def try_load(torch, path):
    mismatch = abi_mismatch(path)
    if mismatch:
        return False, mismatch, None
    try:
        module = load_module(path)
        return True, None, sorted(n for n in dir(module) if not n.startswith("__"))
    except ImportError as exc:
        if "module export function" not in str(exc):
            return False, error_text(exc), None
    except BaseException as exc:  # noqa: BLE001 - a static initialiser may raise anything
        return False, error_text(exc), None
    # No PyInit_: an operator library (TORCH_LIBRARY), loaded the way torch loads them.
    try:
        torch.ops.load_library(path)
        return True, None, None
    except BaseException as exc:  # noqa: BLE001
        return False, error_text(exc), None


def main(paths):
    try:
        import torch
    except BaseException as exc:  # noqa: BLE001
        for path in paths:
            emit({"path": path, "ok": None, "error": "not tested: torch does not import ({})".format(error_text(exc))})
        return
    for path in paths:
        emit({"path": path, "start": True})
        ok, error, names = try_load(torch, path)
        emit({"path": path, "ok": ok, "error": error, "names": names})


if __name__ == "__main__":
    main(sys.argv[1:])
