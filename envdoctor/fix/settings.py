"""The environment a set of findings calls for, and its renderings.

All ``set_env`` fixes of a report merge into one :class:`EnvSettings`. It is
rendered as the rc-file block, as ``export`` lines for ``eval``, as lines for
``$GITHUB_ENV`` / ``$GITHUB_PATH``, and applied to a mapping to build the
environment of the processes ``fix`` starts after the repair.

``PATH`` is always extended with ``$PATH`` at the time the shell starts, never
frozen to the value this process happens to see. Every value is quoted.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from envdoctor.fix.rcfile import END, START

SHELLS = ("bash", "zsh", "fish")
HEADER = "# Written by `envdoctor fix`; `envdoctor fix --undo` removes this block."
_VAR_OK = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


class SettingsError(ValueError):
    """A set_env fix asks for something that cannot be written safely."""


@dataclass
class EnvSettings:
    """Variables to set, directories to prepend, entries or variables to drop."""

    vars: Dict[str, str] = field(default_factory=dict)
    path_prepend: List[str] = field(default_factory=list)
    ld_library_path_prepend: List[str] = field(default_factory=list)
    unset: List[str] = field(default_factory=list)  # "/abs/dir" drops an LD_LIBRARY_PATH entry, NAME a variable
    sources: Dict[str, str] = field(default_factory=dict)  # var -> finding code that asked for it
    conflicts: List[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.vars or self.path_prepend or self.ld_library_path_prepend or self.unset)

    @property
    def dropped_entries(self) -> List[str]:
        return [u for u in self.unset if u.startswith("/")]

    @property
    def dropped_vars(self) -> List[str]:
        return [u for u in self.unset if not u.startswith("/")]

    def to_dict(self) -> Dict[str, object]:
        return {
            "vars": dict(self.vars),
            "path_prepend": list(self.path_prepend),
            "ld_library_path_prepend": list(self.ld_library_path_prepend),
            "unset": list(self.unset),
            "conflicts": list(self.conflicts),
        }


def _check_value(what: str, value: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"{what}: expected a string, got {type(value).__name__}")
    if "\n" in value or "\r" in value or "\0" in value:
        raise SettingsError(f"{what}: a value may not contain a line break or NUL byte: {value!r}")
    return value


def _check_name(name: str) -> str:
    if not name or name[0].isdigit() or not set(name) <= _VAR_OK:
        raise SettingsError(f"not a valid environment variable name: {name!r}")
    return name


def merge(code: str, params: Mapping[str, object], into: EnvSettings) -> None:
    """Merge one set_env fix's params; the first finding to set a variable wins."""
    for name, value in dict(params.get("vars") or {}).items():
        _check_name(name)
        value = _check_value(name, value)
        if name in ("PATH", "LD_LIBRARY_PATH"):
            raise SettingsError(f"{code}: set {name} through path_prepend / ld_library_path_prepend, "
                                "never as a frozen literal value")
        if name in into.vars and into.vars[name] != value:
            into.conflicts.append(
                f"{name}: kept {into.vars[name]!r} (from {into.sources[name]}), "
                f"ignored {value!r} (from {code})")
            continue
        into.vars[name] = value
        into.sources.setdefault(name, code)
    for key, target in (("path_prepend", into.path_prepend),
                        ("ld_library_path_prepend", into.ld_library_path_prepend),
                        ("unset", into.unset)):
        for item in list(params.get(key) or []):
            item = _check_value(key, item)
            if key != "unset" and (":" in item or not item.startswith("/")):
                raise SettingsError(f"{code}: {key} entries must be absolute directories without ':', got {item!r}")
            if key == "unset" and not item.startswith("/"):
                _check_name(item)
            if item not in target:
                target.append(item)


