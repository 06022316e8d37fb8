"""Choose the MSDeformAttn implementation for the smoke-train, and say which one ran."""
from __future__ import annotations

from typing import Tuple

IMPLS = ("auto", "compiled", "reference")


class MsdaUnavailable(RuntimeError):
    """The compiled op was explicitly requested but cannot be loaded."""


def resolve_impl(requested: str, device: str) -> Tuple[str, str]:
    """Return (implementation that will run, a note for the report).

    The answer is passed to the modules explicitly (never "auto"), so what the
    report says ran is what ran: a compiled op that cannot take the inputs fails
    loudly instead of quietly falling back.
    """
    from envdoctor import ops
    from envdoctor.ops.loader import not_built_message

    if requested not in IMPLS:
        raise MsdaUnavailable(f"unknown MSDeformAttn implementation {requested!r}: choose {', '.join(IMPLS)}")
    if requested == "reference":
        return "reference", "the reference (pure PyTorch) MSDeformAttn was requested"
    try:
        loaded = bool(ops.load_extension(build=False))
        why = not_built_message(device)
    except Exception as exc:  # a broken binary must not stop the smoke-train from reporting it
        loaded, why = False, str(exc)
    if loaded and ops.active_implementation(device) == "compiled":
        return "compiled", ""
    if loaded:
        why = not_built_message(device)
    if requested == "compiled":
        raise MsdaUnavailable(f"the compiled MSDeformAttn op was requested but cannot be used: {why}")
    return "reference", f"fell back to the reference (pure PyTorch) MSDeformAttn: {why}"


def make_msda(d_model: int, n_levels: int, n_heads: int, n_points: int, impl: str):
    from envdoctor import ops

    return ops.MSDeformAttn(d_model, n_levels, n_heads, n_points, impl=impl)
