"""Every GPU acceptance check in one command, with one JSON summary.

    python checks/gpu_all.py [--json PATH] [--budget 480] [--cache-dir DIR]

Runs, each in its own process with a time limit (so a crash or a hang fails that
check, not the run), within an overall time budget (default 8 minutes):

  build       `envdoctor build`: the CUDA variant of the MSDeformAttn op for the GPUs present
  op          checks/gpu_op_check.py: gradcheck, CUDA vs reference (odd D), float32/float16/bfloat16
              forward and backward vs float64 within tolerances, repeatability of the atomics
  bandwidth   benchmarks/bench_msda_cuda.py: the CUDA kernel vs the reference on the GPU, and the
              bandwidth it reaches under the op's bytes-moved model next to the card's peak
  smoke       checks/gpu_smoke_check.py: smoke-train on the GPU with AMP, the GPU mapping verified
              by UUID, DDP over NCCL on all GPUs (2+), the smoke-train on the compiled op
  fleet       `envdoctor fleet` with NCCL, one rank per GPU (skipped, with the reason, when this
              envdoctor has no fleet command)

Exit status: 0 every check passed or was skipped with a reason, 1 a check failed,
77 there is no GPU here (decided without importing torch when the machine has no
NVIDIA device at all). The summary goes to --json, default ./gpu_all-<time>.json
(or the temporary directory when the current one is not writable); its path is
printed. Without a GPU nothing is written unless --json is given.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Mapping, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXIT_NO_GPU = 77
DEFAULT_BUDGET_S = 480.0
# Upper bounds per check (seconds); each also gets no more than what is left of the budget.
LIMITS = {"build": 300.0, "op": 150.0, "bandwidth": 120.0, "smoke": 300.0, "fleet": 150.0}
_HIDING = {"", "-1", "none", "nodevfiles", "void"}


def detect_gpus(env: Mapping[str, str], dev_dir: str = "/dev") -> Tuple[Optional[bool], str, List[str]]:
    """(present, how we know, GPU names) without importing torch.

    present is False when there is certainly no usable NVIDIA GPU, True when
    nvidia-smi lists one or a /dev/nvidiaN node exists, None when only torch can
    tell (WSL's /dev/dxg)."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip().lower() in _HIDING:
        return False, f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU", []
    smi = shutil.which("nvidia-smi", path=env.get("PATH", os.defpath))
    names: List[str] = []
    if smi:
        try:
            proc = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, env=dict(env))
            names = [m.group(1) for m in re.finditer(r"^GPU \d+: (.+?)(?: \(UUID: [^)]*\))?$", proc.stdout, re.M)]
        except (OSError, subprocess.SubprocessError):
            names = []
        if names:
            return True, f"nvidia-smi lists {len(names)} GPU(s)", names
    nodes = sorted(n for n in _listdir(dev_dir) if re.fullmatch(r"nvidia\d+", n))
    if nodes:
        return True, f"{len(nodes)} NVIDIA device node(s) in {dev_dir} ({', '.join(nodes)})", names
    if "dxg" in _listdir(dev_dir):
        return None, f"{dev_dir}/dxg (WSL): asking torch", names
    smi_note = "nvidia-smi lists none" if smi else "no nvidia-smi on PATH"
    return False, f"no {dev_dir}/nvidia0, 1, ... device node and {smi_note}", []


