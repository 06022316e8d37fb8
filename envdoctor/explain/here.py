"""This machine's facts (``--here``) or a saved report's (``--from``), reduced to what explain uses.

The facts come from the engine, the one place that probes the machine; this
module only picks values out of a :class:`~envdoctor.model.FactSet`.
"""
from __future__ import annotations

from typing import Any, Dict

# The probes whose facts decide between the readings of an ambiguous message.
PROBES = ("environment", "driver", "toolkits", "gpus")
KEYS = ("host.in_container", "driver.present", "driver.version", "driver.cuda_max", "nvcc.path", "nvcc.real_path",
        "nvcc.version", "nvcc.all", "env.vars")


def from_factset(facts) -> Dict[str, Any]:
    """The facts explain uses, from a FactSet; keys missing or unavailable are left out."""
    machine: Dict[str, Any] = {}
    for key in KEYS:
        if facts.has(key):
            machine[key] = facts.value(key)
    gpus = facts.value("gpus") if facts.has("gpus") else None
    if isinstance(gpus, list):
        machine["gpus.count"] = len(gpus)
        for gpu in gpus:
            cc = gpu.get("compute_cap") if isinstance(gpu, dict) else None
            if cc:
                machine["gpu.cc"] = str(cc)
                break
    elif facts.get("gpus") is not None:
        machine["gpus.count"] = 0
    return machine


def probe_here(env=None, runner=None) -> Dict[str, Any]:
    from envdoctor import engine

    return from_factset(engine.probe_facts(PROBES, env=env, runner=runner))


def describe(machine: Dict[str, Any]) -> str:
    parts = []
    if "host.in_container" in machine:
        parts.append("in a container" if machine["host.in_container"] else "not in a container")
    if "driver.present" in machine:
        version = machine.get("driver.version")
        parts.append(f"driver {version}" if machine["driver.present"] and version else
                     "driver present" if machine["driver.present"] else "no working NVIDIA driver")
    if machine.get("nvcc.path"):
        version = f" ({machine['nvcc.version']})" if machine.get("nvcc.version") else ""
        parts.append(f"nvcc {machine['nvcc.path']}{version}")
    if "gpus.count" in machine:
        parts.append(f"{machine['gpus.count']} GPU(s)")
    return ", ".join(parts) or "nothing usable"
