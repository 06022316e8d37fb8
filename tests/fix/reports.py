"""Hand-made reports in the shape the check engine produces (the planner's input)."""
from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List

from envdoctor.model import Fact, FactSet, Finding, Fix, Report, Severity

CUDA13 = "/usr/local/cuda-13.0"


def cuda_home_finding(root: str = CUDA13, code: str = "ED301", severity: Severity = Severity.ERROR) -> Finding:
    fix = Fix(summary=f"Set CUDA_HOME={root} and put its bin/ first on PATH",
              commands=(f"export CUDA_HOME={root}", f'export PATH={root}/bin:"$PATH"'),
              action="set_env", params={"vars": {"CUDA_HOME": root}, "path_prepend": [f"{root}/bin"]})
    return Finding(code=code, severity=severity, area="toolkit", title="CUDA_HOME is not set",
                   message="torch guesses /usr/local, which has no lib64/libcudart.so", fixes=(fix,))


def finding(code: str, action: str, params: Dict[str, Any], severity: Severity = Severity.WARNING,
            commands: Iterable[str] = ()) -> Finding:
    fix = Fix(summary=f"{action} fix", commands=tuple(commands), action=action, params=params)
    return Finding(code=code, severity=severity, area="builds", title=f"{code} title", message="m", fixes=(fix,))


def manual_finding(code: str = "ED101") -> Finding:
    fix = Fix(summary="Install a newer NVIDIA driver", commands=("sudo apt install nvidia-driver-580",))
    return Finding(code=code, severity=Severity.ERROR, area="driver", title="driver too old", message="m",
                   fixes=(fix,))


def report(findings: List[Finding], toolkits=None, torch_cuda: str = "13.0") -> Report:
    facts = FactSet([
        # A GPU machine (the planner re-runs the rules on what the plan would produce: these facts
        # must not raise findings of their own beyond the hand-made ones).
        Fact("torch", {"version": "2.14.1+cu130", "cuda": torch_cuda, "cuda_available": True, "device_count": 1},
             source="test"),
        Fact("toolkits", toolkits if toolkits is not None else [
            {"root": CUDA13, "real_root": CUDA13, "version": "13.0", "has_nvcc": True, "has_cudart": True,
             "has_runtime_header": True}],
             source="test"),
    ])
    return Report(facts=facts, findings=list(findings))


def save(rep: Report, path) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(rep.to_dict(), fh)
    return str(path)
