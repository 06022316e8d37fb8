"""Failed-build summaries for the op build; the shaping lives in :mod:`envdoctor.buildlog`
(torch-free, so ``envdoctor fix`` uses the same code for the user's own extensions)."""
from envdoctor.buildlog import explanation, first_error, summarize_failure

__all__ = ["explanation", "first_error", "summarize_failure"]
