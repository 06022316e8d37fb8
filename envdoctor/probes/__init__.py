"""The probes: one module per source of facts (see docs/facts.md).

Each module exposes ``PROBE`` (a :class:`~envdoctor.probes.base.Probe`). They are
loaded by name so that a probe module that fails to import becomes a "crashed"
probe in the report instead of breaking the whole check.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from envdoctor.probes.base import Probe, ProbeContext

# Slow probes (a Python subprocess importing torch) first, so everything else
# runs while they wait.
PROBE_MODULES: Tuple[str, ...] = (
    "torch_probe",
    "builds",
    "detectron2",
    "driver",
    "gpus",
    "toolkits",
    "compiler",
    "environment",
)


def __getattr__(name: str) -> Any:
    # Loaded on first use: `python -m envdoctor check` imports envdoctor.probes._prestart
    # before anything else, and that must not pull in the data model first.
    if name in ("Probe", "ProbeContext"):
        from envdoctor.probes import base

        return getattr(base, name)
    raise AttributeError(f"module 'envdoctor.probes' has no attribute {name!r}")


def load_probes(names: Optional[Sequence[str]] = None) -> Tuple[List["Probe"], List[Tuple[str, str]]]:
    """Return (probes, failures); failures are (module name, error text)."""
    probes: List["Probe"] = []
    failures: List[Tuple[str, str]] = []
    for module_name in PROBE_MODULES:
        try:
            module = importlib.import_module(f"envdoctor.probes.{module_name}")
            probe = module.PROBE
        except Exception as exc:  # a broken probe module must not break the check
            failures.append((module_name, f"{type(exc).__name__}: {exc}"))
            continue
        if names is None or probe.name in names or any(k in names for k in probe.keys):
            probes.append(probe)
    return probes, failures


__all__ = ["Probe", "ProbeContext", "load_probes", "PROBE_MODULES"]
