"""Log -> roles -> signature events -> ranked diagnoses with alternatives.

Ranking follows the log, not the table: a root cause on an error line comes
first, the earliest first; symptoms (messages several causes produce) and the
user's own words come after; anything found only on a warning, note or noise
line never outranks an error. A signature that ``explains`` another category
moves before it (torch's "sm_86 is not compatible" warning explains the later
"no kernel image" error). Alternatives carry a confidence that context in the
log (docker, CUDA_VISIBLE_DEVICES, the CUDA versions mentioned) and, with
``--here``/``--from``, this machine's facts move.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from envdoctor.explain import roles as R
from envdoctor.explain.catalog import SIGNATURES
from envdoctor.explain.logfacts import FACT_ANCHORS, LogFacts, Scanner, gather
from envdoctor.explain.reading import Log
from envdoctor.explain.signature import CAUSE, SYMPTOM, TALK, Context, Signature, render
from envdoctor.explain import evidence, talk
from envdoctor.explain import fixtext as fx

MAX_EVIDENCE = 5


def label(score: float) -> str:
    return "high" if score >= 0.75 else "medium" if score >= 0.45 else "low"


@dataclass(frozen=True)
class Explanation:
    category: str
    line_no: int  # 1-based line of the key line in the log
    line: str  # the key line, quoted
    diagnosis: str
    fix: str
    confidence: str  # high | medium | low
    score: float = 0.0  # 0..1, the confidence as a number
    evidence: Tuple[Tuple[int, str], ...] = ()  # (line_no, line) of every line that supports it
    signature: str = ""
    alternative_to: Optional[str] = None  # category this is an alternative reading of

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["evidence"] = [{"line_no": n, "line": text} for n, text in self.evidence]
        return data


@dataclass
class Event:
    signature: Signature
    index: int  # line index in the Log
    groups: Tuple[Optional[str], ...]
    role: str
    col: int = 0  # where in the line the match starts (long lines are quoted around it)


@dataclass
class Analysis:
    explanations: List[Explanation]
    first_error: Optional[Tuple[int, str, List[str]]]
    hint: Optional[str] = None  # what to look for when only consequences were found
    notices: List[str] = field(default_factory=list)
    log_facts: Dict[str, Any] = field(default_factory=dict)
    machine_used: List[str] = field(default_factory=list)

    @property
    def recognised(self) -> bool:
        return bool(self.explanations)


QUOTE = 500


def _line_text(log: Log, index: int, col: int = 0) -> str:
    """The line, stripped; a long line is quoted around ``col`` with "…" where it was cut."""
    line = log.lines[index]
    if len(line) <= QUOTE:
        return line.strip()
    start = max(0, min(col - QUOTE // 3, len(line) - QUOTE))
    return ("…" if start else "") + line[start:start + QUOTE].strip() + ("…" if start + QUOTE < len(line) else "")


def _events(scanner: Scanner, kept: List[int], roles: List[str]) -> List[Event]:
    """Signature matches; ``kept[i]`` is the log line of the scanner's line ``i``."""
    events: List[Event] = []
    scanner.prefetch(phrasing.anchor for signature in SIGNATURES for phrasing in signature.phrasings)
    for signature in SIGNATURES:
        seen: Dict[int, bool] = {}
        for phrasing in signature.phrasings:
            for pos, match in scanner.search(phrasing.anchor, phrasing.regex):
                line = scanner.line_index(pos)
                index = kept[line]
                if index in seen or len(seen) >= MAX_EVIDENCE:
                    continue
                seen[index] = True
                events.append(Event(signature, index, match.groups(), roles[index], pos - scanner.starts[line]))
    return events


def _tier(event: Event) -> int:
    quiet = event.role in (R.WARNING, R.NOTE, R.NOISE)
    if quiet and not event.signature.any_role:
        return 3
    return {CAUSE: 0, SYMPTOM: 1, TALK: 2}.get(event.signature.strength, 2)


@dataclass
class _Candidate:
    event: Event
    tier: int
    score: float
    evidence: List[int]
    category: str
    diagnosis: Optional[str] = None
    fix: Optional[str] = None
    alternative_to: Optional[str] = None


def _clean(text: str) -> str:
    text = re.sub(r"\s*\(\s*\)", "", text)
    return re.sub(r"  +", " ", text).strip()


