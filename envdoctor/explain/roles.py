"""Give every line of a log a role: error, warning, note, consequence, noise or text.

Only the head of a line is examined (``HEAD`` characters): a 5 MB line costs
the same as a short one. The rules are ordered: noise first (progress, command
lines, INFO, CMake probes), then consequences (wrappers that report an error
found elsewhere), notes, warnings, errors. A compiler diagnostic's source
excerpt and caret lines take the role of the diagnostic above them, so the
source line of a warning is never taken for an error.
"""
from __future__ import annotations

import re
from typing import List, Sequence

HEAD = 2000

ERROR, WARNING, NOTE, CONSEQUENCE, NOISE, TEXT = "error", "warning", "note", "consequence", "noise", "text"

# Anchored at the line start (``match``): cheap, tried first.
_NOISE_START = re.compile(
    r"\s*(?:\[\s*\d+\s*/\s*\d+\s*\]\s|\[\s*\d+%\]\s|--\s|-- $|#\d+\s+\d+\.\d+\s"  # ninja, make, cmake, docker build
    # command lines (a path with a ':' in it is a broken CUDA_HOME showing, not a plain command)
    r"|(?:[^\s:]*/)?(?:nvcc|c\+\+|g\+\+|gcc|cc|clang\+\+|clang|cl|x86_64-\S+-g\+\+|ld)(?:\.exe)?\"?\s+-\S"
    r"|(?:running|copying|creating|writing|reading|building|installing|byte-compiling|adding|removing)\s"
    r"|Emitting ninja|Compiling objects|Allowing ninja|Using envvar|Detected CUDA files|Scanning dependencies"
    r"|Building (?:CXX|C|CUDA|NVCC)|Linking (?:CXX|C|CUDA)|Built target|Consolidate compiler|Processing "
    r"|Collecting |Downloading |Requirement already|Looking in (?:indexes|links)|Obtaining |Preparing |Using cached"
    r"|Successfully (?:built|installed)|Installing collected|Attempting uninstall|Found existing"
    r"|(?:Check(?!\s+failed)|Looking|Performing Test|Detecting)\b|I\d{4} \d\d:|\[I \d"
    r"|\d{4}-\d\d-\d\d[ T][\d:.,]+\s*(?:\|\s*)?(?:INFO|DEBUG)\b)", re.I)
_NOISE_ANY = re.compile(r"\bNCCL INFO\b|\s(?:INFO|DEBUG)\s|NCCL WARN Failed to open libibverbs", re.I)
_CONSEQUENCE_START = re.compile(
    r"\s*(?:FAILED:|ninja: build stopped|ninja: (?:job|subcommand) failed|g?make(?:\[\d+\])?: \*\*\*"
    r"|collect2(?:\.exe)?: (?:error|Fehler|错误)|compilation terminated|编译中断"
    r"|CMake Error at \S+\.cmake:\d+ \(message\):\s*$|Error generating|-- Configuring incomplete"
    r"|Traceback \(most recent call last\)|File \"|During handling of|The above exception was the direct cause"
    r"|CUDA kernel errors might be asynchronously|For debugging consider passing|Compile with `TORCH_USE_CUDA_DSA`"
    r"|error: subprocess-exited-with-error|ERROR: Failed building wheel|ERROR: Could not build wheels|[×╰│]"
    r"|note: This error originates|Result = FAIL|Waiting for unfinished jobs|\*\*\* Check failure stack trace"
    r"|subprocess\.CalledProcessError|frame #\d+:|@\s+0x[0-9a-f]+"
    r"|(?:torch\.distributed\.elastic\.multiprocessing\.errors\.)?ChildFailedError"
    r"|ERROR:torch\.distributed\.elastic\S*:failed \(exitcode"
    r"|(?:RuntimeError|OSError|SystemExit|error): Error (?:compiling objects|building extension)"
    r"|error: command .{0,300} failed with exit (?:status|code))", re.I)
# A consequence anywhere in the line (pip/setuptools prefix it with spaces or tags).
_CONSEQUENCE_ANYWHERE = re.compile(
    r"Error compiling objects for extension|Error building extension|failed with exit (?:status|code) \d"
    r"|subprocess-exited-with-error|returned non-zero exit status|ninja: build stopped", re.I)
_NOTE_START = re.compile(
    r"\s*(?:In file included from|from [^\s]+[:,]|In (?:member )?function|In instantiation of|required from"
    r"|instantiated from|detected during|\d+\s*\||\|\s*[\^~]|[\^~]{1,}\s*$|\^\s*$|~+\^|note:|Remark)", re.I)
_WARNING = re.compile(
    r"\bwarning\b|\bWarning:|UserWarning|DeprecationWarning|FutureWarning|RuntimeWarning|#warning|warnings\.warn"
    r"|^\s*W\d{4} \d\d:|^\s*\[W[ \d]|\bWARN(?:ING)?\b|警告|is deprecated|\[-W[\w-]+\]", re.I)
