"""What differs between two machines that matters, tied to the findings it causes or clears.

"It works on my workstation and fails in CI": both reports are re-diagnosed with
the current rules (``envdoctor.engine.diagnose``), the facts that decide builds and
runs (driver, toolkits, nvcc, CUDA_HOME and the other variables, torch build,
compilers, GPUs, extensions, declared requirements) are compared one by one, and
every finding code present on one side only is tied to the differences its
evidence names (or, failing that, the facts its rule reads).

Pure: two fact sets in, a :class:`Diff` out. Values are compared after
redaction, so a redacted report pasted from an issue matches this machine's
unredacted facts where they are the same.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from envdoctor.model import FactSet, Finding, Report, Severity
from envdoctor.render.redact import Redactor
from envdoctor.render.summary import compiler_line, nvcc_line

UNSET = "unset"
NONE = "none"

# (label, fact keys a finding's evidence may name, value) for the fixed aspects.
Aspect = Tuple[str, Tuple[str, ...], Callable[[FactSet], Optional[str]]]


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "[]"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) if value != "" else '"" (set, empty)'


def _field(key: str, name: str) -> Callable[[FactSet], Optional[str]]:
    def get(facts: FactSet) -> Optional[str]:
        return _text((facts.value(key) or {}).get(name))
    return get


def _plain(key: str) -> Callable[[FactSet], Optional[str]]:
    def get(facts: FactSet) -> Optional[str]:
        value = facts.value(key)
        return None if value == [] else _text(value)
    return get


def _gpus(facts: FactSet) -> Optional[str]:
    found = facts.value("gpus") or []
    return "; ".join(f"{g.get('name')} (sm_{str(g.get('compute_cap') or '?').replace('.', '')}, "
                     f"{g.get('memory_total_mib')} MiB)" for g in found) or None


def _toolkits(facts: FactSet) -> Optional[str]:
    found = facts.value("toolkits") or []
    return "; ".join(sorted(f"{t.get('real_root') or t.get('root')} ({t.get('version') or '?'})"
                            for t in found)) or None


def _nvcc(facts: FactSet) -> Optional[str]:
    return nvcc_line(facts) if facts.value("nvcc.path") else None


def _compiler(facts: FactSet) -> Optional[str]:
    return compiler_line(facts) if (facts.value("compiler.host") or facts.value("compiler.gcc")) else None


def _torch(facts: FactSet) -> Optional[str]:
    torch = facts.value("torch") or {}
    if torch.get("version"):
        return str(torch["version"])
    status = (facts.value("torch.status") or {}).get("status")
    return None if status in (None, "missing") else f"broken ({status})"


def _torchvision(facts: FactSet) -> Optional[str]:
    vision = facts.value("torchvision") or {}
    if vision.get("import_error"):
        return f"{vision.get('version') or '?'} (does not import)"
    return vision.get("version")


def _detectron2(facts: FactSet) -> Optional[str]:
    d2 = facts.value("detectron2") or {}
    if not d2.get("version"):
        return None
    return f"{d2['version']}" + ("" if d2.get("imports") else " (does not import)")


def _python(facts: FactSet) -> Optional[str]:
    return (facts.value("env.python") or {}).get("version")


def _ninja(facts: FactSet) -> Optional[str]:
    return (facts.value("env.ninja") or {}).get("version")


ASPECTS: Tuple[Aspect, ...] = (
    ("driver", ("driver.version", "driver.present", "driver.smi", "driver.kernel_module_version"),
     _plain("driver.version")),
    ("driver's newest CUDA", ("driver.cuda_max",), _plain("driver.cuda_max")),
    ("GPUs", ("gpus",), _gpus),
    ("CUDA toolkits", ("toolkits", "toolkit"), _toolkits),
    ("nvcc", ("nvcc.path", "nvcc.real_path", "nvcc.version", "nvcc.toolkit"), _nvcc),
    ("torch", ("torch.version", "torch.status"), _torch),
    ("torch's CUDA", ("torch.cuda",), _field("torch", "cuda")),
    ("torch's cuDNN", ("torch.cudnn",), _field("torch", "cudnn")),
    ("torch's NCCL", ("torch.nccl",), _field("torch", "nccl")),
    ("torch's CUDA available", ("torch.cuda_available", "torch.cuda_error"), _field("torch", "cuda_available")),
    ("torch's arch list", ("torch.arch_list",), _field("torch", "arch_list")),
    ("CUDA_HOME torch extensions use", ("torch.cpp_ext_cuda_home", "torch.cpp_ext_cuda_home_source"),
     _field("torch", "cpp_ext_cuda_home")),
    ("torchvision", ("torchvision",), _torchvision),
    ("host compiler", ("compiler.host", "compiler.gcc", "compiler.gxx"), _compiler),
    ("Python", ("env.python", "python"), _python),
    ("ninja", ("env.ninja",), _ninja),
    ("LD_LIBRARY_PATH", ("env.ld_library_path",), _plain("env.ld_library_path")),
    ("in a container", ("host.in_container",), _plain("host.in_container")),
    ("detectron2", ("detectron2",), _detectron2),
)


def _aspects(facts: FactSet) -> Dict[str, Tuple[Tuple[str, ...], Optional[str]]]:
    """label -> (evidence keys, value) for one machine, fixed aspects plus one per
    variable, compiled extension and declared requirement."""
    result = {label: (keys, get(facts)) for label, keys, get in ASPECTS}
    for name, value in sorted((facts.value("env.vars") or {}).items()):
        result[name] = ((f"env.{name}",), _text(value))
    for item in facts.value("builds") or []:
        built = item.get("built_with") or {}
        made = ", ".join(f"{what} {built[key]}" for key, what in (("torch", "torch"), ("cuda", "CUDA"),
                                                                 ("python", "Python")) if built.get(key))
        if item.get("kind") == "extension":
            state = {True: "imports", False: "does not import"}.get(item.get("imports"), "import not tested")
            label, value = f"extension {item.get('name')}", f"{state}; built for {made or 'unknown'}"
        else:
            label, value = f"build dir of {item.get('name')} ({item.get('owner')})", f"built for {made or 'unknown'}"
        while label in result:
            label += "'"
        result[label] = (("builds",), value)
    for key in facts.keys():
        if key.startswith("require."):
            result[f"requirement {key[8:]}"] = ((key,), _plain(key)(facts))
    return result


@dataclass
class Difference:
    what: str
    a: str
    b: str
    keys: Tuple[str, ...]
    causes: List[str] = field(default_factory=list)  # codes found in B only
    clears: List[str] = field(default_factory=list)  # codes found in A only

    def to_dict(self) -> Dict[str, Any]:
        return {"what": self.what, "a": self.a, "b": self.b, "causes": self.causes, "clears": self.clears}


@dataclass
class Diff:
    differences: List[Difference]
    only_a: Dict[str, Finding]  # code -> worst finding, present in A only
    only_b: Dict[str, Finding]
    untied: List[str]  # codes on one side only that no difference explains

    @property
    def same(self) -> bool:
        return not self.differences and not self.only_a and not self.only_b


_UNORDERED = {"CUDA toolkits"}  # lists whose order says nothing


def _shown(label: str, value: Optional[str], redactor: Redactor) -> str:
    if value is None:
        return UNSET if label.isupper() else NONE
    if label in _UNORDERED:
        return "; ".join(sorted(redactor.text(part) for part in value.split("; ")))
    return redactor.text(value)


def _codes(report: Report) -> Dict[str, Finding]:
    found: Dict[str, Finding] = {}
    for f in report.findings:
        if f.severity == Severity.OK:
            continue
        if f.code not in found or f.severity.rank > found[f.code].severity.rank:
            found[f.code] = f
    return found


def _evidence_keys(finding: Finding) -> List[str]:
    # "env.CUDA_HOME = None" -> env.CUDA_HOME; "builds[].path = ..." -> builds.path
    return [e.split(" = ", 1)[0].strip().replace("[]", "") for e in finding.evidence]


def _names(keys: Sequence[str], candidates: Sequence[str]) -> bool:
    return any(k == c or k.startswith(c + ".") for k in keys for c in candidates)


def compare(a: Report, b: Report, redactor: Optional[Redactor] = None,
            needs: Optional[Dict[str, Sequence[str]]] = None) -> Diff:
    """Compare two diagnosed reports. ``needs`` maps rule codes to the fact keys they read
    (the fallback when a finding's evidence names no differing fact)."""
    redactor = redactor or Redactor(enabled=False)
    aa, bb = _aspects(a.facts), _aspects(b.facts)
    differences = []
    for label in list(aa) + [k for k in bb if k not in aa]:
        keys, va = aa.get(label, bb.get(label))[0], aa.get(label, ((), None))[1]
        vb = bb.get(label, ((), None))[1]
        shown_a = _shown(label, va, redactor)
        shown_b = _shown(label, vb, redactor)
        if shown_a != shown_b:
            differences.append(Difference(label, shown_a, shown_b, keys))
    codes_a, codes_b = _codes(a), _codes(b)
    only_a = {c: f for c, f in codes_a.items() if c not in codes_b}
    only_b = {c: f for c, f in codes_b.items() if c not in codes_a}
    untied = []
    for code, finding in sorted(list(only_a.items()) + list(only_b.items())):
        evidence = _evidence_keys(finding)
        tied = [d for d in differences if _names(evidence, d.keys)]
        if not tied and needs:
            tied = [d for d in differences if _names(list(needs.get(code, ())), d.keys)]
        for d in tied:
            (d.clears if code in only_a else d.causes).append(code)
        if not tied:
            untied.append(code)
    return Diff(differences, only_a, only_b, untied)


def _codes_text(codes: Sequence[str], side: Dict[str, Finding]) -> str:
    return ", ".join(f"{c} ({side[c].severity.value})" for c in codes)


def render_text(diff: Diff, name_a: str, name_b: str) -> str:
    lines = [f"envdoctor diff: A = {name_a}, B = {name_b}"]
    if diff.same:
        lines.append("No differences that matter; the same findings on both.")
        return "\n".join(lines) + "\n"
    width = min(32, max((len(d.what) for d in diff.differences), default=0))
    for d in diff.differences:
        tie = []
        if d.causes:
            tie.append("causes " + _codes_text(d.causes, diff.only_b) + " in B")
        if d.clears:
            tie.append("clears " + _codes_text(d.clears, diff.only_a) + " of A")
        lines.append(f"  {d.what:<{width}}  {d.a} -> {d.b}" + (f"   [{'; '.join(tie)}]" if tie else ""))
    for code in diff.untied:
        side, where = (diff.only_a, "A") if code in diff.only_a else (diff.only_b, "B")
        lines.append(f"  {code} ({side[code].severity.value}) only in {where}: {side[code].title} "
                     f"(tied to none of the differences above)")
    lines.append(f"{len(diff.differences)} difference(s); findings only in A: "
                 f"{', '.join(sorted(diff.only_a)) or 'none'}; only in B: {', '.join(sorted(diff.only_b)) or 'none'}.")
    return "\n".join(lines) + "\n"


def render_json(diff: Diff, name_a: str, name_b: str) -> str:
    import json

    data = {"a": name_a, "b": name_b, "same": diff.same,
            "differences": [d.to_dict() for d in diff.differences],
            "findings_only_in_a": sorted(diff.only_a), "findings_only_in_b": sorted(diff.only_b),
            "untied": diff.untied}
    return json.dumps(data, indent=2) + "\n"
