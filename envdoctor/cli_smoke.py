"""``envdoctor smoke``: a thin click layer over ``envdoctor.smoke.run_smoke``."""
from __future__ import annotations

import re
import sys
from typing import List, Optional, Tuple

import click

from envdoctor import exitcodes
from envdoctor.options import CONTEXT_SETTINGS, format_option
from envdoctor.smoke.config import IMAGENET_MEAN_255, IMAGENET_STD_255, SIZES, SmokeConfig

DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
# torchrun's rendezvous flags, passed through unchanged for multi-node runs.
RDZV_OPTIONS = ("node_rank", "rdzv_backend", "rdzv_endpoint", "rdzv_id", "master_addr", "master_port")


def _device(ctx, param, value: str) -> str:
    if not DEVICE_RE.match(value):
        raise click.BadParameter(f"{value!r}: use auto, cpu, cuda or cuda:N")
    return value


def _triple(ctx, param, value: Optional[str]) -> Optional[Tuple[float, float, float]]:
    if value is None:
        return None
    try:
        numbers = tuple(float(v) for v in value.split(","))
    except ValueError:
        numbers = ()
    if len(numbers) != 3:
        raise click.BadParameter(f"{value!r}: expected three comma-separated numbers, e.g. 123.675,116.28,103.53")
    return numbers  # type: ignore[return-value]


def _launch_args(options: dict) -> List[str]:
    args = []
    for name in RDZV_OPTIONS:
        if options.get(name) is not None:
            args += ["--" + name.replace("_", "-"), str(options[name])]
    return args


