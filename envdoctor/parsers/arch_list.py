"""``TORCH_CUDA_ARCH_LIST`` exactly as torch's extension builder reads it.

``torch.utils.cpp_extension._get_cuda_arch_flags`` (torch 2.14) replaces spaces
with ``;``, replaces the named architectures ("Ampere", "Hopper", ...) by their
lists with plain string replacement, splits on ``;`` and raises ``ValueError:
Unknown CUDA arch (X) or GPU not supported`` for any entry outside its list of
supported strings. An unset (or ``native``) value makes it take the visible
GPUs' capabilities; with no GPU visible that list is empty and the builder dies
with ``IndexError: list index out of range``.

This is the one parser of the value in envdoctor: ``check`` (ED501), ``build``
and ``fix`` all use it, so they accept and refuse the same values.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

# torch 2.14 cpp_extension: combined names first, since replacement is textual.
NAMED_ARCHES = OrderedDict([
    ("Kepler+Tesla", "3.7"), ("Kepler", "3.5+PTX"), ("Maxwell+Tegra", "5.3"), ("Maxwell", "5.0;5.2+PTX"),
    ("Pascal", "6.0;6.1+PTX"), ("Volta+Tegra", "7.2"), ("Volta", "7.0+PTX"), ("Turing", "7.5+PTX"),
    ("Ampere+Tegra", "8.7"), ("Ampere", "8.0;8.6+PTX"), ("Ada", "8.9+PTX"), ("Hopper", "9.0+PTX"),
    ("Blackwell+Tegra", "11.0"), ("Blackwell", "10.0;10.3;12.0;12.1+PTX"), ("Rubin", "10.7+PTX"),
])
SUPPORTED = ("3.5", "3.7", "5.0", "5.2", "5.3", "6.0", "6.1", "6.2", "7.0", "7.2", "7.5", "8.0", "8.6", "8.7",
             "8.9", "9.0", "9.0a", "10.0", "10.0a", "11.0", "11.0a", "10.3", "10.3a", "10.7", "10.7a", "12.0",
             "12.0a", "12.1", "12.1a")
VALID = frozenset(SUPPORTED + tuple(s + "+PTX" for s in SUPPORTED))


@dataclass
class ArchList:
    """The parsed value: ``entries`` torch accepts, ``invalid`` ones that make it raise."""

    value: Optional[str]
    entries: List[str] = field(default_factory=list)
    invalid: List[str] = field(default_factory=list)
    from_gpus: bool = False  # unset or "native": torch takes the visible GPUs

    @property
    def ok(self) -> bool:
        return not self.invalid

    def capabilities(self) -> List[Tuple[int, int]]:
        """(major, minor) of each accepted entry, in order, without duplicates."""
        caps: List[Tuple[int, int]] = []
        for entry in self.entries:
            major, minor = base(entry).split(".")
            cap = (int(major), int(minor.rstrip("af")))
            if cap not in caps:
                caps.append(cap)
        return caps

    def error(self) -> Optional[str]:
        """What torch's builder would say, or None when it accepts the value."""
        if self.invalid:
            return f"Unknown CUDA arch ({self.invalid[0]}) or GPU not supported"
        return None


def base(entry: str) -> str:
    """"9.0a+PTX" -> "9.0a"."""
    return entry.split("+", 1)[0]


def parse(value: Optional[str]) -> ArchList:
    """Parse a ``TORCH_CUDA_ARCH_LIST`` value the way torch's builder does."""
    if value is None or value == "" or value == "native":
        return ArchList(value=value, from_gpus=True)
    text = value.replace(" ", ";")
    for name, expansion in NAMED_ARCHES.items():
        text = text.replace(name, expansion)
    result = ArchList(value=value)
    for entry in text.split(";"):
        if entry in VALID:
            if entry not in result.entries:
                result.entries.append(entry)
        else:
            result.invalid.append(entry)
    return result


def join(entries: List[str]) -> str:
    """The value to write for ``entries`` (torch's separator)."""
    return ";".join(entries)


def from_capabilities(caps: List[Tuple[int, int]], ptx_last: bool = True) -> str:
    """"8.0;9.0+PTX" for [(8, 0), (9, 0)]: the newest also as PTX, so newer GPUs can JIT it."""
    entries = [f"{major}.{minor}" for major, minor in sorted(set(caps))]
    entries = [e for e in entries if e in VALID]
    if entries and ptx_last:
        entries[-1] += "+PTX"
    return join(entries)
