"""``envdoctor fleet``: a thin click layer over ``envdoctor.fleet``."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import List, Optional

import click

from envdoctor import exitcodes
from envdoctor.options import CONTEXT_SETTINGS, fail_on_option, format_option, output_option, redact_option

PROLOG_TIMEOUT_S = 55.0  # a Slurm prolog / HealthCheckProgram must be done within 60 s
HANDOFF_FILE = "result.json"


def _sizes(ctx, param, value: Optional[str]):
    if value is None:
        return None
    from envdoctor.fleet.bandwidth import SizeError, parse_sizes

    try:
        return parse_sizes(value)
    except SizeError as exc:
        raise click.BadParameter(str(exc))


@click.command("fleet", context_settings=CONTEXT_SETTINGS)
@click.option("--nproc-per-node", type=click.IntRange(min=1), default=None,
              help="Start this many local ranks with torchrun (instead of running under a launcher).")
@click.option("--node-name", default=None, metavar="NAME",
              help="This node's name in the report (default: the hostname; give the pod name in containers).")
@click.option("--timeout", type=click.FloatRange(min=5.0), default=120.0, show_default=True,
              help="Bound on the whole run in seconds; ranks not checked in within half of it are named missing.")
@format_option(choices=("text", "json", "markdown"))
@output_option
@fail_on_option
@click.option("--sizes", callback=_sizes, default=None, metavar="LIST",
              help="All-reduce sweep message sizes, e.g. 1M,64M,1G (default: 64K,1M,4M on CPU/gloo; "
                   "1M,16M,256M,1G on GPUs/NCCL).")
@click.option("--no-sweep", is_flag=True, help="Compare the nodes only; skip the all-reduce sweep and pairwise test.")
@click.option("--prolog", is_flag=True,
              help="Slurm prolog / HealthCheckProgram mode: done within 60 s, small sizes, non-zero exit drains "
                   "the node; without a launcher it tests this node's GPUs (one rank each).")
@redact_option
@click.option("--handoff", type=click.Path(file_okay=False), default=None, hidden=True,
              help="Internal: directory where rank 0 leaves its result for the --nproc-per-node parent.")
def fleet_command(nproc_per_node, node_name, timeout, fmt, output, fail_on, sizes, no_sweep, prolog, no_redact,
                  handoff):
    """Check every rank of a torch.distributed job: one table of what differs.

    Every rank runs the checks of `envdoctor check`; rank 0 gathers them over
    gloo and names the nodes whose driver, CUDA, torch, NCCL, net plugin,
    NCCL_*/UCX_*/FI_* variables, GPUs, InfiniBand ports, hostname or clock
    differ from the majority. Then an all-reduce sweep (NCCL on GPUs, gloo on
    CPU) measures busbw as nccl-tests do, against a sourced figure where one
    exists, and a pairwise test names a slow rank or link. A rank that never
    joins or hangs is named within --timeout.

    \b
    Exit status: 0 consistent and healthy, 1 inconsistent, below the
    expected bandwidth or a missing rank, 2 usage error, 3 envdoctor failed.

    \b
    Examples:
      envdoctor fleet --nproc-per-node 2            # local ranks, started here
      torchrun --nnodes 4 --nproc-per-node 8 --rdzv-backend c10d \\
               --rdzv-endpoint host0:29500 -m envdoctor fleet
      srun --ntasks-per-node 8 python -m envdoctor fleet --format json -o fleet.json
      envdoctor fleet --prolog                      # Slurm HealthCheckProgram
    """
    started = time.monotonic()
    from envdoctor.fleet.launcher import LauncherError, rank_env

    if prolog:
        timeout = min(timeout, PROLOG_TIMEOUT_S)
    if nproc_per_node is None:
        try:
            info = rank_env(os.environ)
        except LauncherError as exc:
            if not prolog:
                raise click.UsageError(str(exc))
            info, nproc_per_node = None, _local_gpu_count()
    if nproc_per_node is not None:
        argv = _worker_args(node_name, timeout, sizes, no_sweep, prolog)
        sys.exit(_launch_local(nproc_per_node, argv, timeout, fmt, output, fail_on, no_redact))
    # c10d logs every failed connection attempt with a C++ stack trace; the report names
    # the failure instead. TORCH_CPP_LOG_LEVEL=INFO shows them again.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")
    sys.exit(_worker(info, node_name, timeout, fmt, output, fail_on, sizes, no_sweep, prolog, no_redact, handoff,
                     started))


def _worker(info, node_name, timeout, fmt, output, fail_on, sizes, no_sweep, prolog, no_redact, handoff,
            started) -> int:
    from envdoctor.cli import _emit
    from envdoctor.fleet.comm import StoreError
    from envdoctor.fleet.render import fleet_redactor, render
    from envdoctor.fleet.result import exit_status
    from envdoctor.fleet.run import FleetOptions, RankFailure, default_node_name, run_rank

    def emit(result) -> int:
        if handoff:
            _write_json(os.path.join(handoff, HANDOFF_FILE), result)
            return exitcodes.OK
        _emit(render(result, fmt, fleet_redactor(not no_redact)), output)
        return exit_status(result, fail_on)

    opts = FleetOptions(node_name=node_name or default_node_name(), timeout=timeout, sizes=sizes, prolog=prolog,
                        sweep=not no_sweep)
    try:
        return run_rank(info, opts, emit, started=started)
    except StoreError as exc:
        click.echo(f"envdoctor fleet: rank {info.rank}: {exc}", err=True)
        return exitcodes.INTERNAL if info.rank == 0 else exitcodes.FINDINGS
    except RankFailure as exc:
        click.echo(f"envdoctor fleet: rank {info.rank}: {exc}", err=True)
        # Under our own torchrun, a failing rank must not make torchrun stop rank 0 before it reports.
        return exitcodes.OK if handoff else exitcodes.FINDINGS


def _worker_args(node_name, timeout, sizes, no_sweep, prolog) -> List[str]:
    from envdoctor.fleet.bandwidth import format_size

    args = ["--timeout", f"{timeout:g}"]
    if node_name:
        args += ["--node-name", node_name]
    if sizes:
        args += ["--sizes", ",".join(format_size(s) for s in sizes)]
    if no_sweep:
        args.append("--no-sweep")
    if prolog:
        args.append("--prolog")
    return args


def _local_gpu_count() -> int:
    from envdoctor import engine

    facts = engine.probe_facts(["gpus"])
    return max(1, len(facts.value("gpus") or []))


def _launch_local(nproc: int, worker_args: List[str], timeout: float, fmt, output, fail_on, no_redact) -> int:
    """Start ``nproc`` ranks with torchrun on this machine; rank 0 hands its result back
    through a private directory, rendered here like any run."""
    from envdoctor.cli import _emit
    from envdoctor.fleet.render import fleet_redactor, render
    from envdoctor.fleet.result import exit_status
    from envdoctor.smoke.launch import LOG_TAIL_LINES, _run_streaming

    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="envdoctor-fleet-") as handoff:
        argv = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--standalone",
                "-m", "envdoctor", "fleet", *worker_args, "--handoff", handoff]
        lines, timed_out = _run_streaming(argv, env, timeout + 30, None)
        path = os.path.join(handoff, HANDOFF_FILE)
        result = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                result = json.load(fh)
    if result is None:
        tail = "\n".join(lines[-LOG_TAIL_LINES:])
        why = "did not finish in time" if timed_out else "ended without a result"
        click.echo(f"envdoctor fleet: the local ranks {why}; torchrun output ends with:\n{tail}", err=True)
        return exitcodes.INTERNAL
    _emit(render(result, fmt, fleet_redactor(not no_redact)), output)
    return exit_status(result, fail_on)


def _write_json(path: str, data) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)
