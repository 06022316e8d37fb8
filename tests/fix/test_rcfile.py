"""Properties of the rc-file block edit: exact inverse, idempotent, nothing outside touched."""
from __future__ import annotations

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from envdoctor.fix import rcfile
from envdoctor.fix.settings import EnvSettings, render_block

BLOCK_A = render_block(EnvSettings(vars={"CUDA_HOME": "/usr/local/cuda-13.0"}, path_prepend=["/usr/local/cuda-13.0/bin"]))
BLOCK_B = render_block(EnvSettings(vars={"CUDA_HOME": "/opt/cuda 12", "MAX_JOBS": "2"}))

# Lines users really have, plus the awkward ones: CRLF, lone CR, invalid UTF-8,
# marker look-alikes that are not at a line start, and an end marker with no start.
_PIECES = [b"export A=1", b"\n", b"\r\n", b"\r", b"\xff\xfe", b"\xc3\x28", b"", b"  ", b"# comment",
           b"x" + rcfile.START, b"  " + rcfile.END, rcfile.END, b"[ -z \"$PS1\" ] && return", b"\t\0"]
contents = st.lists(st.sampled_from(_PIECES) | st.binary(max_size=12), max_size=25).map(b"".join)


def _existing_block(draw_content: bytes, block: bytes, where: int) -> bytes:
    """Content that already holds a block somewhere, line-aligned."""
    head, tail = draw_content[:where], draw_content[where:]
    if head and not head.endswith(b"\n"):
        head += b"\n"
    return head + block + tail


with_block = st.builds(_existing_block, contents, st.sampled_from([BLOCK_A, BLOCK_B, BLOCK_B.rstrip(b"\n")]),
                       st.integers(0, 40))
any_content = contents | with_block


def _valid(content: bytes) -> bool:
    try:
        rcfile.find_block(content)
        return True
    except rcfile.RcFileError:
        return False


@hsettings(max_examples=200, deadline=None)
@given(contents)
def test_apply_then_remove_is_identity(content):
    if not _valid(content) or rcfile.find_block(content):
        return
    assert rcfile.remove_block(rcfile.apply_block(content, BLOCK_A)) == content


@hsettings(max_examples=200, deadline=None)
@given(any_content, st.sampled_from([BLOCK_A, BLOCK_B]))
def test_apply_then_restore_gives_back_exact_bytes(content, block):
    if not _valid(content):
        return
    span = rcfile.find_block(content)
    previous = span.raw(content) if span else None
    assert rcfile.restore_block(rcfile.apply_block(content, block), previous) == content


@hsettings(max_examples=200, deadline=None)
@given(any_content, st.sampled_from([BLOCK_A, BLOCK_B]))
def test_apply_twice_equals_apply_once(content, block):
    if not _valid(content):
        return
    once = rcfile.apply_block(content, block)
    assert rcfile.apply_block(once, block) == once


@hsettings(max_examples=200, deadline=None)
@given(any_content, st.sampled_from([BLOCK_A, BLOCK_B]))
def test_bytes_outside_the_block_never_change(content, block):
    if not _valid(content):
        return
    new = rcfile.apply_block(content, block)
    old_span, new_span = rcfile.find_block(content), rcfile.find_block(new)
    assert new_span is not None
    if old_span is None:
        assert new[:len(content)] == content  # appended: every old byte in place, in front
        assert new[len(content):].lstrip(b"\n").startswith(rcfile.START)
    else:
        assert new[:new_span.start] == content[:old_span.start]
        assert new[new_span.end:] == content[old_span.end:]


@hsettings(max_examples=200, deadline=None)
@given(any_content)
def test_switching_blocks_keeps_one_block(content):
    if not _valid(content):
        return
    new = rcfile.apply_block(rcfile.apply_block(content, BLOCK_A), BLOCK_B)
    assert rcfile.block_body(new).replace(rcfile.JOINED_NOTE, b"") == BLOCK_B


def test_no_trailing_newline_crlf_and_invalid_utf8_survive():
    content = b"export A=1\r\nalias ll='ls -l'\r\n\xff\xfe odd bytes"
    new = rcfile.apply_block(content, BLOCK_A)
    assert new.startswith(content + b"\n" + rcfile.START + rcfile.JOINED_NOTE + b"\n")
    assert rcfile.remove_block(new) == content


def test_empty_file_gets_just_the_block():
    assert rcfile.apply_block(b"", BLOCK_A) == BLOCK_A
    assert rcfile.remove_block(BLOCK_A) == b""


def test_block_is_replaced_in_place_not_appended():
    content = b"before\n" + BLOCK_A + b"after\n"
    new = rcfile.apply_block(content, BLOCK_B)
    assert new == b"before\n" + BLOCK_B + b"after\n"


def test_start_without_end_is_a_clear_error():
    with pytest.raises(rcfile.RcFileError, match="line 2 starts an envdoctor block"):
        rcfile.apply_block(b"x\n" + rcfile.START + b"\nexport A=1\n", BLOCK_A)


def test_marker_not_at_line_start_is_not_a_block():
    content = b"echo '" + rcfile.START + b"'\n"
    assert rcfile.find_block(content) is None
