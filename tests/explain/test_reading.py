"""Reading logs as they arrive: any encoding, colour codes, progress bars, and input too big to read whole."""
from __future__ import annotations

import codecs
import io

from envdoctor.explain import analyse, explain, from_bytes, read_stream
from envdoctor.explain.reading import clean, sniff_encoding

ERROR = "ImportError: libcudart.so.11.0: cannot open shared object file: No such file or directory"
LOG = "running build_ext\r\n" + ERROR + "\r\n"


def _top(log):
    found = analyse(log).explanations
    return found[0].category if found else None


def test_utf16_with_bom_as_powershell_writes_it():
    data = codecs.BOM_UTF16_LE + LOG.encode("utf-16-le")
    assert sniff_encoding(data) == "utf-16"
    log = from_bytes(data)
    assert log.lines[1] == ERROR and _top(log) == "missing_runtime_lib"


def test_utf16_without_bom_is_found_by_its_nul_bytes():
    for codec in ("utf-16-le", "utf-16-be"):
        log = from_bytes(LOG.encode(codec))
        assert log.encoding == codec and _top(log) == "missing_runtime_lib"


def test_utf8_bom_utf32_and_latin1():
    assert from_bytes(codecs.BOM_UTF8 + LOG.encode()).lines[1] == ERROR
    assert from_bytes(LOG.encode("utf-32")).lines[1] == ERROR
    latin = ("/home/jos\xe9/x.so: " + ERROR).encode("latin-1")
    log = from_bytes(latin)
    assert log.encoding == "latin-1" and "jos\xe9" in log.lines[0] and _top(log) == "missing_runtime_lib"


def test_bytes_that_only_start_like_a_bom_are_not_utf16():
    log = from_bytes(b"\xff\xfe\x00garbage\x80\n" + ERROR.encode())
    assert _top(log) == "missing_runtime_lib"


def test_ansi_colours_and_typographic_quotes_are_removed():
    coloured = "\x1b[1m\x1b[31mfatal error: \x1b[0m\x1b[1mTHC/THC.h: No such file or directory\x1b[0m\x1b]0;title\x07"
    assert clean(coloured) == ["fatal error: THC/THC.h: No such file or directory"]
    assert explain(coloured)[0].category == "deprecated_torch_api_in_ext"
    gcc_de = "x.cpp:3:5: Fehler: \u2018AT_CHECK\u2019 was not declared in this scope"
    assert clean(gcc_de) == ["x.cpp:3:5: Fehler: 'AT_CHECK' was not declared in this scope"]
    assert explain(gcc_de)[0].category == "deprecated_torch_api_in_ext"
    assert clean("NCCL error\uff1aunhandled system error") == ["NCCL error:unhandled system error"]


def test_carriage_return_progress_keeps_the_last_state_and_real_text():
    bar = "  3%|#         | 1/30 [00:01<00:30]\r 50%|#####     | 15/30\r100%|##########| 30/30\n"
    assert clean(bar) == ["100%|##########| 30/30", ""]
    mixed = "Downloading 10%\rRuntimeError: CUDA error: invalid device ordinal\rDownloading 90%"
    assert clean(mixed) == ["RuntimeError: CUDA error: invalid device ordinal Downloading 90%"]
    assert explain(mixed)[0].category == "gpu_selection"


def test_large_input_is_read_head_and_tail_with_a_notice_and_true_line_numbers():
    head = "".join(f"[{i}/9000] c++ -c f{i}.cpp -o f{i}.o\n" for i in range(1, 3001))
    middle = "".join(f"[{i}/9000] c++ -c g{i}.cpp -o g{i}.o\n" for i in range(3001, 6001))
    tail = "".join(f"[{i}/9000] c++ -c h{i}.cpp -o h{i}.o\n" for i in range(6001, 6100)) + ERROR + "\n"
    data = (head + middle + tail).encode()
    log = read_stream(io.BytesIO(data), max_bytes=2 * 110_000)
    assert log.skipped_bytes > 0 and log.total_bytes == len(data)
    assert log.notices and "were not examined" in log.notices[0]
    assert str(len(data) // 1024) in log.notices[0].replace(",", "") or "KiB" in log.notices[0]
    result = analyse(log)
    assert result.explanations[0].category == "missing_runtime_lib"
    assert result.explanations[0].line_no == 6100  # the line number in the whole input, not in what was read
    assert result.notices == log.notices


def test_large_utf16_input_stays_aligned():
    text = "".join(f"line {i}\n" for i in range(20000)) + ERROR + "\n"
    data = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    log = read_stream(io.BytesIO(data), max_bytes=100_000)
    assert log.lines[-2] == ERROR and log.notices
    assert analyse(log).explanations[0].line_no == 20001


def test_small_input_has_no_notice():
    log = read_stream(io.BytesIO(LOG.encode()))
    assert log.notices == [] and log.gap_index is None


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PIECES = [ERROR.encode(), b"\r", b"\n", b"\x00", b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf", b"\x1b[31m", b"\x1b]0;",
           "\u2018".encode(), b"\x80", b"error: ", b"warning: ", b"/bin/nvcc", b"CUDA_HOME=':", b" " * 50]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(_PIECES)), max_size=30))
def test_any_bytes_are_read_and_explained_without_raising(parts):
    data = b"".join(parts)
    log = from_bytes(data)
    result = analyse(log)
    for item in result.explanations:
        assert 1 <= item.line_no <= len(log.lines) and item.diagnosis and item.fix
    assert result.first_error is None or 1 <= result.first_error[0] <= len(log.lines)
    streamed = read_stream(io.BytesIO(data), max_bytes=64)
    analyse(streamed)  # head/tail cuts anywhere, in any encoding
