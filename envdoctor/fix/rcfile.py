"""Pure edits of a shell rc file: one marked envdoctor block, replaced, never duplicated.

Everything works on BYTES, never on decoded text, so a file with CRLF line
endings, no trailing newline or bytes that are not UTF-8 keeps every byte
outside the block exactly as it was.

The block looks like this (markers in the style of ``conda init``)::

    # >>> envdoctor >>>
    # Written by `envdoctor fix`; `envdoctor fix --undo` removes it.
    export CUDA_HOME=/usr/local/cuda-13.0
    # <<< envdoctor <<<

When the file did not end with a newline, appending needs one separating line
break. That break is not the user's, so the start marker records it
(``JOINED_NOTE``) and :func:`remove_block` takes it away again: apply followed by
remove gives back the original bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

START = b"# >>> envdoctor >>>"
END = b"# <<< envdoctor <<<"
# Appended to the start marker when a line break was added before the block.
JOINED_NOTE = b" (a line break was added before this block)"


class RcFileError(Exception):
    """The rc file cannot be edited safely (e.g. a block with no end marker)."""


@dataclass(frozen=True)
class BlockSpan:
    """Where the block sits: ``content[start:end]``, end marker line included."""

    start: int
    end: int
    joined: bool  # the start marker says a line break was added before it

    def raw(self, content: bytes) -> bytes:
        return content[self.start:self.end]


def _line_starts(content: bytes):
    yield 0
    pos = content.find(b"\n")
    while pos != -1:
        yield pos + 1
        pos = content.find(b"\n", pos + 1)


def _line_end(content: bytes, start: int) -> int:
    """Index just past the line starting at ``start`` (its newline included)."""
    nl = content.find(b"\n", start)
    return len(content) if nl == -1 else nl + 1


def find_block(content: bytes) -> Optional[BlockSpan]:
    """The first envdoctor block, or None. Raises RcFileError on a start with no end."""
    start = None
    for pos in _line_starts(content):
        if start is None and content.startswith(START, pos):
            start = pos
        elif start is not None and content.startswith(END, pos):
            first_line = content[start:_line_end(content, start)]
            return BlockSpan(start, _line_end(content, pos), JOINED_NOTE in first_line)
    if start is not None:
        line_no = content.count(b"\n", 0, start) + 1
        raise RcFileError(
            f"line {line_no} starts an envdoctor block ('{START.decode()}') but no "
            f"'{END.decode()}' line follows; remove the partial block by hand, then re-run"
        )
    return None


def _with_joined_note(block: bytes, joined: bool) -> bytes:
    """Set or clear the note on the block's start marker line."""
    if not block.startswith(START):
        raise ValueError("a block must begin with the start marker")
    first_end = _line_end(block, 0)
    first, rest = block[:first_end], block[first_end:]
    newline = b"\n" if first.endswith(b"\n") else b""
    marker = START + (JOINED_NOTE if joined else b"")
    return marker + newline + rest


def apply_block(content: bytes, block: bytes) -> bytes:
    """Put ``block`` into ``content``: replace an existing block, else append it.

    ``block`` is what :func:`render_block` returns (start marker first, end
    marker last, ending with a newline).
    """
    span = find_block(content)
    if span is not None:
        return content[:span.start] + _with_joined_note(block, span.joined) + content[span.end:]
    if content == b"" or content.endswith(b"\n"):
        return content + _with_joined_note(block, False)
    return content + b"\n" + _with_joined_note(block, True)


def remove_block(content: bytes) -> bytes:
    """The inverse of :func:`apply_block` on a file that had no block before."""
    span = find_block(content)
    if span is None:
        return content
    start = span.start
    if span.joined and start > 0 and content[start - 1:start] == b"\n":
        start -= 1
    return content[:start] + content[span.end:]


def restore_block(content: bytes, previous: Optional[bytes]) -> bytes:
    """Undo an apply exactly: put back the block that was there before (or none).

    ``previous`` is ``find_block(old).raw(old)`` taken before applying, or None.
    """
    if previous is None:
        return remove_block(content)
    span = find_block(content)
    if span is None:
        return apply_block(content, previous)
    return content[:span.start] + previous + content[span.end:]


def block_body(content: bytes) -> Optional[bytes]:
    """The block with its markers, as a standalone file that can be sourced."""
    span = find_block(content)
    return None if span is None else span.raw(content)
