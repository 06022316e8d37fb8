"""envdoctor: a CUDA environment doctor and repair tool for deep-learning projects."""

__version__ = "0.1.0"
