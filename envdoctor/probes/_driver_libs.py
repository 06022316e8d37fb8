"""The driver's own libraries (NVML and libcuda), asked once per check in a bounded child.

The library files are looked up here, under the probe context's root, in the
order the dynamic loader uses (``LD_LIBRARY_PATH``, the ``ld.so.conf``
directories, the default directories), and the child
(``_driver_script.py``) is given those absolute paths. So a fake machine never
loads the real machine's libcuda, and on a real one the child loads exactly the
file a CUDA program would.

Both the driver and the gpus probe need the answer; they run concurrently, so
the first one to ask runs the child and the other waits for its result.
"""
from __future__ import annotations

import glob
import json
import os
import re
import threading
import time
import weakref
from typing import Any, Dict, List, Optional, Tuple

from envdoctor.probes import _prestart
from envdoctor.probes.base import ProbeContext, read_text
from envdoctor.runner import CommandResult, Runner, base_env, decode_output

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_driver_script.py")
LIBCUDA = "libcuda.so.1"
NVML = "libnvidia-ml.so.1"
TIMEOUT = 10.0  # cuInit on a machine with many GPUs takes seconds; a hung driver must still end
MAX_CANDIDATES = 4

# Default directories, after LD_LIBRARY_PATH and ld.so.conf. /usr/lib/wsl/lib is where
# WSL2 puts the Windows driver's libcuda; /usr/local/nvidia is where older NVIDIA
# container runtimes mount the driver.
DEFAULT_DIRS = (
    "/usr/lib/wsl/lib",
    "/usr/local/nvidia/lib64",
    "/usr/local/nvidia/lib",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu/nvidia/current",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
)

# NVML return codes (nvml.h) that name a state.
NVML_ERRORS = {
    1: "NVML_ERROR_UNINITIALIZED",
    2: "NVML_ERROR_INVALID_ARGUMENT",
    3: "NVML_ERROR_NOT_SUPPORTED",
    4: "NVML_ERROR_NO_PERMISSION",
    6: "NVML_ERROR_NOT_FOUND",
    9: "NVML_ERROR_DRIVER_NOT_LOADED",
    12: "NVML_ERROR_LIBRARY_NOT_FOUND",
    17: "NVML_ERROR_GPU_IS_LOST",
    18: "NVML_ERROR_LIB_RM_VERSION_MISMATCH",
    999: "NVML_ERROR_UNKNOWN",
}
NVML_LIB_RM_VERSION_MISMATCH = 18

_VERSION_IN_NAME = re.compile(r"^lib(?:cuda|nvidia-ml)\.so\.(\d+\.\d+(?:\.\d+)?)$")


def _ld_so_conf_dirs(ctx: ProbeContext) -> List[str]:
    """Directories listed in /etc/ld.so.conf and the files it includes (one level of include)."""
    dirs: List[str] = []
    pending = [ctx.path("/etc/ld.so.conf")]
    seen = set()
    while pending:
        conf = pending.pop(0)
        if conf in seen or len(seen) > 64:
            continue
        seen.add(conf)
        for line in (read_text(conf) or "").splitlines():
            line = line.split("#", 1)[0].strip()
            words = line.split(None, 1)
            if words and words[0] == "include" and len(words) == 2:
                pattern = words[1] if words[1].startswith("/") else os.path.join("/etc", words[1])
                pending.extend(sorted(glob.glob(ctx.path(pattern))))
            elif line.startswith("/"):
                dirs.append(ctx.path(line))
    return dirs