def _listdir(path: str) -> List[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def torch_gpus() -> Tuple[bool, str, List[str]]:
    """What torch sees (imports torch; only called when there may be a GPU)."""
    try:
        import torch
    except Exception as exc:  # a broken torch is an answer too
        return False, f"torch cannot be imported: {type(exc).__name__}: {exc}", []
    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no usable GPU", []
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    caps = [".".join(map(str, torch.cuda.get_device_capability(i))) for i in range(len(names))]
    return True, f"torch {torch.__version__} sees {len(names)} GPU(s), sm {', '.join(sorted(set(caps)))}", names


class Runner:
    """Runs the checks one after the other within the overall budget."""

    def __init__(self, budget_s: float, env: Dict[str, str], workdir: str):
        self.deadline = time.monotonic() + budget_s
        self.env = env
        self.workdir = workdir
        self.records: List[dict] = []

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, argv: List[str], limit: float) -> Tuple[Optional[int], str, float]:
        """(exit status or None on timeout, combined output, seconds)."""
        timeout = min(limit, self.left())
        if timeout < 10:
            return None, "not started: the time budget is spent", 0.0
        start = time.monotonic()
        try:
            proc = subprocess.run(argv, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, errors="replace", timeout=timeout)
            return proc.returncode, proc.stdout, time.monotonic() - start
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return None, out + f"\n(timed out after {timeout:.0f} s)", time.monotonic() - start

    def add(self, group: str, name: str, status: str, detail: str, seconds: float = 0.0, output: str = "") -> None:
        record = {"group": group, "name": name, "status": status, "detail": detail, "seconds": round(seconds, 1)}
        if output and status == "fail":
            record["output_tail"] = output[-4000:]
        self.records.append(record)
        print(f"{status.upper():4s}  [{group}] {name}" + (f": {detail}" if detail else ""), flush=True)

    def json_path(self, name: str) -> str:
        return os.path.join(self.workdir, name)


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def check_build(r: Runner, cache_dir: Optional[str]) -> bool:
    argv = [sys.executable, "-m", "envdoctor", "build", "--format", "json"]
    argv += ["--cache-dir", cache_dir] if cache_dir else []
    code, out, secs = r.run(argv, LIMITS["build"])
    result = None
    match = re.search(r"^\{$.*\Z", out, re.S | re.M)  # the JSON document closes the output
    if match:
        try:
            result = json.loads(match.group(0)).get("build")
        except (ValueError, AttributeError):
            result = None
    if code == 0 and result and result.get("variant") == "cuda":
        how = "cached" if result.get("cached") else f"built in {result.get('seconds', 0):.0f} s"
        r.add("build", "CUDA build for this GPU's arch", "pass",
              f"sm {', '.join(result.get('archs') or [])}, {how}", secs)
        return True
    why = (result or {}).get("error") or ("timed out" if code is None else f"exit {code}")
    if result and result.get("variant") == "cpu":
        why = "built the CPU variant only: no CUDA toolkit visible (set CUDA_HOME)"
    r.add("build", "CUDA build for this GPU's arch", "fail", str(why).strip().splitlines()[0][:300], secs, out)
    return False


def check_subrecords(r: Runner, group: str, argv: List[str], json_name: str) -> None:
    target = r.json_path(json_name)
    code, out, secs = r.run(argv + ["--json", target], LIMITS[group])
    records = _read_json(target)
    if not isinstance(records, list) or not records:
        why = "timed out" if code is None else f"exit {code} without results"
        r.add(group, " ".join(os.path.basename(a) for a in argv[1:2]), "fail", why, secs, out)
        return
    for rec in records:
        r.add(group, rec["name"], rec["status"], rec.get("detail") or "", 0.0, out if rec["status"] == "fail" else "")
    if code not in (0, None) and all(rec["status"] != "fail" for rec in records):
        r.add(group, "exit status", "fail", f"exit {code} although every step passed", secs, out)
    elif code is None:
        r.add(group, "finished in time", "fail", "timed out", secs, out)


def check_bandwidth(r: Runner) -> None:
    target = r.json_path("bench_msda_cuda.json")
    argv = [sys.executable, os.path.join("benchmarks", "bench_msda_cuda.py"), "--sizes", "512", "1024",
            "--dtype", "float32", "float16", "bfloat16", "--repeat", "10", "--json", target]
    code, out, secs = r.run(argv, LIMITS["bandwidth"])
    data = _read_json(target)
    if code != 0 or not data or not data.get("rows"):
        r.add("bandwidth", "CUDA op vs reference and bytes-moved model", "fail",
              "timed out" if code is None else f"exit {code}", secs, out)
        return
    for row in data["rows"]:
        peak = row.get("peak_gbps") or 0.0
        share = (f", {100 * row['fwd_gbps_compulsory'] / peak:.0f}% / {100 * row['bwd_gbps_compulsory'] / peak:.0f}% "
                 f"of the {peak:.0f} GB/s peak") if peak else " (peak unknown for this card)"
        detail = (f"fwd {row['speedup_fwd']:.1f}x, fwd+bwd {row['speedup_fwdbwd']:.1f}x the reference; compulsory "
                  f"bytes at {row['fwd_gbps_compulsory']:.0f} GB/s fwd, {row['bwd_gbps_compulsory']:.0f} GB/s bwd"
                  f"{share}; gathered {row['fwd_gbps_gathered']:.0f} / {row['bwd_gbps_gathered']:.0f} GB/s")
        slower = row["speedup_fwd"] < 1 or row["speedup_fwdbwd"] < 1
        bogus = peak and row["fwd_gbps_compulsory"] > peak  # faster than DRAM: the timing is wrong
        status = "fail" if slower or bogus else "pass"
        r.add("bandwidth", f"{row['input']}x{row['input']} {row['dtype']}", status,
              detail + (" (slower than the reference)" if slower else "") +
              (" (above the card's peak: timing is broken)" if bogus else ""), secs if status == "fail" else 0.0)