def analyse(log: Log, machine: Optional[Dict[str, Any]] = None) -> Analysis:
    """Everything explain finds in the log; ``machine`` is this (or a reported) machine's facts."""
    machine = machine or {}
    text = log.text
    starts = [0]
    for line in log.lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    roles = R.classify_all(log.lines)
    scanner = Scanner(text, starts)
    if R.NOISE not in roles:  # one set of passes for the facts' and the signatures' anchors
        scanner.prefetch(list(FACT_ANCHORS) + [p.anchor for s in SIGNATURES for p in s.phrasings])
    facts = gather(scanner)  # facts also come from noise: command lines name the nvcc, CMake says the CUDA
    # Signatures are looked for only on lines that are not noise (command lines, INFO, progress): a copy of
    # the log without them is often a fraction of its size.
    kept = [i for i, role in enumerate(roles) if role != R.NOISE]
    if len(kept) == len(roles):
        events = _events(scanner, kept, roles)
    else:
        events = _events(Scanner("\n".join(log.lines[i] for i in kept)), kept, roles)
    candidates = _rank(events)
    candidates = _causality(candidates)
    explanations: List[Explanation] = []
    seen_categories = set()
    for cand in candidates:
        for item in _with_alternatives(cand, log, facts, machine):
            if item.category in seen_categories:
                continue
            seen_categories.add(item.category)
            explanations.append(item)
    if not explanations:
        explanations = talk.from_talk(log, scanner, facts, roles)
    hint = None if explanations else _consequence_hint(log, roles)
    if not explanations:
        # No known message: weigh the log's clues (low confidence, only when one category clearly leads).
        explanations = evidence.classify(log, roles)
    first = _first_error(log, roles, explanations)
    return Analysis(explanations, first, hint, list(log.notices), facts.to_dict(), sorted(machine))


def _rank(events: List[Event]) -> List[_Candidate]:
    by_category: Dict[str, _Candidate] = {}
    ordered = sorted(events, key=lambda e: (_tier(e), e.index))
    for event in ordered:
        tier = _tier(event)
        category = event.signature.category
        current = by_category.get(category)
        if current is None:
            score = event.signature.confidence if tier < 3 else min(event.signature.confidence, 0.4)
            by_category[category] = _Candidate(event, tier, score, [event.index], category)
        elif event.index not in current.evidence and len(current.evidence) < MAX_EVIDENCE:
            current.evidence.append(event.index)
    return sorted(by_category.values(), key=lambda c: (c.tier, c.event.index, -c.score))


def _causality(cands: List[_Candidate]) -> List[_Candidate]:
    """A cause moves before the categories it explains (if it is not only a warning while they are errors)."""
    result = list(cands)
    changed = True
    guard = 0
    while changed and guard < 20:
        changed, guard = False, guard + 1
        for i, cand in enumerate(result):
            for j in range(i):
                other = result[j]
                explained = other.category in cand.event.signature.explains
                if explained and other is not cand and cand.tier <= 1 + other.tier:
                    result.insert(j, result.pop(i))
                    cand.tier = min(cand.tier, other.tier)
                    changed = True
                    break
            if changed:
                break
    return result


def _ctx(cand: _Candidate, log: Log, facts: LogFacts, machine: Dict[str, Any]) -> Context:
    return Context(cand.event.groups, log.lines[cand.event.index], facts, machine)


def _make(cand: _Candidate, log: Log, ctx: Context, category: str, score: float, diagnosis, fix,
          alternative_to: Optional[str] = None) -> Explanation:
    index = cand.event.index
    quote = _line_text(log, index, cand.event.col)
    evidence = tuple((log.number(i), quote if i == index else _line_text(log, i)) for i in cand.evidence)
    return Explanation(category, log.number(index), quote, _clean(render(diagnosis, ctx)),
                       _clean(render(fix, ctx)), label(score), round(score, 2), evidence, cand.event.signature.id,
                       alternative_to)