def library_dirs(ctx: ProbeContext) -> List[str]:
    """Where the loader looks, in its order. LD_LIBRARY_PATH entries are taken as
    written (like PATH); the others are resolved under the context's root."""
    dirs = [d for d in ctx.env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    dirs += _ld_so_conf_dirs(ctx)
    dirs += [ctx.path(d) for d in DEFAULT_DIRS]
    unique: List[str] = []
    for entry in dirs:
        if entry not in unique:
            unique.append(entry)
    return unique


def candidates(ctx: ProbeContext, name: str, dirs: Optional[List[str]] = None) -> List[str]:
    found: List[str] = []
    real: List[str] = []
    for directory in dirs if dirs is not None else library_dirs(ctx):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            resolved = os.path.realpath(path)
            if resolved not in real:  # /lib and /usr/lib are often one directory
                found.append(path)
                real.append(resolved)
        if len(found) >= MAX_CANDIDATES:
            break
    return found


def version_in_name(path: Optional[str]) -> Optional[str]:
    """"535.309.01" from ".../libcuda.so.535.309.01" (the driver packages name the file so)."""
    if not path:
        return None
    match = _VERSION_IN_NAME.match(os.path.basename(path))
    return match.group(1) if match else None


def cuda_text(code: Any) -> Optional[str]:
    """12020 -> "12.2" (cuDriverGetVersion / nvmlSystemGetCudaDriverVersion encoding)."""
    if not isinstance(code, int) or code <= 0:
        return None
    return f"{code // 1000}.{(code % 1000) // 10}"


def child_argv(ctx: ProbeContext, request: Dict[str, List[str]]) -> List[str]:
    return [ctx.python, "-I", "-S", SCRIPT, json.dumps(request, sort_keys=True)]


def run_child(ctx: ProbeContext, request: Dict[str, List[str]], early=None) -> Dict[str, Any]:
    """Run the child on the resolved library files and read what it printed. ``early``:
    the same command already started by ``prestart``, as ``(Popen, monotonic start)``."""
    argv = child_argv(ctx, request)
    timeout = min(ctx.timeout, TIMEOUT)
    if early is not None:
        proc, started = early
        out, err, code, error = _prestart.read_until_done(proc, started, timeout)
        result = CommandResult(tuple(argv), code, decode_output(out), decode_output(err), error=error,
                               duration=time.monotonic() - started)
    else:
        result = ctx.runner.run(argv, timeout=timeout)
    report: Dict[str, Any] = {"request": request}
    for line in (result.stdout or "").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            report.update({k: v for k, v in item.items() if k in ("nvml", "libcuda") and isinstance(v, dict)})
    if result.error:
        report["child_error"] = result.error
    elif result.returncode != 0:
        report["child_error"] = result.describe_failure()
    missing = [key for key in request if request[key] and key not in report]
    if missing and "child_error" not in report:
        report["child_error"] = "the child reported nothing for " + ", ".join(missing)
    report["raw"] = result.output[-4000:]
    return report


def _search(ctx: ProbeContext) -> Tuple[List[str], Dict[str, List[str]]]:
    """(the directories searched, the library files found in them)."""
    dirs = library_dirs(ctx)
    return dirs, {"nvml": candidates(ctx, NVML, dirs), "libcuda": candidates(ctx, LIBCUDA, dirs)}


def _child_env(ctx: ProbeContext) -> Dict[str, str]:
    """The environment ``Runner.run`` gives the child (the early one must get the same)."""
    return base_env(env=ctx.runner.env)


def _observe(ctx: ProbeContext) -> Dict[str, Any]:
    dirs, request = _search(ctx)
    wanted = {k: v for k, v in request.items() if v}
    # The child `prestart` started on this machine, adopted if it runs this very command (else killed).
    early = _prestart.take_with_extra(child_argv(ctx, wanted), _child_env(ctx), "driver") \
        if type(ctx.runner) is Runner and ctx.root in ("", "/") else None
    # Seen before the libraries load: run as root, libcuda creates missing /dev/nvidia* nodes itself.
    # (An early child loaded them before this probe ran: its start listed them.)
    nodes = early[2] if early is not None else device_nodes(ctx)
    if not wanted:
        return {"request": request, "searched": dirs, "device_nodes": nodes}
    report = run_child(ctx, wanted, early[:2] if early is not None and early[0] is not None else None)
    report.update(request=request, searched=dirs, device_nodes=nodes)
    return report


def prestart() -> bool:
    """Start the child for this machine now (``envdoctor check``'s entry point calls this before
    the CLI is imported): the probe adopts it when it asks exactly the same (see ``_prestart``)."""
    ctx = ProbeContext(env=dict(os.environ), paths=())
    _dirs, request = _search(ctx)
    wanted = {k: v for k, v in request.items() if v}
    if not wanted:
        return False
    nodes = device_nodes(ctx)
    return _prestart.start("driver", child_argv(ctx, wanted), _child_env(ctx), nodes)


class _Slot:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Dict[str, Any] = {}


_lock = threading.Lock()
_slots: Dict[int, Tuple["weakref.ref[ProbeContext]", _Slot]] = {}


def observe(ctx: ProbeContext) -> Dict[str, Any]:
    """What NVML and libcuda say on this context's machine; the child runs once per context."""
    with _lock:
        for key in [k for k, (ref, _) in _slots.items() if ref() is None]:
            del _slots[key]
        entry = _slots.get(id(ctx))
        owner = entry is None or entry[0]() is not ctx
        if owner:
            slot = _Slot()
            _slots[id(ctx)] = (weakref.ref(ctx), slot)
        else:
            slot = entry[1]
    if owner:
        try:
            slot.value = _observe(ctx)
        except Exception as exc:  # the waiting probe must not wait forever
            slot.value = {"child_error": f"{type(exc).__name__}: {exc}"}
        finally:
            slot.done.set()
    slot.done.wait()
    return slot.value


# ---------------------------------------------------------------- the machine around the driver

def device_nodes(ctx: ProbeContext) -> List[str]:
    """/dev/nvidia0, /dev/nvidiactl, /dev/nvidia-uvm, ... (as /dev names)."""
    base = ctx.path("/dev")
    return ["/dev/" + os.path.basename(p) for p in sorted(glob.glob(os.path.join(base, "nvidia*")))]


def is_wsl(ctx: ProbeContext) -> bool:
    text = (read_text(ctx.path("/proc/version"), 4096) or "").lower()
    return "microsoft" in text or os.path.isdir(ctx.path("/usr/lib/wsl/lib"))


def container(ctx: ProbeContext) -> Optional[str]:
    """"docker", "podman", "kubernetes", "containerd", "lxc", "container" or None. Whether this is
    a container at all is the environment probe's ``host.in_container`` test; this only names it."""
    from envdoctor.probes.environment import in_container

    fact = in_container(ctx)
    if not fact.value:
        return None
    if fact.source == "/.dockerenv":
        return "docker"
    if fact.source == "/run/.containerenv":
        return "podman"
    for marker, name in (("kubepods", "kubernetes"), ("docker", "docker"), ("libpod", "podman"),
                         ("containerd", "containerd"), ("lxc", "lxc")):
        if marker in (fact.raw or ""):
            return name
    return "container"
