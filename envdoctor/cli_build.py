"""``envdoctor build``: build the MSDeformAttn op for this environment (thin layer over envdoctor.ops.build)."""
from __future__ import annotations

import json
import sys
from typing import List, Optional, Tuple

import click

from envdoctor import exitcodes
from envdoctor.model import SCHEMA_VERSION
from envdoctor.options import CONTEXT_SETTINGS, format_option


def _parse_archs(ctx, param, values: Tuple[str, ...]) -> Optional[List[str]]:
    if not values:
        return None
    from envdoctor.parsers import arch_list

    parsed = arch_list.parse(";".join(values))
    if not parsed.ok or not parsed.entries:
        raise click.BadParameter(f"torch's extension builder would refuse {';'.join(values)!r} "
                                 f"({parsed.error()}); give compute capabilities such as 8.0 or 9.0+PTX, "
                                 "separated by ';' or repeated --arch, or names such as Ampere")
    return parsed.entries


@click.command("build", context_settings=CONTEXT_SETTINGS)
@click.option("--cpu-only", is_flag=True, help="Build only the CPU kernels (no CUDA toolkit needed).")
@click.option("--cuda", "force_cuda", is_flag=True,
              help="Build the CUDA variant or fail (for TORCH_CUDA_ARCH_LIST or the GPUs present); "
                   "`envdoctor fix` uses it to prove a CUDA extension builds.")
@click.option("--arch", "archs", multiple=True, callback=_parse_archs, metavar="CC",
              help="GPU compute capability to build for, e.g. 8.0 or \"8.0;9.0\" (repeatable). "
                   "Default: TORCH_CUDA_ARCH_LIST, else the GPUs present.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where builds are cached (default: $ENVDOCTOR_CACHE_DIR or ~/.cache/envdoctor/ops).")
@click.option("--force", is_flag=True, help="Rebuild even if an up-to-date build exists.")
@click.option("-v", "--verbose", is_flag=True, help="Stream the compiler output.")
@format_option(choices=("text", "json"))
def build_command(cpu_only, force_cuda, archs, cache_dir, force, verbose, fmt):
    """Build the MSDeformAttn op (CPU and CUDA kernels) for this environment.

    The build is cached under a key made of everything that can make a binary
    stale (torch, CUDA, Python, archs, compiler, sources): rebuilding in an
    unchanged environment does nothing, and a changed one never loads a stale
    binary. Before compiling CUDA code it checks the toolchain and refuses with
    the reason and the fix (e.g. CUDA_HOME pointing at /usr/local) instead of
    300 lines of compiler errors; if compiling fails it shows the first real
    error and keeps the full log.

    Without --cpu-only and --arch, the CUDA variant is built when a CUDA
    toolkit is visible and there is a GPU (or TORCH_CUDA_ARCH_LIST) to build
    for; otherwise the CPU variant.

    \b
    Exit status: 0 built (or already up to date), 1 the build failed or was
    refused (the reason is printed), 2 usage error.

    \b
    Examples:
      envdoctor build                          # the variant for this machine
      envdoctor build --cpu-only               # CPU kernels only
      envdoctor build --arch 8.0 --arch 9.0    # CUDA for A100 and H100, no GPU needed
      CUDA_HOME=/usr/local/cuda envdoctor build --arch "8.6;8.9" -v
      envdoctor build --format json --force    # rebuild, machine-readable result
    """
    from envdoctor.ops.build import build_extension

    if cpu_only and (archs or force_cuda):
        raise click.UsageError("--cpu-only contradicts --arch and --cuda: they are for the CUDA variant")
    cuda = False if cpu_only else (True if archs or force_cuda else None)

    def progress(message: str) -> None:
        click.echo(message if verbose and not message.startswith(("compiling", "checking", "up to date"))
                   else f"envdoctor build: {message}", err=True)

    result = build_extension(cuda=cuda, archs=archs, verbose=verbose, cache_dir=cache_dir, force=force,
                             progress=progress)
    if fmt == "json":
        click.echo(json.dumps({"schema_version": SCHEMA_VERSION, "build": result.to_dict()}, indent=2))
    else:
        click.echo(_text(result))
    sys.exit(exitcodes.OK if result.ok else exitcodes.FINDINGS)


def _text(result) -> str:
    what = f"{result.variant} variant" + (f" (sm {', '.join(result.archs)})" if result.archs else "")
    if result.ok and result.cached:
        return f"MSDeformAttn {what} is up to date: {result.path}"
    if result.ok:
        return f"built the MSDeformAttn {what} in {result.seconds:.1f}s: {result.path}"
    head = "refused to build" if result.refused else f"building failed after {result.seconds:.1f}s"
    return f"MSDeformAttn {what}: {head}\n{result.error}"
