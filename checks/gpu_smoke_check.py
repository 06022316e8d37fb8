"""GPU acceptance check for ``envdoctor smoke`` (needs NVIDIA GPUs; prints SKIP without one).

    python checks/gpu_smoke_check.py [--steps 40] [--require-gpu] [--build-op] [--json out.json]

1. CUDA smoke-train with AMP (bf16 or fp16 by capability) on cuda:0: passes, loss falls.
2. Device mapping verified by UUID: ``--gpus <last nvidia-smi index>`` runs on exactly that GPU.
3. With 2+ GPUs: ``--gpus 0,1,...`` (all of them) runs DDP over NCCL; ranks agree, each on the GPU asked for.
4. With ``--build-op``: the compiled CUDA MSDeformAttn op is built and the smoke-train runs on it.

Exit status: 0 all passed (or skipped without GPU and no --require-gpu), 1 a step failed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from envdoctor.smoke import SmokeConfig, run_smoke  # noqa: E402
from envdoctor.smoke.api import gpu_facts  # noqa: E402
from envdoctor.smoke.devices import normalize_uuid  # noqa: E402
from envdoctor.smoke.render import render_text  # noqa: E402


def step(name: str, config: SmokeConfig, extra_checks) -> Tuple[str, bool, str]:
    result = run_smoke(config)
    print(render_text(result, config))
    problems: List[str] = [] if result.passed else [result.reason]
    if result.passed:
        problems += [p for p in extra_checks(result) if p]
    return name, not problems, "; ".join(problems)


def amp_checks(result):
    return [None if result.amp in ("bf16", "fp16") else f"AMP did not run (amp={result.amp})",
            None if result.device_map else "no nvidia-smi -> CUDA -> UUID table in the report"]


def placement_checks(wanted_uuids):
    def check(result):
        got = [normalize_uuid(d.get("uuid") or "") for d in sorted(result.devices, key=lambda d: d["rank"])]
        want = [normalize_uuid(u) for u in wanted_uuids]
        return [None if got == want else f"ran on {got}, asked for {want}"]
    return check


def ddp_checks(result, world_size: int = 2):
    return [None if result.world_size == world_size else f"world size {result.world_size}, wanted {world_size}",
            None if len(set(result.param_hashes)) == 1 else f"ranks disagree: {result.param_hashes}"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--require-gpu", action="store_true", help="fail instead of skipping without a GPU")
    parser.add_argument("--build-op", action="store_true", help="build the compiled CUDA op and test it too")
    parser.add_argument("--json", help="also write the results here: [{name, ok, why}, ...]")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("SKIP: no CUDA GPU visible to torch")
        return 1 if args.require_gpu else 0
    gpus = gpu_facts() or []
    if not gpus:
        print("FAIL: nvidia-smi GPU list not available (envdoctor.engine.probe_facts(['gpus']))")
        return 1
    results = [step("CUDA smoke-train with AMP on cuda:0", SmokeConfig(steps=args.steps, device="cuda:0"),
                    amp_checks)]
    last = max(g["index"] for g in gpus)
    results.append(step(f"--gpus {last}: runs on nvidia-smi GPU {last}, verified by UUID",
                        SmokeConfig(steps=args.steps, gpus=str(last)),
                        placement_checks([g["uuid"] for g in gpus if g["index"] == last])))
    skipped = []
    if len(gpus) >= 2:
        indices = sorted(g["index"] for g in gpus)
        wanted = [next(g["uuid"] for g in gpus if g["index"] == i) for i in indices]
        listed = ",".join(str(i) for i in indices)
        results.append(step(f"--gpus {listed}: DDP over NCCL on all {len(indices)} GPUs",
                            SmokeConfig(steps=args.steps, gpus=listed),
                            lambda r: ddp_checks(r, len(indices)) + placement_checks(wanted)(r)))
    else:
        skipped.append(("DDP over NCCL on all GPUs", "needs 2 or more GPUs, this machine has one"))
        print("SKIP: DDP over NCCL (only one GPU)")
    if args.build_op:
        from envdoctor import ops

        built = ops.load_extension(build=True, cuda=True)
        results.append(("compiled CUDA op builds", built, "" if built else "build failed: see `envdoctor build`"))
        if built:
            results.append(step("CUDA smoke-train on the compiled op",
                                SmokeConfig(steps=args.steps, device="cuda:0", msda_impl="compiled"),
                                lambda r: [None if r.msda_impl == "compiled" else f"ran {r.msda_impl}"]))
    print()
    for name, ok, why in results:
        print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f": {why}" if why else ""))
    if args.json:
        records = [{"name": name, "status": "pass" if ok else "fail", "detail": why} for name, ok, why in results]
        records += [{"name": name, "status": "skip", "detail": why} for name, why in skipped]
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(records, fh, indent=2)
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
