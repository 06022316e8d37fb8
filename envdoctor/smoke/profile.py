"""Where a smoke-train step's time goes (``envdoctor smoke --profile``).

Wall-clock timers, not a sampling profiler: forward pre/post hooks on the
model's parts (backbone, pixel decoder, transformer decoder, matcher, criterion),
timers around the backward and the optimizer step, and the MSDeformAttn op
itself timed in both directions. The op's forward is timed by wrapping the call
the MSDeformAttn modules make; its backward by two identity autograd nodes that
bracket it (the one on the output runs just before the op's backward, the ones
on the inputs just after). On CUDA every timer synchronises the device first, so
asynchronous work is charged to the part that queued it (and the step is a
little slower than unprofiled). Steps after the first are measured (the first
includes one-time setup).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import torch

# (key, label, parent key or None). Children are shares of their parent, shown indented.
ROWS: Tuple[Tuple[str, str, Optional[str]], ...] = (
    ("backbone", "backbone", None),
    ("pixel_decoder", "pixel decoder", None),
    ("msda_forward", "MSDeformAttn op, forward", "pixel_decoder"),
    ("decoder", "transformer decoder", None),
    ("matcher", "matcher (Hungarian)", None),
    ("loss", "losses", None),
    ("backward", "backward", None),
    ("msda_backward", "MSDeformAttn op, backward", "backward"),
    ("optimizer", "optimizer (clip, step)", None),
    ("other", "other (inputs, normalisation, checks)", None),
)
_HOOKED = (("backbone", "backbone"), ("pixel_decoder", "pixel_decoder"), ("decoder", "decoder"),
           ("criterion", "criterion"), ("criterion.matcher", "matcher"))


class StepProfiler:
    """Accumulates seconds per part over the steps it is told to measure."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.model = model
        self.device = device
        self.seconds: Dict[str, float] = {}
        self.steps = 0
        self.step_seconds = 0.0
        self.active = False
        self._starts: Dict[str, List[float]] = {}
        self._handles: list = []
        self._step_start = 0.0

    # --- clocks -----------------------------------------------------------------
    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _begin(self, key: str) -> None:
        if self.active:
            self._starts.setdefault(key, []).append(self.now())

    def _end(self, key: str) -> None:
        if self.active and self._starts.get(key):
            self.seconds[key] = self.seconds.get(key, 0.0) + self.now() - self._starts[key].pop()

    @contextmanager
    def part(self, key: str) -> Iterator[None]:
        self._begin(key)
        try:
            yield
        finally:
            self._end(key)

    # --- steps ------------------------------------------------------------------
    def step_begin(self) -> None:
        self.active = True
        self._starts.clear()
        self._step_start = self.now()

    def step_end(self) -> None:
        if self.active:
            self.step_seconds += self.now() - self._step_start
            self.steps += 1
        self.active = False

    # --- instrumentation -----------------------------------------------------------
    def __enter__(self) -> "StepProfiler":
        for path, key in _HOOKED:
            module = self.model.get_submodule(path)
            self._handles.append(module.register_forward_pre_hook(lambda *_, k=key: self._begin(k)))
            self._handles.append(module.register_forward_hook(lambda *_, k=key: self._end(k)))
        from envdoctor.ops import module as msda_module

        original = msda_module.ms_deform_attn
        profiler = self

        def timed_op(value, spatial_shapes, level_start_index, locations, weights, **kwargs):
            if not profiler.active:
                return original(value, spatial_shapes, level_start_index, locations, weights, **kwargs)
            value, locations, weights = (_Mark.apply(t, profiler, "msda_backward", False) if t.requires_grad else t
                                         for t in (value, locations, weights))
            with profiler.part("msda_forward"):
                out = original(value, spatial_shapes, level_start_index, locations, weights, **kwargs)
            return _Mark.apply(out, profiler, "msda_backward", True) if out.requires_grad else out

        msda_module.ms_deform_attn = timed_op
        self._restore = lambda: setattr(msda_module, "ms_deform_attn", original)
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._restore()

    # --- report -------------------------------------------------------------------
    def table(self) -> List[Dict[str, object]]:
        """Rows {part, label, parent, ms_per_step, share}; top-level shares sum to 100 % of the step."""
        if not self.steps or self.step_seconds <= 0:
            return []
        s = dict(self.seconds)
        parts = {
            "backbone": s.get("backbone", 0.0),
            "pixel_decoder": s.get("pixel_decoder", 0.0),
            "msda_forward": s.get("msda_forward", 0.0),
            "decoder": s.get("decoder", 0.0),
            "matcher": s.get("matcher", 0.0),
            "loss": max(0.0, s.get("criterion", 0.0) - s.get("matcher", 0.0)),
            "backward": s.get("backward", 0.0),
            "msda_backward": s.get("msda_backward", 0.0),
            "optimizer": s.get("optimizer", 0.0),
        }
        top = sum(v for k, v in parts.items() if _parent(k) is None)
        parts["other"] = max(0.0, self.step_seconds - top)
        total = max(self.step_seconds, top)
        return [{"part": key, "label": label, "parent": parent,
                 "ms_per_step": round(1e3 * parts[key] / self.steps, 3),
                 "share": round(100.0 * parts[key] / total, 2)}
                for key, label, parent in ROWS]


def _parent(key: str) -> Optional[str]:
    return next(parent for k, _, parent in ROWS if k == key)


class _Mark(torch.autograd.Function):
    """Identity that starts (on the op's output) or stops (on its inputs) the op's backward timer."""

    @staticmethod
    def forward(ctx, tensor, profiler, key, starts):
        ctx.profiler, ctx.key, ctx.starts = profiler, key, starts
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad):
        profiler = ctx.profiler
        if profiler.active:
            if ctx.starts:
                profiler._begin(ctx.key)
            elif profiler._starts.get(ctx.key):
                # The first input reached stops the clock; the others find it stopped.
                profiler._end(ctx.key)
        return grad, None, None, None


def render_profile(rows: List[Dict[str, object]], steps: int) -> List[str]:
    if not rows:
        return []
    out = [f"  time per step, mean of {steps} step(s) after the first:"]
    for row in rows:
        indent = "    of which " if row["parent"] else ""
        label = f"{indent}{row['label']}"
        share = f"{row['share']:5.1f} %"
        if row["parent"]:
            parent = next(r for r in rows if r["part"] == row["parent"])
            inner = 100.0 * float(row["ms_per_step"]) / float(parent["ms_per_step"]) if parent["ms_per_step"] else 0.0
            share += f" ({inner:.0f} % of {parent['label']})"
        out.append(f"    {label:<44} {float(row['ms_per_step']):9.1f} ms  {share}")
    return out
