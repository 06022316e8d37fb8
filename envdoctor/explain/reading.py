"""Bytes -> clean text lines, in linear time, whatever the encoding or size.

* decoding: a BOM decides (UTF-8, UTF-16 LE/BE, UTF-32); without one, a NUL
  byte in every other position means UTF-16 (what PowerShell's ``>`` writes);
  then UTF-8, then latin-1, which cannot fail;
* ANSI colour/cursor sequences are removed, typographic quotes and full-width
  punctuation become ASCII (compilers print ‘x’ in some locales, CJK logs
  use ：), and carriage-return progress bars keep only their last state;
* input over ``max_bytes`` is streamed: the head and the tail are kept, the
  middle is counted, never silently dropped (:class:`Log` says what was skipped).
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from typing import BinaryIO, List, Optional

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
_CHUNK = 1024 * 1024

_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]{0,512}(?:\x07|\x1b\\)|[@-Z\\-_])")
_PUNCT_MAP = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'", "\u0060": "`",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\uff1a": ":", "\uff08": "(", "\uff09": ")", "\uff0c": ",", "\uff1b": ";", "\u3000": " ", "\u00a0": " ",
    "\u2013": "-", "\u2014": "-", "\u2212": "-",
}
# One state of a progress bar: "45%|████", "12/50 [00:03<00:09", "1.2 it/s", "Downloading 3.4 MB".
_PROGRESS = re.compile(r"\d%|\d+/\d+ \[|it/s|s/it|[\u2580-\u259f]|(?:MB|KB|GB|kB)/s|^\s*[\d.]+\s*[kMG]?B\b")


@dataclass
class Log:
    """The text to explain, as lines, and what (if anything) was not read."""

    lines: List[str]
    encoding: str = "utf-8"
    total_bytes: int = 0
    gap_index: Optional[int] = None  # lines[gap_index:] come after the skipped middle
    skipped_lines: int = 0
    skipped_bytes: int = 0
    notices: List[str] = field(default_factory=list)

    def number(self, index: int) -> int:
        """The 1-based line number, in the original input, of ``lines[index]``."""
        if self.gap_index is not None and index >= self.gap_index:
            return index + 1 + self.skipped_lines
        return index + 1

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def sniff_encoding(data: bytes) -> str:
    """The codec for these bytes: BOM first, then the NUL pattern of UTF-16, then UTF-8 or latin-1."""
    for bom, name in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                      (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                      (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            body = data[len(bom):len(bom) + 4096]
            # Text in UTF-16/32 has NUL bytes (ASCII digits, paths, newlines); bytes that merely start
            # like a BOM and have almost none are not.
            if name == "utf-8-sig" or len(body) < 8 or body.count(0) >= 0.05 * len(body):
                return name
            break
    sample = data[:4096]
    if len(sample) >= 4:
        even, odd = sample[0::2], sample[1::2]
        # ASCII text in UTF-16: one byte of every pair is NUL.
        if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.1 * len(even):
            return "utf-16-le"
        if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.1 * len(odd):
            return "utf-16-be"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of a chunk is still UTF-8.
        if exc.start >= len(data) - 3 and exc.reason.startswith("unexpected end"):
            return "utf-8"
        return "utf-8" if _mostly_utf8(data) else "latin-1"


def _mostly_utf8(data: bytes) -> bool:
    decoded = data.decode("utf-8", errors="replace")
    return decoded.count("\ufffd") * 200 < len(decoded)


def decode(data: bytes, encoding: Optional[str] = None) -> str:
    encoding = encoding or sniff_encoding(data)
    return data.decode(encoding, errors="replace")


def _collapse_cr(line: str) -> str:
    """``a\\rb\\rc`` shows ``c`` on a terminal; keep the last state and any part that is not progress."""
    parts = [p for p in line.split("\r") if p.strip()]
    if not parts:
        return ""
    kept = [p for p in parts[:-1] if not _PROGRESS.search(p)]
    out: List[str] = []
    for part in kept + [parts[-1]]:
        if not out or out[-1] != part:
            out.append(part)
    return " ".join(out)


# What log collectors put before each line: Docker BuildKit's step and seconds ("#15 354.2 "), GitHub
# Actions' timestamp ("2024-05-01T10:00:00.1234567Z "). The line itself is what the tool printed.
_LINE_PREFIX = re.compile(r"^(?:#\d+ \d+\.\d+ |\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z )", re.M)


def clean(text: str) -> List[str]:
    """Normalise decoded text into lines (``\\n``-separated; a lone ``\\r`` does not start a line)."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if ("#" in text[:1] or "\n#" in text or "Z " in text) and _LINE_PREFIX.search(text):
        text = _LINE_PREFIX.sub("", text)
    if not text.isascii():
        # A single-character search is a fast C scan; str.translate would cost a dict lookup per character.
        for char, plain in _PUNCT_MAP.items():
            if char in text:
                text = text.replace(char, plain)
    if "\x00" in text:
        text = text.replace("\x00", "")
    text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if "\r" in text:
        lines = [_collapse_cr(line) if "\r" in line else line for line in lines]
    return lines


