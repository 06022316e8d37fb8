"""Errors of envdoctor.ops. Each message says what happened and what to run."""
from __future__ import annotations

from envdoctor.ops.validation import MSDeformAttnInputError

__all__ = ["MSDeformAttnInputError", "OpNotBuiltError", "OpLoadError", "BuildRefused"]


class OpNotBuiltError(RuntimeError):
    """The compiled op was requested but no binary exists for this environment."""


class OpLoadError(RuntimeError):
    """A cached binary exists but cannot be used (built for another torch/CUDA, or broken)."""


class BuildRefused(RuntimeError):
    """The build would fail; the message explains why and how to fix it."""