_WARNING_WORDS = ("warn", "警告", "deprecated", "[-w", "[w", "w0", "w1")
_ERROR = re.compile(
    r"\berror\b\s*(?:[:(#]|C\d{4}|\d+\b|LNK)|\bError\b|fatal error|\bfatal\b|nvcc fatal|#error|\bFATAL\b"
    r"|undefined reference|undefined symbol|cannot find -l|cannot open shared object|No such file or directory"
    r"|(?-i:not found)|\bKilled\b|^\s*[\w.]*(?:Error|Exception|Exit)\b\s*:?|died due to signal|terminated with signal"
    r"|NCCL WARN|CUDA error|cuda runtime error|no kernel image|couldn.t communicate|is not compatible with the current"
    r"|mismatch|incompatib|Failed to initialize|insufficient|Segmentation fault|core dumped|Aborted|\bfailed\b"
    r"|not compiled with|is not set|错误|致命|没有那个文件|找不到|无法|cannot convert|no suitable conversion"
    r"|was not declared|not declared in this scope|identifier not found|unsupported GNU|Unsupported gpu"
    r"|cannot import name|No module named|ImportError|is used but incompatible|Check failed", re.I)
_ERROR_WORDS = ("error", "fatal", "undefined", "cannot", "no such", "not found", "killed", "exception", "exit",
                "died", "terminated", "nccl warn", "no kernel", "communicate", "not compatible", "mismatch",
                "incompatib", "fail", "insufficient", "segmentation", "core dumped", "abort", "not compiled",
                "is not set", "错误", "致命", "没有那个文件", "找不到", "无法", "conversion", "not declared",
                "identifier not found", "unsupported", "no module named", "is used but")
_DIAGNOSTIC_WORDS = ("error", "warning", "note", "remark")
# A compiler diagnostic "file:line[:col]: kind:" (GCC/Clang) or "file(line): kind" (MSVC/nvcc).
_DIAGNOSTIC = re.compile(r"^\s*\S.*?(?::\d+(?::\d+)?:|\(\d+\)\s*:?)\s*(?:fatal )?(error|warning|note|remark)\b", re.I)
_ERROR_AFTER = re.compile(r"fatal error|\berror\b\s*:", re.I)
_EXCERPT = re.compile(r"(?:\s+\S|\s*\d+\s*\||\s*\|)")


def _classify(head: str):
    """(role, is_compiler_diagnostic) of a line's head."""
    if not head.strip():
        return NOISE, False
    if _NOISE_START.match(head):
        return NOISE, False
    low = head.lower()
    if ("info" in low or "debug" in low or "libibverbs" in low) and _NOISE_ANY.search(head):
        return NOISE, False
    if any(word in low for word in _DIAGNOSTIC_WORDS) and (":" in head or "(" in head):
        diag = _DIAGNOSTIC.match(head)
        if diag:
            kind = diag.group(1).lower()
            if kind == "error":
                return ERROR, True
            # "cc1plus: warning: ... gcc: fatal error: Killed ..." pasted on one line: the error wins.
            if _ERROR_AFTER.search(head, diag.end()):
                return ERROR, True
            return (WARNING if kind == "warning" else NOTE), True
    if _CONSEQUENCE_START.match(head) or (
            ("error" in low or "fail" in low or "exit" in low or "ninja" in low)
            and _CONSEQUENCE_ANYWHERE.search(head)):
        return CONSEQUENCE, False
    if _NOTE_START.match(head):
        return NOTE, False
    warning = _WARNING.search(head) if any(word in low for word in _WARNING_WORDS) else None
    error = _ERROR.search(head) if any(word in low for word in _ERROR_WORDS) else None
    if warning and error:
        # Both on one line: an error after the warning, said as an error, describes the line.
        later = error.start() > warning.start() and _ERROR_AFTER.search(head, warning.end())
        return (ERROR if later else WARNING), False
    if warning:
        return WARNING, False
    if error:
        return ERROR, False
    return TEXT, False


def classify(line: str) -> str:
    """The role of one line, judged on its head."""
    return _classify(line[:HEAD])[0]


def classify_all(lines: Sequence[str]) -> List[str]:
    """Roles for all lines; a warning's or note's source excerpt and caret lines become notes, never errors.

    Identical lines (build logs repeat them) are classified once.
    """
    roles: List[str] = []
    owner = None  # role of the compiler diagnostic whose excerpt lines may follow
    cache: dict = {}
    for line in lines:
        head = line[:HEAD]
        found = cache.get(head)
        if found is None:
            role, is_diag = _classify(head)
            found = (role, is_diag, bool(_EXCERPT.match(head)))
            if len(cache) < 100000:
                cache[head] = found
        role, is_diag, excerpt = found
        if is_diag:
            owner = role
        elif excerpt:
            if owner in (WARNING, NOTE) and role != CONSEQUENCE:
                role = NOTE
        else:
            owner = None
        roles.append(role)
    return roles