def _with_alternatives(cand: _Candidate, log: Log, facts: LogFacts, machine: Dict[str, Any]) -> List[Explanation]:
    sig = cand.event.signature
    ctx = _ctx(cand, log, facts, machine)
    main_score = cand.score
    main_category = sig.category
    alt_scores = {alt.category: alt.confidence for alt in sig.alternatives}
    main_diag, main_fix = sig.diagnosis, sig.fix
    in_container = machine.get("host.in_container")
    # --- context in the log ---
    if "container_gpu_not_exposed" in alt_scores:
        if facts.docker and sig.id != "container-no-driver":  # that message is docker's own: no extra clue
            alt_scores["container_gpu_not_exposed"] = 0.7
            main_score = min(main_score, 0.35)
        if in_container is True and not machine.get("driver.present", True):
            alt_scores["container_gpu_not_exposed"] = 0.85
            main_score = min(main_score, 0.3)
        elif in_container is False:
            alt_scores.pop("container_gpu_not_exposed")
            main_score = max(main_score, 0.8)
    if "gpu_selection" in alt_scores:
        cvd = facts.cvd or _machine_cvd(machine)
        if cvd:
            alt_scores["gpu_selection"] = 0.65
            main_score = min(main_score, 0.35)
        else:
            alt_scores.pop("gpu_selection")
    if sig.id == "nvcc-missing":
        path = ctx.group(0)
        if re.search(r"/cuda-\d+(?:\.\d+)?/bin/nvcc$|/bin/bin/nvcc$", path or ""):
            # A versioned toolkit path that is not there: CUDA_HOME or the script names a toolkit not installed.
            main_category, main_score = "cuda_home_misconfigured", 0.6
            main_diag = ("The build looked for nvcc at {g0}, which does not exist: CUDA_HOME (or a path in the build "
                         "script) names a toolkit that is not installed here, or the toolkit's bin/ instead of its "
                         "root.")
            main_fix = ("Set CUDA_HOME to the root of the toolkit that is installed (the directory whose bin/ holds "
                        "nvcc): `export CUDA_HOME=/usr/local/cuda-X.Y` (`ls -d /usr/local/cuda*` lists them). "
                        + "`envdoctor check` shows this machine's toolkit, driver, GPU and torch.")
            alt_scores = {"nvcc_missing": 0.35}
        elif machine.get("nvcc.path"):
            alt_scores["cuda_home_misconfigured"] = 0.6
            main_score = 0.4
    if sig.category == "missing_runtime_lib" and "prebuilt_wheel_mismatch" in alt_scores:
        # Only the CUDA toolkit's own libraries carry CUDA's major version in their soname (cuDNN, NCCL do not).
        lib_major = re.search(r"lib(?:cudart|cublas\w*|cufft\w*|curand|cusparse\w*|cusolver\w*|nvrtc\w*|nvJitLink|"
                              r"nvToolsExt|cupti)\.so\.(\d+)", ctx.group(0) or "")
        if lib_major and _built_for_another_cuda(lib_major.group(1), text_of(log), facts, machine):
            alt_scores["prebuilt_wheel_mismatch"] = 0.6
            main_score = min(main_score, 0.4)
    if sig.category == "arch_unsupported_by_nvcc" and (facts.nvcc_path in ("/usr/bin/nvcc",) or
                                                       machine.get("nvcc.path") == "/usr/bin/nvcc"):
        alt_scores["multiple_cuda_toolkits"] = 0.4
    if sig.id == "cuda-unavailable-load" and "no cuda runtime" in ctx.line.lower() and _IMAGE_BUILD.search(
            text_of(log)):
        # torch's builder prints this while an image is built: `docker build` has no GPU, so the extension being
        # built there gets no CUDA kernels (its setup.py checks torch.cuda.is_available()).
        main_category, main_score = "ext_built_without_cuda", 0.6
        main_diag = ("The extension is built inside `docker build`, where no GPU is visible (torch says \"No CUDA "
                     "runtime is found\"), so its setup.py builds it without CUDA kernels.")
        main_fix = ("Build with CUDA forced and the archs named: `ENV FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=\"8.0;8.6\"` "
                    "(your GPUs' capabilities) before the build step in the Dockerfile, or build in `docker run "
                    "--gpus all`. " + fx.CHECK)
        alt_scores = {"torch_cpu_only": 0.35}
    if cand.tier == 3:
        # Seen only on warning/note lines: context may reorder the readings, never make them confident.
        main_score = min(main_score, 0.4)
        alt_scores = {k: min(v, 0.4) for k, v in alt_scores.items()}
    main = _make(cand, log, ctx, main_category, main_score, main_diag, main_fix)
    result = [main]
    for alt in sig.alternatives:
        if alt.category not in alt_scores:
            continue
        result.append(_make(cand, log, ctx, alt.category, alt_scores[alt.category], alt.diagnosis, alt.fix,
                            alternative_to=main_category))
    for category, score in alt_scores.items():
        if category not in {a.category for a in sig.alternatives} and category != main_category:
            result.append(_make(cand, log, ctx, category, score, sig.diagnosis, sig.fix, alternative_to=main_category))
    # The most likely reading first; the others stay right after it.
    result.sort(key=lambda e: -e.score)
    return result


