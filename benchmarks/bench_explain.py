"""How long `envdoctor explain` takes on hostile logs, as a ratio to just reading them.

    python benchmarks/bench_explain.py [--rounds 5] [--json]

Inputs (built in memory, written to a temporary directory):

* ``plain-line-5mb``: one 5 MB line of ordinary data (a dumped record), the error at its end;
* ``one-line-5mb``: one 5 MB line of near-misses (colons, ``/bin/nvcc``,
  ``error``, ``undefined symbol``, quotes) with a real error in the middle:
  the case that made the former scan quadratic;
* ``build-50mb``: 50 MB of ordinary build output (ninja lines, warnings with
  their excerpts) with the error near the end; over the 32 MiB cap, so it is
  streamed head and tail.

Baseline, measured in the same run and alternating with explain: reading the
file and ``bytes.decode().splitlines()``. The report gives both absolute times
(median of the rounds) and their ratio. Target: the 5 MB line explained in
well under a second.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from envdoctor.explain import analyse, read_stream  # noqa: E402

ERROR = "ImportError: libcudart.so.11.0: cannot open shared object file: No such file or directory"
# Near-misses: each names something a signature looks for, none is a real error.
NEAR = ("x: error in 'a' /usr/local/cuda/bin/nvcc -c a.cu ':::' undefined reference-ish: foo "
        "warning: 'AT_CHECK' is fine CUDA_VISIBLE_DEVICES=0 docker-pycreds \u2018q\u2019 not found? ")


def one_line(size: int) -> bytes:
    half = NEAR * (size // (2 * len(NEAR)))
    return (half + " " + ERROR + " " + half).encode()


def one_line_plain(size: int) -> bytes:
    """A 5 MB line of ordinary data (a dumped tensor / JSON record), the error at its end."""
    item = '{"step": 1234, "loss": 0.123456, "lr": 0.0001, "grad_norm": 1.2345},'
    return (item * (size // len(item)) + " " + ERROR).encode()


def build_log(size: int) -> bytes:
    block = ("[12/80] /usr/local/cuda/bin/nvcc -I/x/include -c /x/src/cuda/ms_deform_attn_cuda.cu -o /x/build/a.o "
             "-gencode=arch=compute_86,code=sm_86 -std=c++17\n"
             "/x/src/a.cpp:12:5: warning: unused variable 'error' [-Wunused-variable]\n"
             "   12 |     auto error = cudaGetLastError();\n"
             "      |          ^~~~~\n")
    body = block * (size // len(block))
    return (body + "/usr/bin/ld: cannot find -lcudart\ncollect2: error: ld returned 1 exit status\n").encode()


def baseline(path: str) -> float:
    start = time.perf_counter()
    with open(path, "rb") as fh:
        fh.read().decode("utf-8", errors="replace").splitlines()
    return time.perf_counter() - start


def explain_file(path: str) -> float:
    start = time.perf_counter()
    with open(path, "rb") as fh:
        result = analyse(read_stream(fh))
    elapsed = time.perf_counter() - start
    assert result.explanations, "the buried error must be found"
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        cases = (("one-line-5mb", one_line(5 * 1024 * 1024)), ("plain-line-5mb", one_line_plain(5 * 1024 * 1024)),
                 ("build-50mb", build_log(50 * 1024 * 1024)))
        load_before = os.getloadavg()[0]
        for name, data in cases:
            path = os.path.join(tmp, name + ".log")
            with open(path, "wb") as fh:
                fh.write(data)
            base, ours = [], []
            explain_file(path)  # warm-up: imports, regex compilation
            for _ in range(args.rounds):
                base.append(baseline(path))
                ours.append(explain_file(path))
            b, o = statistics.median(base), statistics.median(ours)
            results[name] = {"bytes": len(data), "baseline_s": round(b, 4), "explain_s": round(o, 4),
                             "ratio": round(o / b, 1)}
    load = (round(load_before, 2), round(os.getloadavg()[0], 2))
    if args.json:
        print(json.dumps({"load_average_before_after": load, "cpus": os.cpu_count(), "results": results}, indent=2))
    else:
        for name, r in results.items():
            print(f"{name:14} {r['bytes'] / 2**20:6.1f} MiB  read+splitlines {r['baseline_s']:.3f} s  "
                  f"explain {r['explain_s']:.3f} s  ratio {r['ratio']:.1f}x")
        print(f"load average {load[0]} before, {load[1]} after, on {os.cpu_count()} CPUs (a busy machine inflates "
              "both columns)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