def fleet_available() -> Tuple[bool, str]:
    sys.path.insert(0, ROOT)
    try:
        from envdoctor.cli import LAZY_COMMANDS
    except Exception as exc:  # noqa: BLE001 - report, never crash the run
        return False, f"envdoctor.cli cannot be imported: {type(exc).__name__}: {exc}"
    finally:
        sys.path.remove(ROOT)
    if "fleet" not in LAZY_COMMANDS:
        return False, "this envdoctor has no `fleet` command"
    return True, ""


def check_fleet(r: Runner, gpu_count: int) -> None:
    ok, why = fleet_available()
    if not ok:
        r.add("fleet", "envdoctor fleet over NCCL", "skip", why)
        return
    argv = [sys.executable, "-m", "envdoctor", "fleet", "--nproc-per-node", str(max(1, gpu_count)),
            "--format", "json", "--timeout", "120"]
    code, out, secs = r.run(argv, LIMITS["fleet"])
    detail = "timed out" if code is None else f"exit {code}"
    if code == 0:
        backend = "NCCL" if re.search(r"nccl", out, re.I) else "backend not named in the report"
        detail = f"{max(1, gpu_count)} rank(s), one per GPU, {backend}"
    r.add("fleet", "envdoctor fleet over NCCL", "pass" if code == 0 else "fail", detail, secs, out)


def default_summary_path() -> str:
    name = time.strftime("gpu_all-%Y%m%d-%H%M%S.json")
    here = os.getcwd()
    return os.path.join(here if os.access(here, os.W_OK) else tempfile.gettempdir(), name)


def write_summary(path: str, summary: dict) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2)
    print(f"summary: {path}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="where to write the summary (default ./gpu_all-<time>.json)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="overall time limit in seconds")
    parser.add_argument("--cache-dir", default=None, help="build cache for the op (default: envdoctor's)")
    parser.add_argument("--steps", type=int, default=40, help="smoke-train steps")
    args = parser.parse_args(argv)
    started = time.time()
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if args.cache_dir:  # every child (build, op check, benchmark, smoke) uses the same build cache
        env["ENVDOCTOR_CACHE_DIR"] = os.path.abspath(args.cache_dir)

    present, how, names = detect_gpus(env)
    if present is not False:
        seen, torch_how, torch_names = torch_gpus()
        if not seen and present is None:
            present, how = False, f"{how}; {torch_how}"
        elif not seen:
            # A GPU is there but torch cannot use it: that is a failed acceptance, not "no GPU".
            summary = {"status": "fail", "gpus": names, "gpu_detection": how, "reason": torch_how,
                       "checks": [], "seconds": round(time.time() - started, 1)}
            print(f"FAIL  {how}, but {torch_how}. Run `envdoctor check` to see why.")
            write_summary(args.json or default_summary_path(), summary)
            return 1
        else:
            present, how, names = True, f"{how}; {torch_how}", torch_names
    if not present:
        print(f"no NVIDIA GPU on this machine ({how}): the GPU acceptance checks need one, nothing was run "
              f"(exit {EXIT_NO_GPU}).")
        if args.json:
            write_summary(args.json, {"status": "no_gpu", "gpu_detection": how, "checks": [],
                                      "seconds": round(time.time() - started, 1)})
        return EXIT_NO_GPU

    print(f"GPUs: {', '.join(names)} ({how}); budget {args.budget:.0f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="envdoctor-gpu-all-") as workdir:
        r = Runner(args.budget, env, workdir)
        if check_build(r, args.cache_dir):
            op = [sys.executable, os.path.join("checks", "gpu_op_check.py")]
            check_subrecords(r, "op", op + (["--cache-dir", args.cache_dir] if args.cache_dir else []),
                             "gpu_op_check.json")
            check_bandwidth(r)
        else:
            for group in ("op", "bandwidth"):
                r.add(group, "not run", "fail", "the CUDA build failed")
        smoke = [sys.executable, os.path.join("checks", "gpu_smoke_check.py"), "--require-gpu", "--build-op",
                 "--steps", str(args.steps)]
        check_subrecords(r, "smoke", smoke, "gpu_smoke_check.json")
        check_fleet(r, len(names))
        records = r.records
    failed = [rec for rec in records if rec["status"] == "fail"]
    summary = {
        "status": "fail" if failed else "pass", "gpus": names, "gpu_detection": how,
        "python": platform.python_version(), "seconds": round(time.time() - started, 1), "budget_s": args.budget,
        "passed": sum(rec["status"] == "pass" for rec in records), "failed": len(failed),
        "skipped": sum(rec["status"] == "skip" for rec in records), "checks": records,
    }
    print(f"\n{summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped "
          f"in {summary['seconds']:.0f} s")
    write_summary(args.json or default_summary_path(), summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
