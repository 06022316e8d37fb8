"""All rules, loaded from their topic modules. See ``envdoctor.rules.base``."""
from __future__ import annotations

import importlib
from typing import List, Tuple

from envdoctor.rules.base import Rule, RuleContext, registered_rules, rule

RULE_MODULES = ("driver", "driver_state", "toolkit", "modules", "torch_rules", "compiler", "env", "builds", "detectron2",
                "require")

_load_failures: List[Tuple[str, str]] = []
_loaded = False


def all_rules() -> List[Rule]:
    """Every registered rule, sorted by code. Modules that fail to import are reported
    by ``load_failures()`` and their rules are absent (the engine records that)."""
    global _loaded
    if not _loaded:
        for name in RULE_MODULES:
            try:
                importlib.import_module(f"envdoctor.rules.{name}")
            except Exception as exc:
                _load_failures.append((name, f"{type(exc).__name__}: {exc}"))
        _loaded = True
    return registered_rules()


def load_failures() -> List[Tuple[str, str]]:
    all_rules()
    return list(_load_failures)


__all__ = ["Rule", "RuleContext", "rule", "all_rules", "load_failures"]
