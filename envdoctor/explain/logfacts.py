"""Facts a log states about its own machine: versions, paths, GPU, context.

Each finder looks at a bounded window of text (the first match of a cheap
literal, then a regular expression on a window around it), so the cost is
linear in the log size. These facts adapt the fix text (the arch in the
error, the nvcc that ran, the torch/CUDA versions mentioned, the ops path)
and decide between alternatives (a container? CUDA_VISIBLE_DEVICES hiding
every GPU?).
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from envdoctor import knowledge as kb

WINDOW = 600
MAX_HITS = 200
MARGIN = 200  # longest match text expected after its anchor


class Scanner:
    """Literal search over a lower-cased copy of the text, with bounded windows for the regexes."""

    def __init__(self, text: str, starts: Optional[List[int]] = None, noise: Optional[List[bool]] = None):
        self.text = text
        low = text.lower()
        self.low = low if len(low) == len(text) else _ascii_lower(text)
        self._hits: Dict[str, List[int]] = {}
        self.starts = starts if starts is not None else line_starts(text)
        self.noise = noise  # per line: True where nothing is to be found (command lines, INFO, probes)

    def view(self, noise: Optional[List[bool]]) -> "Scanner":
        """The same text with another noise mask (and its own hit cache)."""
        other = object.__new__(Scanner)
        other.text, other.low, other.starts, other.noise, other._hits = self.text, self.low, self.starts, noise, {}
        return other

    def line_index(self, pos: int) -> int:
        return bisect.bisect_right(self.starts, pos) - 1

    def line_bounds(self, pos: int) -> Tuple[int, int]:
        """(start, end) of the line holding ``pos``, by bisection: no rescans of long lines."""
        i = self.line_index(pos)
        start = self.starts[i]
        end = self.starts[i + 1] - 1 if i + 1 < len(self.starts) else len(self.text)
        return start, end

    def hits(self, anchor: str) -> List[int]:
        """Where the anchor occurs, on lines that are not noise; the first ``MAX_HITS`` of them."""
        found = self._hits.get(anchor)
        if found is None:
            found = []
            noise, low = self.noise, self.low
            pos = low.find(anchor)
            while pos >= 0 and len(found) < MAX_HITS:
                if noise is None or not noise[self.line_index(pos)]:
                    found.append(pos)
                    pos = low.find(anchor, pos + 1)
                else:  # skip the rest of a noise line at once
                    pos = low.find(anchor, self.line_bounds(pos)[1] + 1)
            self._hits[anchor] = found
        return found

    def prefetch(self, anchors: Iterable[str]) -> None:
        """Find the occurrences of many anchors in a few passes instead of one ``find`` pass per anchor.

        Anchors are grouped by their first character; one regular expression per group (a literal first
        character, then the alternatives) lets the regex engine skip to that character in C. A match
        restarts the search one character later, so anchors nested in another are still found.
        """
        todo = sorted({a for a in anchors if a and a not in self._hits}, key=len, reverse=True)
        groups: Dict[str, List[str]] = {}
        for anchor in todo:
            groups.setdefault(anchor[0], []).append(anchor)
        low, noise = self.low, self.noise
        for first, members in groups.items():
            found: Dict[str, List[int]] = {a: [] for a in members}
            live, pos = list(members), 0
            while live:
                rx = re.compile(re.escape(first) + "(?:" + "|".join(re.escape(a[1:]) for a in live) + ")")
                saturated = False
                while True:
                    match = rx.search(low, pos)
                    if match is None:
                        break
                    start = match.start()
                    if noise is not None and noise[self.line_index(start)]:
                        pos = self.line_bounds(start)[1] + 1
                        continue
                    for anchor in live:
                        if low.startswith(anchor, start):
                            found[anchor].append(start)
                    pos = start + 1
                    if any(len(found[a]) >= MAX_HITS for a in live):
                        # Stop looking for anchors seen often enough; go on with the others from here.
                        live = [a for a in live if len(found[a]) < MAX_HITS]
                        saturated = True
                        break
                if not saturated:
                    break
            self._hits.update(found)

    def _find_from(self, anchor: str, pos: int, limit: int) -> List[int]:
        out: List[int] = []
        noise, low = self.noise, self.low
        pos = low.find(anchor, pos)
        while pos >= 0 and len(out) < limit:
            if noise is None or not noise[self.line_index(pos)]:
                out.append(pos)
                pos = low.find(anchor, pos + 1)
            else:
                pos = low.find(anchor, self.line_bounds(pos)[1] + 1)
        return out

    def window(self, pos: int, width: int = WINDOW) -> Tuple[int, str]:
        """(start, text) around ``pos``: whole lines when they are short, else ``width`` each side.

        Messages wrapped over a few short lines (pip, torch) stay whole: up to two short lines before
        and three after are included.
        """
        i = self.line_index(pos)
        line_start, line_end = self.line_bounds(pos)
        start = line_start if pos - line_start <= width else pos - width
        end = line_end if line_end - pos <= width else pos + width
        starts, n = self.starts, len(self.starts)
        j = i
        while j > 0 and i - j < 2 and start == starts[j] and starts[j] - starts[j - 1] <= width // 3:
            j -= 1
            start = starts[j]
        k = i + 1
        while k < n and k - i <= 3 and end == starts[k] - 1:
            nxt = starts[k + 1] - 1 if k + 1 < n else len(self.text)
            if nxt - end > width // 2:
                break
            end, k = nxt, k + 1
        return start, self.text[start:end]

    def search(self, anchor: str, regex: "re.Pattern[str]") -> Iterator[Tuple[int, "re.Match[str]"]]:
        """(absolute position, match) for each distinct match found around the anchor's occurrences."""
        seen = set()
        covered = -1  # an occurrence well inside the last window was searched with it
        for pos in self.hits(anchor):
            if pos + MARGIN < covered:
                continue
            start, window = self.window(pos)
            covered = start + len(window)
            for match in regex.finditer(window):
                absolute = start + match.start()
                if absolute in seen:
                    continue
                seen.add(absolute)
                yield absolute, match

    def first(self, anchor: str, regex: "re.Pattern[str]") -> Optional["re.Match[str]"]:
        for _, match in self.search(anchor, regex):
            return match
        return None