def from_text(text: str) -> Log:
    return Log(lines=clean(text or ""), total_bytes=len(text or ""))


def from_bytes(data: bytes) -> Log:
    encoding = sniff_encoding(data)
    log = from_text(decode(data, encoding))
    log.encoding, log.total_bytes = encoding, len(data)
    return log


def read_stream(stream: BinaryIO, max_bytes: int = DEFAULT_MAX_BYTES) -> Log:
    """Read a binary stream; past ``max_bytes`` keep the first and last halves and count the middle."""
    half = max(1, max_bytes // 2)
    head = stream.read(half + 1)
    if len(head) <= half:
        return from_bytes(head)
    tail = bytearray(head[half:])
    head = head[:half]
    skipped_bytes = skipped_newlines = 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        tail += chunk
        if len(tail) > half:
            drop = len(tail) - half
            skipped_newlines += tail.count(b"\n", 0, drop)
            skipped_bytes += drop
            del tail[:drop]
    encoding = sniff_encoding(head)
    unit = _unit_codec(encoding, bytes(head[:4]))
    newline = "\n".encode(unit)
    width = len(newline)
    # Cut both parts at line ends so no line is half read (and UTF-16 stays aligned to code units).
    head_cut = head.rfind(newline)
    while head_cut > 0 and head_cut % width:
        head_cut = head.rfind(newline, 0, head_cut)
    moved = b""
    if head_cut > 0:
        moved = bytes(head[head_cut + width:])
        head = head[:head_cut + width]
    tail_bytes = bytes(tail)
    tail_cut = tail_bytes.find(newline)
    while tail_cut >= 0 and (len(tail_bytes) - tail_cut) % width:
        tail_cut = tail_bytes.find(newline, tail_cut + 1)
    dropped_tail = tail_bytes[:tail_cut + width] if tail_cut >= 0 else b""
    tail = tail_bytes[tail_cut + width:] if tail_cut >= 0 else tail_bytes
    skipped_bytes += len(moved) + len(dropped_tail)
    skipped_newlines += (moved + dropped_tail).count(newline)
    head_lines = clean(decode(bytes(head), encoding))
    if head_lines and head_lines[-1] == "":
        head_lines.pop()
    tail_lines = clean(decode(tail, unit))
    total = len(head) + skipped_bytes + len(tail)
    log = Log(lines=head_lines + tail_lines, encoding=encoding, total_bytes=total, gap_index=len(head_lines),
              skipped_lines=skipped_newlines, skipped_bytes=skipped_bytes)
    first_skipped = len(head_lines) + 1
    log.notices.append(
        f"The input is {_size(total)}; lines {first_skipped}-{first_skipped + skipped_newlines - 1} "
        f"({_size(skipped_bytes)} in the middle) were not examined: explain reads the first and the last "
        f"{_size(half)}.")
    return log


def _unit_codec(encoding: str, start: bytes) -> str:
    """The BOM-less codec for any slice of the input (its tail has no BOM of its own)."""
    if encoding == "utf-16":
        return "utf-16-be" if start.startswith(codecs.BOM_UTF16_BE) else "utf-16-le"
    if encoding == "utf-32":
        return "utf-32-be" if start.startswith(codecs.BOM_UTF32_BE) else "utf-32-le"
    return "utf-8" if encoding == "utf-8-sig" else encoding


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"
