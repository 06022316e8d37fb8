"""Facts only a fleet needs, beside the ones ``check`` collects: NCCL (torch's and the
library actually loaded), NCCL net plugins, the network variables, InfiniBand ports,
the machine's boot id. Every function takes its root or text as a parameter, so tests
give it a fake tree; none raises: what cannot be read is ``None`` plus a reason.
"""
from __future__ import annotations

import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

# NCCL is configured through these families: NCCL's own, and those of the transports
# it loads (UCX, libfabric for EFA and Slingshot).
NETWORK_VAR_PREFIXES = ("NCCL_", "UCX_", "FI_")
# Where a system install puts libraries when LD_LIBRARY_PATH does not say.
SYSTEM_LIB_DIRS = ("usr/lib/x86_64-linux-gnu", "usr/lib/aarch64-linux-gnu", "usr/lib64", "usr/lib", "usr/local/lib",
                   "opt/amazon/efa/lib", "opt/aws-ofi-nccl/lib", "usr/local/nccl-rdma-sharp-plugins/lib")
_LIBNCCL = re.compile(r"(/\S*libnccl\.so[\d.]*)\s*$")
_NET_PLUGIN = re.compile(r"^libnccl-net.*\.so")


def network_env(env: Mapping[str, str]) -> Dict[str, Dict[str, str]]:
    """``{"NCCL": {...}, "UCX": {...}, "FI": {...}}``: the variables that are set, by family."""
    out: Dict[str, Dict[str, str]] = {p.rstrip("_"): {} for p in NETWORK_VAR_PREFIXES}
    for name in sorted(env):
        for prefix in NETWORK_VAR_PREFIXES:
            if name.startswith(prefix):
                out[prefix.rstrip("_")][name] = env[name]
    return out


def loaded_nccl(maps_text: str) -> List[str]:
    """Paths of libnccl mapped into a process, from its ``/proc/<pid>/maps`` text, in order."""
    seen: List[str] = []
    for line in maps_text.splitlines():
        match = _LIBNCCL.search(line)
        if match and match.group(1) not in seen:
            seen.append(match.group(1))
    return seen


def read_text(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def lib_dirs(env: Mapping[str, str], root: str = "/", extra: Iterable[str] = ()) -> List[str]:
    """Where the dynamic loader will look for an NCCL net plugin: LD_LIBRARY_PATH first."""
    dirs = [d for d in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    dirs += [os.path.join(root, d) for d in SYSTEM_LIB_DIRS]
    dirs += list(extra)
    unique: List[str] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def net_plugins(dirs: Sequence[str]) -> List[str]:
    """``libnccl-net*.so`` files in ``dirs`` (full paths, first directory first)."""
    found: List[str] = []
    for directory in dirs:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        found += [os.path.join(directory, n) for n in names if _NET_PLUGIN.match(n)]
    return found


def infiniband(sysfs_root: str = "/sys") -> List[Dict[str, Any]]:
    """One entry per InfiniBand port under ``<sysfs_root>/class/infiniband``:
    ``device``, ``port``, ``state`` ("ACTIVE", "DOWN", ...), ``phys_state``, ``rate``, ``link_layer``."""
    base = os.path.join(sysfs_root, "class", "infiniband")
    try:
        devices = sorted(os.listdir(base))
    except OSError:
        return []
    ports: List[Dict[str, Any]] = []
    for device in devices:
        port_dir = os.path.join(base, device, "ports")
        try:
            numbers = sorted(os.listdir(port_dir), key=lambda n: int(n) if n.isdigit() else 0)
        except OSError:
            continue
        for number in numbers:
            def field(name: str) -> Optional[str]:
                text = read_text(os.path.join(port_dir, number, name))
                return text.strip() if text is not None else None

            ports.append({"device": device, "port": int(number) if number.isdigit() else number,
                          "state": _after_colon(field("state")), "phys_state": _after_colon(field("phys_state")),
                          "rate": field("rate"), "link_layer": field("link_layer")})
    return ports


def _after_colon(value: Optional[str]) -> Optional[str]:
    """sysfs writes "4: ACTIVE"; keep "ACTIVE"."""
    if value is None:
        return None
    return value.split(":", 1)[1].strip() if ":" in value else value


def boot_id(proc_root: str = "/proc") -> Optional[str]:
    """Identifies the running machine (a new value each boot): two ranks with the same
    node name but different boot ids are two machines sharing a hostname."""
    text = read_text(os.path.join(proc_root, "sys", "kernel", "random", "boot_id"))
    return text.strip() if text else None


def torch_nccl(torch_module: Any = None) -> Dict[str, Any]:
    """NCCL as torch sees it: the version ``torch.cuda.nccl.version()`` reports (the
    runtime library's), or why there is none (a CPU-only build)."""
    if torch_module is None:
        try:
            import torch as torch_module  # noqa: F811  (only the fleet worker imports torch)
        except Exception as exc:
            return {"version": None, "error": f"torch does not import: {type(exc).__name__}: {exc}"}
    try:
        if not torch_module.distributed.is_nccl_available():
            return {"version": None, "error": "this torch build has no NCCL"}
        version = torch_module.cuda.nccl.version()
    except Exception as exc:
        return {"version": None, "error": f"{type(exc).__name__}: {exc}"}
    if isinstance(version, tuple):
        return {"version": ".".join(str(v) for v in version), "error": None}
    # Older torch: one integer, 2.18.3 -> 21803 (or 2183 before NCCL 2.9)
    code = int(version)
    if code >= 10000:
        major, minor, patch = code // 10000, (code % 10000) // 100, code % 100
    else:
        major, minor, patch = code // 1000, (code % 1000) // 100, code % 100
    return {"version": f"{major}.{minor}.{patch}", "error": None}


def fleet_facts(env: Mapping[str, str], sysfs_root: str = "/sys", proc_root: str = "/proc", root: str = "/",
                torch_module: Any = None) -> Dict[str, Any]:
    """Everything above for this process, as one JSON-able dict."""
    nccl = torch_nccl(torch_module)  # first: importing torch is what maps libnccl
    maps = read_text(os.path.join(proc_root, "self", "maps")) or ""
    loaded = loaded_nccl(maps)
    plugin_dirs = lib_dirs(env, root, extra=[os.path.dirname(p) for p in loaded])
    return {
        "nccl_torch": nccl["version"],
        "nccl_torch_error": nccl["error"],
        "nccl_loaded": [os.path.realpath(p) for p in loaded],
        "nccl_net_plugins": [os.path.basename(p) for p in net_plugins(plugin_dirs)],
        "nccl_net_plugin_env": env.get("NCCL_NET_PLUGIN"),
        "network_env": network_env(env),
        "infiniband": infiniband(sysfs_root),
        "boot_id": boot_id(proc_root),
    }