def line_starts(text: str) -> List[int]:
    starts = [0]
    pos = text.find("\n")
    while pos >= 0:
        starts.append(pos + 1)
        pos = text.find("\n", pos + 1)
    return starts


_ASCII_LOWER = {c: c + 32 for c in range(65, 91)}


def _ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


@dataclass
class LogFacts:
    docker: Optional[str] = None  # the line that shows the log comes from a container
    cvd: Optional[str] = None  # CUDA_VISIBLE_DEVICES value when set in a way that can hide GPUs
    nvcc_path: Optional[str] = None
    nvcc_release: Optional[str] = None
    cuda_mentions: List[str] = field(default_factory=list)  # CUDA versions the log names (toolkit talk, paths)
    smi_cuda: Optional[str] = None  # nvidia-smi's "CUDA Version" (the driver's maximum)
    driver: Optional[str] = None
    torch: Optional[str] = None
    torch_cuda: Optional[str] = None
    gpu: Optional[str] = None
    gpu_cc: Optional[str] = None
    ops_dir: Optional[str] = None
    conda: bool = False

    def to_dict(self) -> Dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], False)}


_DOCKER = re.compile(r"(?<![\w.-])(?:docker|nvidia-docker|podman|apptainer|singularity)(?![\w-])"
                     r"|/\.dockerenv|(?<![\w-])--gpus\b|--runtime[= ]nvidia|\bcontainers?\b|容器"
                     r"|\broot@[0-9a-f]{12}\b|nvidia/cuda:\S+", re.I)
# CUDA_VISIBLE_DEVICES=1, export CUDA_VISIBLE_DEVICES="", os.environ["CUDA_VISIBLE_DEVICES"] = '1'
_CVD = re.compile(r"CUDA_VISIBLE_DEVICES['\"]?\]?[ \t]*[=:][ \t]*(\"[^\"\n]*\"|'[^'\n]*'|[^\s;,)]*)")
_NVCC_PATH = re.compile(r"(?:command|compiler|execute|Using|CUDA compiler:?)\s*[:'\"]*\s*'?\"?"
                        r"((?:[A-Za-z]:)?[^\s'\":]*?/nvcc(?:\.exe)?)\b", re.I)
# The compiler of a build command line: "[1/2] /usr/local/bin/nvcc -MD ...".
NVCC_COMMAND = re.compile(r"^[ \t]*(?:\[\s*\d+/\d+\]\s+)?((?:[A-Za-z]:)?[^\s'\":]*/nvcc(?:\.exe)?)\s+-", re.M)
_NVCC_RELEASE = re.compile(r"release (\d+\.\d+), V\d")
_SMI = re.compile(r"CUDA Version:\s*(\d+\.\d+)")
_DRIVER = re.compile(r"Driver Version:\s*(\d+\.\d+(?:\.\d+)?)")
_TORCH = re.compile(r"\btorch(?:==|\.__version__\s*[:=]+\s*'?|\s+version:?\s*|\s+|-)(\d+\.\d+(?:\.\d+)?)"
                    r"(?:\+cu(\d{2,3}))?"
                    r"|PyTorch version:\s*(\d+\.\d+(?:\.\d+)?)(?:\+cu(\d{2,3}))?", re.I)
