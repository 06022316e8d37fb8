"""The at-a-glance lines of a report ("Driver  525.60.13 ..."), shared by the text and
Markdown renderers. Pure: facts in, (label, text) pairs out."""
from __future__ import annotations

from typing import Dict, List, Tuple

from envdoctor.model import FactSet

NOT_AVAILABLE = "not available"


def _why(facts: FactSet, key: str) -> str:
    fact = facts.get(key)
    if fact is None:
        return "not probed"
    return f"{NOT_AVAILABLE} ({fact.error})" if fact.error else NOT_AVAILABLE


def driver_line(facts: FactSet) -> str:
    version = facts.value("driver.version")
    state = facts.value("driver.state") or {}
    if state.get("summary") and state.get("state") not in ("ok", "none"):
        return str(state["summary"])
    if not version:
        smi = facts.value("driver.smi") or {}
        if smi.get("status") == "not_found":
            return "no NVIDIA driver found (nvidia-smi not on PATH)"
        return _why(facts, "driver.version")
    cuda_max = facts.value("driver.cuda_max")
    if cuda_max:
        return (f"{version}, supports CUDA <= {cuda_max} "
                f"(nvidia-smi's \"CUDA Version\" is the driver's maximum, not an installed toolkit)")
    return f"{version}"


def gpu_lines(facts: FactSet) -> List[str]:
    gpus = facts.value("gpus")
    if not gpus:
        return [_why(facts, "gpus") if facts.get("gpus") and not facts.has("gpus") else "none visible"]
    lines = []
    for gpu in gpus:
        cap = gpu.get("compute_cap")
        mem = gpu.get("memory_total_mib")
        parts = [f"{gpu.get('index')}: {gpu.get('name') or 'unknown GPU'}"]
        detail = []
        if cap:
            detail.append(f"sm_{cap.replace('.', '')}")
        if mem:
            detail.append(f"{mem} MiB")
        if gpu.get("pci_bus_id"):
            detail.append(str(gpu["pci_bus_id"]))
        lines.append(parts[0] + (f" ({', '.join(detail)})" if detail else ""))
    return lines


def toolkit_lines(facts: FactSet) -> List[str]:
    toolkits = facts.value("toolkits")
    if not toolkits:
        return ["none found" if facts.has("toolkits") else _why(facts, "toolkits")]
    lines = []
    for tk in toolkits:
        root = tk.get("real_root") or tk.get("root")
        version = tk.get("version") or "unknown version"
        bits = [version]
        if not tk.get("has_nvcc"):
            bits.append("no nvcc")
        if not tk.get("has_cudart"):
            bits.append("no libcudart")
        via = ", ".join(tk.get("found_via") or [])
        lines.append(f"{root} ({'; '.join(bits)}{'; via ' + via if via else ''})")
    return lines


def nvcc_line(facts: FactSet) -> str:
    path = facts.value("nvcc.path")
    if not path:
        return "not on PATH"
    real = facts.value("nvcc.real_path")
    version = facts.value("nvcc.version")
    shown = path if not real or real == path else f"{path} -> {real}"
    return f"{shown} ({version})" if version else shown


def torch_line(facts: FactSet) -> str:
    torch = facts.value("torch")
    if not torch:
        status = facts.value("torch.status") or {}
        if status.get("status") == "missing":
            return "not installed"
        message = status.get("message") or _why(facts, "torch")
        return f"broken: {message}" if status else message
    bits = []
    if torch.get("cuda"):
        bits.append(f"CUDA {torch['cuda']}")
    elif torch.get("hip"):
        bits.append(f"ROCm {torch['hip']}")
    else:
        bits.append("CPU-only build")
    if torch.get("cudnn"):
        bits.append(f"cuDNN {torch['cudnn']}")
    available = torch.get("cuda_available")
    if available is not None:
        bits.append("CUDA available: " + ("yes" if available else "no"))
    return f"{torch.get('version')} ({', '.join(bits)})"


def compiler_line(facts: FactSet) -> str:
    host = facts.value("compiler.host") or facts.value("compiler.gcc")
    if not host:
        return _why(facts, "compiler.gcc")
    via = host.get("via")
    name = host.get("name") or "gcc"
    text = f"{name} {host.get('version') or '?'}"
    if host.get("path"):
        text += f" ({host['path']}{', via ' + via if via and via != 'default' else ''})"
    return text


def python_line(facts: FactSet) -> str:
    py = facts.value("env.python")
    if not py:
        return _why(facts, "env.python")
    env = py.get("conda_env") or (py.get("venv") and "venv") or ""
    return f"{py.get('version')} ({py.get('executable')}{', ' + str(env) if env else ''})"


def detectron2_line(facts: FactSet) -> str:
    d2 = facts.value("detectron2") or {}
    bits = [str(d2.get("version") or "version unknown")]
    if d2.get("c_path"):
        bits.append(f"_C: {d2['c_path']}")
    device = d2.get("c_device") or {}
    if d2.get("c_has_cuda") is True:
        bits.append("CUDA kernels: " + ", ".join(f"sm_{a}" for a in device.get("sm") or []) +
                    ("".join(f", PTX {a}" for a in device.get("ptx") or [])))
    elif d2.get("c_has_cuda") is False:
        bits.append("no CUDA kernels (CPU-only build)")
    if d2.get("c_cuda_version"):
        bits.append(f"get_cuda_version(): {d2['c_cuda_version']}")
    if d2.get("imports") is False:
        bits.append("does not import")
    return f"{bits[0]} ({'; '.join(bits[1:])})" if len(bits) > 1 else bits[0]


def summary(facts: FactSet) -> List[Tuple[str, List[str]]]:
    """(label, lines) pairs in reading order."""
    extra = [("detectron2", [detectron2_line(facts)])] if facts.value("detectron2") else []
    return [
        ("Driver", [driver_line(facts)]),
        ("GPUs", gpu_lines(facts)),
        ("Toolkits", toolkit_lines(facts)),
        ("nvcc", [nvcc_line(facts)]),
        ("torch", [torch_line(facts)]),
        ("Compiler", [compiler_line(facts)]),
        ("Python", [python_line(facts)]),
    ] + extra


AREA_TITLES: Dict[str, str] = {
    "driver": "Driver",
    "gpus": "GPUs",
    "toolkit": "CUDA toolkits",
    "torch": "PyTorch",
    "compiler": "Host compiler",
    "env": "Environment",
    "builds": "Builds and extensions",
    "detectron2": "detectron2 / Mask2Former",
    "require": "Declared requirements",
    "envdoctor": "envdoctor",
}


def area_title(area: str) -> str:
    return AREA_TITLES.get(area, area.capitalize())


def area_order(area: str) -> int:
    keys = list(AREA_TITLES)
    return keys.index(area) if area in keys else len(keys)


