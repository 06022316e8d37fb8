"""``envdoctor smoke``: a real Mask2Former-MobileNetV3 smoke-train that proves the environment.

Import cost is small: torch is only imported when a smoke-train actually runs.
"""
from envdoctor.smoke.api import run_smoke
from envdoctor.smoke.config import SIZES, SmokeConfig, SmokeResult

__all__ = ["run_smoke", "SmokeConfig", "SmokeResult", "SIZES"]