_TORCH_CUDA = re.compile(r"CUDA used to build PyTorch:\s*(\d+\.\d+)|compile\s+PyTorch \((\d+\.\d+)\)")
_CUDA_MENTION = re.compile(r"(?:\bcuda|/cuda-|\bCUDA Toolkit|\bCUDA detected:|cuda_|\bcu)[ _-]?(?:toolkit[ _-]?)?"
                           r"(?:version[ :]*(?:is )?)?[vV]?(\d{1,2}\.\d)(?!\d*\.\d)\b", re.I)
_GPU = re.compile(r"((?:NVIDIA |GeForce |Tesla |Quadro |RTX )[\w -]*?(?:\d{3,4}\w*|A\d{2,3}\w*|[HVTPLK]\d{2,3}\w*))\b")
_OPS = re.compile(r"((?:[A-Za-z]:)?[\w./\\~-]*?[/\\]ops)[/\\](?:functions|modules|src|setup\.py|make\.sh)")


def _first_line(scanner: Scanner, anchor: str, regex: "re.Pattern[str]") -> Optional[str]:
    for pos, match in scanner.search(anchor, regex):
        start, end = scanner.line_bounds(pos)
        return scanner.text[max(start, pos - 150):min(end, pos + 150)].strip()
    return None


FACT_ANCHORS = ("docker", "podman", "apptainer", "singularity", "--gpus", "runtime", "container", "容器", "root@",
                "nvidia/cuda:", "cuda_visible_devices", "nvcc", "release ", "cuda version", "driver version", "torch",
                "pytorch version", "cuda used to build", "compile", "cuda", "cu1", "cu9", "nvidia ", "geforce", "tesla",
                "quadro", "rtx", "ops", "conda", "/envs/")


def gather(scanner: Scanner) -> LogFacts:
    scanner.prefetch(FACT_ANCHORS)
    facts = LogFacts()
    for anchor in FACT_ANCHORS[:10]:
        line = _first_line(scanner, anchor, _DOCKER)
        if line:
            facts.docker = line
            break
    for _, match in scanner.search("cuda_visible_devices", _CVD):
        value = match.group(1).strip("'\"")
        # Only values that can hide every GPU matter: empty, -1, an unset $VAR, or an index other than 0.
        if value in ("", "-1", "NoDevFiles") or value.startswith("$") or re.fullmatch(r"[1-9][\d,]*", value):
            facts.cvd = value or "(empty)"
            break
    match = scanner.first("nvcc", _NVCC_PATH) or scanner.first("nvcc", NVCC_COMMAND)
    if match:
        facts.nvcc_path = match.group(1)
    match = scanner.first("release ", _NVCC_RELEASE)
    if match:
        facts.nvcc_release = match.group(1)
    match = scanner.first("cuda version", _SMI)
    if match:
        facts.smi_cuda = match.group(1)
    match = scanner.first("driver version", _DRIVER)
    if match:
        facts.driver = match.group(1)
    for anchor in ("torch", "pytorch version"):
        match = scanner.first(anchor, _TORCH)
        if match:
            facts.torch = match.group(1) or match.group(3)
            tag = match.group(2) or match.group(4)
            if tag:
                facts.torch_cuda = f"{tag[:-1]}.{tag[-1]}"
            break
    for anchor in ("cuda used to build", "compile"):
        match = scanner.first(anchor, _TORCH_CUDA)
        if match:
            facts.torch_cuda = match.group(1) or match.group(2)
            break
    mentions: List[str] = []
    for anchor in ("cuda", "cu1", "cu9"):
        for _, match in scanner.search(anchor, _CUDA_MENTION):
            if match.group(1) not in mentions and len(mentions) < 8:
                mentions.append(match.group(1))
    facts.cuda_mentions = mentions
    for anchor in ("nvidia ", "geforce", "tesla", "quadro", "rtx"):
        match = scanner.first(anchor, _GPU)
        if match:
            cc = kb.compute_capability(match.group(1))
            if cc:
                facts.gpu, facts.gpu_cc = match.group(1).strip(), cc
                break
    match = scanner.first("ops", _OPS)
    if match:
        facts.ops_dir = match.group(1)
    facts.conda = bool(scanner.hits("conda") or scanner.hits("/envs/"))
    return facts
