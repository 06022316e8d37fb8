"""Facts a log states about its own machine: versions, paths, GPU, context.

Each finder looks at a bounded window of text (the first match of a cheap
literal, then a regular expression on a window around it), so the cost is
linear in the log size. These facts adapt the fix text (the arch in the
error, the nvcc that ran, the torch/CUDA versions mentioned, the ops path)
and decide between alternatives (a container? CUDA_VISIBLE_DEVICES hiding
every GPU?).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from envdoctor import knowledge as kb

WINDOW = 600
MAX_HITS = 200


class Scanner:
    """Literal search over a lower-cased copy of the text, with bounded windows for the regexes."""

    def __init__(self, text: str):
        self.text = text
        low = text.lower()
        self.low = low if len(low) == len(text) else _ascii_lower(text)
        self._hits: Dict[str, List[int]] = {}

    def hits(self, anchor: str) -> List[int]:
        found = self._hits.get(anchor)
        if found is None:
            found = []
            pos = self.low.find(anchor)
            while pos >= 0 and len(found) < MAX_HITS:
                found.append(pos)
                pos = self.low.find(anchor, pos + 1)
            self._hits[anchor] = found
        return found

    def window(self, pos: int, width: int = WINDOW) -> Tuple[int, str]:
        """(start, text) around ``pos``: whole lines when they are short, else ``width`` each side."""
        text = self.text
        line_start = text.rfind("\n", 0, pos) + 1
        start = line_start if pos - line_start <= width else pos - width
        line_end = text.find("\n", pos)
        line_end = len(text) if line_end < 0 else line_end
        end = line_end if line_end - pos <= width else pos + width
        # Messages wrapped over a few short lines (pip, torch) stay whole.
        extra = start
        for _ in range(2):
            prev = text.rfind("\n", 0, max(0, extra - 1))
            if extra - prev > width // 3 or extra == 0:
                break
            extra = prev + 1
        start = min(start, extra)
        for _ in range(3):
            nxt = text.find("\n", end + 1)
            nxt = len(text) if nxt < 0 else nxt
            if nxt - end > width // 2 or end >= len(text):
                break
            end = nxt
        return start, text[start:end]

    def search(self, anchor: str, regex: "re.Pattern[str]") -> Iterator[Tuple[int, "re.Match[str]"]]:
        """(absolute position, match) for each distinct match found around the anchor's occurrences."""
        seen = set()
        last_end = -1
        for pos in self.hits(anchor):
            if pos < last_end:
                continue
            start, window = self.window(pos)
            for match in regex.finditer(window):
                absolute = start + match.start()
                if absolute in seen:
                    continue
                seen.add(absolute)
                last_end = max(last_end, start + match.end())
                yield absolute, match

    def first(self, anchor: str, regex: "re.Pattern[str]") -> Optional["re.Match[str]"]:
        for _, match in self.search(anchor, regex):
            return match
        return None


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
_CVD = re.compile(r"CUDA_VISIBLE_DEVICES[ \t]*[=:][ \t]*(\"[^\"\n]*\"|'[^'\n]*'|\S*)")
_NVCC_PATH = re.compile(r"(?:command|compiler|execute|Using|CUDA compiler:?)\s*[:'\"]*\s*'?\"?((?:[A-Za-z]:)?[^\s'\":]*?/nvcc(?:\.exe)?)\b", re.I)
_NVCC_RELEASE = re.compile(r"release (\d+\.\d+), V\d")
_SMI = re.compile(r"CUDA Version:\s*(\d+\.\d+)")
_DRIVER = re.compile(r"Driver Version:\s*(\d+\.\d+(?:\.\d+)?)")
_TORCH = re.compile(r"\btorch(?:==|\s+version:?\s*|\s+|-)(\d+\.\d+(?:\.\d+)?)(?:\+cu(\d{2,3}))?|PyTorch version:\s*(\d+\.\d+(?:\.\d+)?)(?:\+cu(\d{2,3}))?", re.I)
_TORCH_CUDA = re.compile(r"CUDA used to build PyTorch:\s*(\d+\.\d+)|compile\s+PyTorch \((\d+\.\d+)\)")
_CUDA_MENTION = re.compile(r"(?:\bcuda|/cuda-|\bCUDA Toolkit|\bCUDA detected:|cuda_|\bcu)[ _-]?(?:toolkit[ _-]?)?[vV]?(\d{1,2}\.\d)(?!\d*\.\d)\b", re.I)
_GPU = re.compile(r"((?:NVIDIA |GeForce |Tesla |Quadro |RTX )[\w -]*?(?:\d{3,4}\w*|A\d{2,3}\w*|[HVTPLK]\d{2,3}\w*))\b")
_OPS = re.compile(r"((?:[A-Za-z]:)?[\w./\\~-]*?[/\\]ops)[/\\](?:functions|modules|src|setup\.py|make\.sh)")


def _first_line(scanner: Scanner, anchor: str, regex: "re.Pattern[str]") -> Optional[str]:
    for pos, match in scanner.search(anchor, regex):
        start = scanner.text.rfind("\n", 0, pos) + 1
        end = scanner.text.find("\n", pos)
        return scanner.text[start:end if end >= 0 else len(scanner.text)].strip()[:300]
    return None


def gather(scanner: Scanner) -> LogFacts:
    facts = LogFacts()
    for anchor in ("docker", "podman", "apptainer", "singularity", "--gpus", "runtime", "container", "容器",
                   "root@", "nvidia/cuda:"):
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
    match = scanner.first("nvcc", _NVCC_PATH)
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