class _Progress:
    """Progress on stderr: one updating line on a terminal, a line every ~10% otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()

    def __call__(self, step: int, total: int, loss: float) -> None:
        if not self.enabled:
            return
        if self.tty:
            click.echo(f"\rsmoke-train step {step}/{total}  loss {loss:.4f}", nl=step == total, err=True)
        elif step == 1 or step == total or step % max(1, total // 10) == 0:
            click.echo(f"smoke-train step {step}/{total}  loss {loss:.4f}", err=True)


@click.command("smoke", context_settings=CONTEXT_SETTINGS)
@click.option("--steps", type=click.IntRange(min=1), default=40, show_default=True, help="Training steps.")
@click.option("--size", type=click.Choice(sorted(SIZES)), default="tiny", show_default=True,
              help="Model and image size (tiny is the CPU/CI size).")
@click.option("--device", default="auto", show_default=True, callback=_device,
              help="auto, cpu, cuda or cuda:N (CUDA numbering, as torch sees it).")
@click.option("--gpus", default=None, help="nvidia-smi GPU indices or UUIDs, e.g. 2,3: one process per GPU.")
@click.option("--nproc-per-node", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes per node (DDP via torchrun; gloo on CPU, NCCL on GPU).")
@click.option("--nnodes", default="1", show_default=True, help="Nodes, as torchrun takes it (e.g. 2 or 1:4).")
@click.option("--node-rank", default=None, help="Passed to torchrun.")
@click.option("--rdzv-backend", default=None, help="Passed to torchrun.")
@click.option("--rdzv-endpoint", default=None, help="Passed to torchrun (host:port).")
@click.option("--rdzv-id", default=None, help="Passed to torchrun.")
@click.option("--master-addr", default=None, help="Passed to torchrun.")
@click.option("--master-port", default=None, help="Passed to torchrun.")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="Local MobileNetV3-Large checkpoint: torchvision ImageNet or DeepLabV3 state dict.")
@click.option("--backbone", default=None, help="Your own backbone, package.module:ClassName (detectron2 "
              "output_shape() convention); its contract is checked before training.")
@click.option("--data", type=click.Path(file_okay=False), default=None,
              help="COCO-format dataset directory (polygon or RLE masks) instead of synthetic data.")
@click.option("--lr", type=click.FloatRange(min=0), default=1e-3, show_default=True, help="Learning rate (AdamW).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for the data, the model initialisation and the sampling (runs are repeatable).")
@click.option("--msda-impl", type=click.Choice(["auto", "compiled", "reference"]), default="auto",
              show_default=True, help="MSDeformAttn implementation.")
@click.option("--amp", type=click.Choice(["auto", "off", "bf16", "fp16"]), default="auto", show_default=True,
              help="Mixed precision on CUDA (auto: bf16 where supported, else fp16).")
@click.option("--threads", type=click.IntRange(min=0), default=0, help="CPU threads per process (0: idle cores).")
@click.option("--input-format", type=click.Choice(["RGB", "BGR"]), default="RGB", show_default=True,
              help="Channel order the pipeline feeds (a detectron2-style config feeds BGR; checked against --weights).")
@click.option("--pixel-mean", callback=_triple, default=None, help="Three numbers, 0-255 units.")
@click.option("--pixel-std", callback=_triple, default=None, help="Three numbers, 0-255 units.")
@click.option("--inject-nan", is_flag=True, hidden=True, help="Make the MSDeformAttn output NaN (tests the check).")
@click.option("--profile", is_flag=True,
              help="Also show where a step's time goes: backbone, pixel decoder (and its MSDeformAttn op), "
                   "transformer decoder, matcher, losses, backward, optimizer (one process only).")
@format_option(choices=("text", "json"))
@click.option("-q", "--quiet", is_flag=True, help="No progress; text output only on failure.")
def smoke_command(fmt: str, quiet: bool, **options) -> None:
    """Train a small real Mask2Former-MobileNetV3 and report whether this environment can train.

    Checks kernels, autograd, the MSDeformAttn op, mixed precision, memory, the
    chosen GPU(s) and several processes together. Exit status: 0 pass, 1 fail,
    2 wrong options or input files.

    \b
    Examples:
      envdoctor smoke                          # CPU or the first GPU, tiny model
      envdoctor smoke --device cuda:1 --steps 100
      envdoctor smoke --gpus 2,3               # nvidia-smi GPUs 2 and 3, one process each
      envdoctor smoke --nproc-per-node 2       # DDP on this node (gloo on CPU)
      envdoctor smoke --nnodes 2 --nproc-per-node 8 --rdzv-endpoint host:29500 --rdzv-id job1
      envdoctor smoke --weights mobilenet_v3_large.pth --format json
      envdoctor smoke --profile                # where each step's time goes
    """
    from envdoctor.smoke import run_smoke
    from envdoctor.smoke.render import render_json, render_text

    if options["profile"] and (options["gpus"] or options["nproc_per_node"] > 1 or options["nnodes"] != "1"):
        raise click.UsageError("--profile times the parts of one process's step: use it without --gpus, "
                               "--nproc-per-node and --nnodes (e.g. --device cuda:0)")

    config = SmokeConfig(
        steps=options["steps"], size=options["size"], device=options["device"], lr=options["lr"],
        seed=options["seed"], weights=options["weights"], backbone=options["backbone"], data=options["data"],
        msda_impl=options["msda_impl"], amp=options["amp"], threads=options["threads"],
        input_format=options["input_format"],
        pixel_mean=options["pixel_mean"] or IMAGENET_MEAN_255, pixel_std=options["pixel_std"] or IMAGENET_STD_255,
        inject_nan=options["inject_nan"], gpus=options["gpus"], nproc_per_node=options["nproc_per_node"],
        nnodes=options["nnodes"], launch_args=_launch_args(options), profile=options["profile"],
    )
    result = run_smoke(config, progress=_Progress(not quiet and fmt == "text"))
    if fmt == "json":
        click.echo(render_json(result, config))
    elif not quiet or not result.passed:
        click.echo(render_text(result, config))
    if result.passed:
        code = exitcodes.OK
    else:
        code = exitcodes.USAGE if result.usage_error else exitcodes.FINDINGS
    sys.exit(code)
