"""SmokeResult -> one screen of text, or JSON. Pure: no I/O."""
from __future__ import annotations

import json
from typing import List, Optional

from envdoctor.smoke.config import SmokeConfig, SmokeResult


def _mib(value: Optional[int]) -> str:
    return "n/a" if value is None else f"{value / 2**20:.0f} MiB"


def _loss_line(result: SmokeResult, config: SmokeConfig) -> str:
    if result.loss_start is None:
        return "n/a"
    if result.loss_end is None:
        return f"{result.loss_start:.4f} -> n/a"
    ratio = result.loss_end / result.loss_start if result.loss_start else float("nan")
    return (f"{result.loss_start:.4f} -> {result.loss_end:.4f}  (x{ratio:.2f}; must fall below "
            f"x{config.max_loss_ratio:g})")


def _device_lines(result: SmokeResult) -> List[str]:
    lines = []
    for d in result.devices:
        where = d.get("device", "?")
        threads = d.get("threads")
        extra = f"{threads} thread{'' if threads == 1 else 's'}" if where == "cpu" else f"{d.get('name', '')} {d.get('uuid', '')}"
        lines.append(f"rank {d.get('rank', 0)}: {where} ({extra.strip()})")
    return lines or ["n/a"]


def _gradients(result: SmokeResult) -> str:
    if result.params_without_grad:
        return f"{len(result.params_without_grad)} parameter(s) got none: " + ", ".join(result.params_without_grad[:3])
    return "every parameter got a gradient" if result.steps else "not checked (no step finished)"


def render_text(result: SmokeResult, config: SmokeConfig) -> str:
    verdict = "PASS" if result.passed else "FAIL"
    out = [f"envdoctor smoke: {verdict}   Mask2Former-MobileNetV3, size {config.size}, "
           f"{result.steps}/{config.steps} steps, {result.world_size} process(es), {result.seconds:.1f}s to verdict"]
    if not result.passed:
        out.append(f"  reason        {result.reason}")
    speed = ("n/a" if result.steps_per_s is None
             else f"{result.steps_per_s:.2f} steps/s, {result.images_per_s:.1f} images/s")
    rows = [
        ("loss", _loss_line(result, config)),
        ("speed", speed),
        ("peak memory", f"{_mib(result.peak_memory)} ({result.peak_memory_kind or 'n/a'})"),
        ("MSDeformAttn", result.msda_impl or "n/a"),
        ("precision", {"off": "fp32 (AMP off)", "bf16": "AMP bf16", "fp16": "AMP fp16"}.get(result.amp, result.amp)),
        ("NaN/Inf", result.nan_inf or "none"),
        ("gradients", _gradients(result)),
    ]
    if result.world_size > 1 and result.param_hashes:
        same = len(set(result.param_hashes)) == 1
        rows.append(("ranks agree", f"{'yes' if same else 'NO'}: parameter hashes " + ", ".join(result.param_hashes)))
    out += [f"  {k:<13} {v}" for k, v in rows]
    if result.msda_note:
        out.append(f"  {'':<13} {result.msda_note}")
    device_lines = _device_lines(result)
    out.append(f"  {'devices':<13} {device_lines[0]}")
    out += [f"  {'':<13} {line}" for line in device_lines[1:]]
    if result.device_map:
        out.append("  GPU mapping   nvidia-smi -> CUDA -> UUID")
        for row in result.device_map:
            smi = "?" if row.get("nvidia_smi_index") is None else row["nvidia_smi_index"]
            out.append(f"                GPU {smi} -> cuda:{row['cuda_index']} -> {row['uuid']} {row.get('name', '')}")
    if result.profile:
        from envdoctor.smoke.profile import render_profile

        out += render_profile(result.profile, result.profile_steps)
    for problem in result.device_problems:
        out.append(f"  ! {problem}")
    for note in result.notes:
        out.append(f"  - {note}")
    for warning in result.warnings:
        out.append(f"  warning: {warning}")
    out.append("(text output may change between versions; use --format json for scripts)")
    return "\n".join(out)


def render_json(result: SmokeResult, config: SmokeConfig) -> str:
    data = result.to_dict()
    data["config"] = config.to_dict()
    return json.dumps(data, indent=2, sort_keys=True)