# A compiled extension module being imported: "import flash_attn_2_cuda as ...", "from mmcv import _ext",
# "from . import _C", or an ImportError naming a package's own .so (not torch's, not a framework's).
_EXTENSION_IMPORT = re.compile(
    r"^\s*(?:import \w*(?:_cuda|_C|_ext)\w*\b|from [\w.]* import (?:_C|_ext|\w*cuda\w*)\b|\w+ = \w*\.?load_ext\()"
    r"|ImportError: \S*/site-packages/(?!torch/|tensorflow|jax|nvidia/)[\w.-]+/\S*\.so\S*: lib\w+\.so", re.M)


def _built_for_another_cuda(major: str, text: str, facts: LogFacts, machine: Dict[str, Any]) -> bool:
    """Whether a missing CUDA library of ``major`` is better read as a package built for another CUDA: the log
    (or this machine) shows a CUDA of another major version, or a compiled package's own module asks for it."""
    others = facts.cuda_mentions + [v for v in (facts.smi_cuda, facts.torch_cuda, machine.get("nvcc.version")) if v]
    if any(str(o).split(".")[0] != major for o in others):
        return True
    mention = re.search(r"cuda ?(\d+)\.\d", text, re.I) if re.search(r"cuda(\d+)\.\d", text, re.I) else None
    if mention and mention.group(1) != major:
        return True
    # The library is asked for by a compiled package's own module, not by torch or a framework: that
    # package's binary was built for the CUDA whose runtime is missing here.
    return bool(_EXTENSION_IMPORT.search(text))


_IMAGE_BUILD = re.compile(r"^\s*(?:Step \d+/\d+ : RUN\b|#\d+ \[[^\]]*\] RUN\b)", re.M)


def text_of(log: Log) -> str:
    return "\n".join(line[:2000] for line in log.lines[:5000])


def _machine_cvd(machine: Dict[str, Any]) -> Optional[str]:
    env = machine.get("env.vars") or {}
    if isinstance(env, dict) and "CUDA_VISIBLE_DEVICES" in env:
        value = str(env["CUDA_VISIBLE_DEVICES"]).strip()
        if value in ("", "-1") or value.startswith("$"):
            return value or "(empty)"
    return None


def _first_error(log: Log, roles: Sequence[str], found: List[Explanation],
                 context: int = 3) -> Optional[Tuple[int, str, List[str]]]:
    index = next((i for i, role in enumerate(roles) if role == R.ERROR), None)
    if index is None and found:
        number = min(e.line_no for e in found)
        index = next(i for i in range(len(log.lines)) if log.number(i) == number)
    if index is None:
        index = next((i for i, role in enumerate(roles) if role == R.CONSEQUENCE and
                      not log.lines[i].lstrip().startswith(("File \"", "Traceback"))), None)
    if index is None:
        return None
    start, end = max(0, index - context), min(len(log.lines), index + context + 1)
    return log.number(index), _line_text(log, index), [line[:500] for line in log.lines[start:end]]


_HINTS = (
    (re.compile(r"Error compiling objects for extension|Error building extension|ninja: build stopped|FAILED:", re.I),
     "the compiler errors above it: search the log for the first line with 'error:' (not 'warning:') after a "
     "'FAILED:' line; `envdoctor explain` knows most of them when they are in the log"),
    (re.compile(r"collect2|ld returned", re.I),
     "the linker lines just above it ('undefined reference', 'cannot find -l...')"),
    (re.compile(r"failed with exit (?:status|code)|returned non-zero exit status|subprocess-exited-with-error", re.I),
     "the first 'error' line printed by the command that failed (run it again with `pip install -v` or "
     "`MAX_JOBS=1` so its output is not interleaved)"),
    (re.compile(r"Traceback|File \"", re.I), "the exception line at the end of the traceback"),
)


def _consequence_hint(log: Log, roles: Sequence[str]) -> Optional[str]:
    for index, role in enumerate(roles):
        if role != R.CONSEQUENCE:
            continue
        line = log.lines[index]
        for pattern, where in _HINTS:
            if pattern.search(line[:2000]):
                return (f"Line {log.number(index)} only reports that something failed earlier "
                        f"(\"{line.strip()[:120]}\"); the cause is in {where}. Paste the whole log, not only "
                        "its end.")
    return None


def matches(signature: Signature, text: str) -> bool:
    """Whether one signature alone finds itself in the text (its must-fire/must-not-fire tests use this)."""
    log_text = "\n".join(_clean_lines(text))
    scanner = Scanner(log_text)
    return any(True for phrasing in signature.phrasings for _ in scanner.search(phrasing.anchor, phrasing.regex))


def _clean_lines(text: str) -> List[str]:
    from envdoctor.explain.reading import clean

    return clean(text)