def _fish_quote(value: str) -> str:
    # fish single quotes treat \\ and \' as escapes, unlike POSIX shells.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _posix_lines(s: EnvSettings) -> List[str]:
    lines = [f"unset {name}" for name in s.dropped_vars]
    for name in sorted(s.vars):
        lines.append(f"export {name}={shlex.quote(s.vars[name])}")
    if s.path_prepend:
        joined = shlex.quote(":".join(s.path_prepend))
        lines.append(f'export PATH={joined}"${{PATH:+:$PATH}}"')
    for entry in s.dropped_entries:
        # Drop one exact entry; sed/tr keep this POSIX (no bash arrays), grep -x avoids prefixes.
        lines.append(
            "LD_LIBRARY_PATH=$(printf '%s\\n' \"$LD_LIBRARY_PATH\" | tr ':' '\\n' | "
            f"grep -vxF -e {shlex.quote(entry)} | paste -sd: -); export LD_LIBRARY_PATH")
    if s.ld_library_path_prepend:
        joined = shlex.quote(":".join(s.ld_library_path_prepend))
        # ${VAR:+:$VAR}: no trailing ':' (an empty entry would mean the current directory).
        lines.append(f'export LD_LIBRARY_PATH={joined}"${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"')
    return lines


def _fish_lines(s: EnvSettings) -> List[str]:
    lines = [f"set -e {name}" for name in s.dropped_vars]
    for name in sorted(s.vars):
        lines.append(f"set -gx {name} {_fish_quote(s.vars[name])}")
    if s.path_prepend:
        lines.append("set -gx PATH " + " ".join(_fish_quote(p) for p in s.path_prepend) + " $PATH")
    for entry in s.dropped_entries:
        lines.append(f"set -gx LD_LIBRARY_PATH (string match -v -- {_fish_quote(entry)} $LD_LIBRARY_PATH)")
    if s.ld_library_path_prepend:
        lines.append("set -gx LD_LIBRARY_PATH "
                     + " ".join(_fish_quote(p) for p in s.ld_library_path_prepend) + " $LD_LIBRARY_PATH")
    return lines


def export_lines(settings: EnvSettings, shell: str = "bash") -> List[str]:
    """Lines that put the settings into effect in ``shell``."""
    if shell not in SHELLS:
        raise SettingsError(f"unsupported shell {shell!r} (choose one of {', '.join(SHELLS)})")
    return _fish_lines(settings) if shell == "fish" else _posix_lines(settings)


def render_block(settings: EnvSettings, shell: str = "bash") -> bytes:
    """The marked rc-file block (LF line endings, markers included)."""
    lines = [START.decode(), HEADER] + export_lines(settings, shell) + [END.decode()]
    return ("\n".join(lines) + "\n").encode("utf-8")


def ci_lines(settings: EnvSettings, env: Mapping[str, str]) -> Tuple[List[str], List[str]]:
    """Lines for ``$GITHUB_ENV`` and ``$GITHUB_PATH``.

    GITHUB_ENV takes literal NAME=value lines (no shell), so a dropped
    LD_LIBRARY_PATH entry or a prepended library dir is computed against ``env``.
    """
    env_lines = [f"{name}={settings.vars[name]}" for name in sorted(settings.vars)]
    if settings.ld_library_path_prepend or settings.dropped_entries:
        env_lines.append("LD_LIBRARY_PATH=" + apply_to_env(settings, env)["LD_LIBRARY_PATH"])
    # GITHUB_PATH prepends each line; later lines end up first, so write in reverse.
    return env_lines, list(reversed(settings.path_prepend))


def apply_to_env(settings: EnvSettings, env: Mapping[str, str]) -> Dict[str, str]:
    """The environment a new shell that sourced the block would have (same semantics as the block)."""
    result = dict(env)
    for name in settings.dropped_vars:
        result.pop(name, None)
    result.update(settings.vars)
    if settings.path_prepend:
        old = result.get("PATH", "")
        result["PATH"] = ":".join(settings.path_prepend) + (":" + old if old else "")
    if settings.dropped_entries or settings.ld_library_path_prepend:
        old_entries = [e for e in result.get("LD_LIBRARY_PATH", "").split(":")
                       if e not in settings.dropped_entries]
        old = ":".join(old_entries)
        new = ":".join(settings.ld_library_path_prepend)
        merged = new + (":" + old if new and old else old)
        if merged:
            result["LD_LIBRARY_PATH"] = merged
        else:
            result.pop("LD_LIBRARY_PATH", None)
    return result


def from_dict(data: Optional[Mapping[str, object]]) -> EnvSettings:
    settings = EnvSettings()
    if data:
        merge("saved", data, settings)
    return settings
