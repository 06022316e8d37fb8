"""Fix texts built from the log's own facts and envdoctor's compatibility tables.

The arch in the error (``compute_61`` -> 6.1), the nvcc that ran
(``/usr/bin/nvcc`` is a distribution toolkit), the CUDA and torch versions
the log mentions (-> the matching wheel index, never a fixed one), the ops
directory in the traceback.
"""
from __future__ import annotations

import re
from typing import List, Optional

from envdoctor import knowledge as kb
from envdoctor.explain.signature import Context

CHECK = "`envdoctor check` shows this machine's toolkit, driver, GPU and torch."
MASK2FORMER_OPS = "mask2former/modeling/pixel_decoder/ops"


def arch_cc(arch: str) -> Optional[str]:
    """compute_61 / sm_61 / sm_120 / 8.6 -> "6.1" / "12.0" / "8.6"."""
    match = re.search(r"(\d+)(?:\.(\d))?", arch or "")
    if not match:
        return None
    if match.group(2) is not None:
        return f"{match.group(1)}.{match.group(2)}"
    digits = match.group(1)
    return f"{digits[:-1]}.{digits[-1]}" if len(digits) >= 2 else None


def _mm(version: Optional[str]):
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def log_nvcc_version(ctx: Context) -> Optional[str]:
    facts = ctx.facts
    if facts.nvcc_release:
        return facts.nvcc_release
    for value in (ctx.machine.get("nvcc.version"),):
        if value:
            return str(value)
    candidates = [m for m in facts.cuda_mentions if _mm(m)]
    return candidates[0] if candidates else None


def distro_nvcc_note(ctx: Context) -> str:
    path = ctx.facts.nvcc_path or str(ctx.machine.get("nvcc.path") or "")
    if path in ("/usr/bin/nvcc", "/bin/nvcc"):
        return (f" The nvcc that ran is {path}, the distribution's toolkit, not the one under /usr/local/cuda: "
                "put the intended toolkit first (`export PATH=/usr/local/cuda/bin:$PATH "
                "CUDA_HOME=/usr/local/cuda`) or remove the distribution package (nvidia-cuda-toolkit).")
    return ""


def _arch_facts(ctx: Context):
    arch = ctx.group(0) or ctx.group(1)
    cc = arch_cc(arch)
    nvcc = log_nvcc_version(ctx)
    first = kb.first_cuda_for_arch(cc) if cc else None
    last = kb.last_cuda_for_arch(cc) if cc else None
    too_new = bool(last and nvcc and _mm(nvcc) and _mm(last) and _mm(nvcc) > _mm(last))
    return arch, cc, nvcc, first, last, too_new


def arch_diagnosis(ctx: Context) -> str:
    arch, cc, nvcc, first, last, too_new = _arch_facts(ctx)
    path = ctx.facts.nvcc_path or ctx.machine.get("nvcc.path")
    which = f"nvcc {nvcc}" if nvcc else f"The nvcc that ran ({path})" if path else "This nvcc"
    if too_new:
        return f"{which} no longer compiles for {arch} (compute capability {cc}); CUDA {last} was the last that did."
    if nvcc and first:
        return f"{which} is too old for {arch} (compute capability {cc}): CUDA {first} or newer is needed."
    if first and last:
        return (f"{which} does not accept {arch} (compute capability {cc}): only CUDA {first} to {last} can build "
                f"it; older toolkits do not know it and newer ones dropped it.")
    if first:
        return f"{which} is too old for {arch} (compute capability {cc}): CUDA {first} or newer is needed."
    return f"{which} does not accept the architecture {arch}."


def arch_fix(ctx: Context) -> str:
    arch, cc, nvcc, first, last, too_new = _arch_facts(ctx)
    parts: List[str] = []
    if too_new:
        parts.append(f"Use a CUDA toolkit up to {last} (the last that compiles for {cc}), or drop {cc} from "
                     "TORCH_CUDA_ARCH_LIST if this GPU does not need it.")
    elif first and last and not nvcc:
        parts.append(f"Build with a CUDA toolkit from {first} to {last} (`nvcc --version` shows which one ran; "
                     f"`export CUDA_HOME=/usr/local/cuda-X.Y PATH=/usr/local/cuda-X.Y/bin:$PATH`), or, if this GPU "
                     f"is not {cc}, leave {cc} out: `export TORCH_CUDA_ARCH_LIST=\"<your GPU's capability>\"`.")
    elif first:
        parts.append(f"Use a CUDA toolkit >= {first} for {arch} (compute capability {cc}): "
                     f"`export CUDA_HOME=/usr/local/cuda-X.Y PATH=/usr/local/cuda-X.Y/bin:$PATH`")
    supported = kb.nvcc_archs(nvcc) if nvcc else []
    if supported and not too_new:
        best = arch_cc(supported[-1])
        parts.append(f"or build only for archs nvcc {nvcc} knows: `export TORCH_CUDA_ARCH_LIST=\"{best}\"` "
                     f"(it accepts up to sm_{supported[-1][3:]}).")
    elif cc and not too_new and not (first and last and not nvcc):
        parts.append(f"or leave {cc} out: `export TORCH_CUDA_ARCH_LIST=\"<your GPU's capability>\"`.")
    return " ".join(parts) + distro_nvcc_note(ctx) + " " + CHECK


def gcc_diagnosis(ctx: Context) -> str:
    compiler = {"GNU": "gcc"}.get(ctx.group(0), ctx.group(0) or "host compiler")
    cuda = log_nvcc_version(ctx)
    which = f"CUDA {cuda}" if cuda else "this CUDA release"
    limit = f" (it accepts {compiler} up to {ctx.group(1)})" if ctx.group(1) else ""
    return f"nvcc refuses this {compiler} as newer than {which} supports{limit}."


def gcc_fix(ctx: Context) -> str:
    limit = ctx.group(1)
    cuda = log_nvcc_version(ctx)
    kb_limit = kb.max_gcc_for_cuda(cuda) if cuda else None
    gcc = limit or (str(kb_limit) if kb_limit else "N")
    where = f" (CUDA {cuda} accepts gcc <= {kb_limit})" if kb_limit else ""
    return (f"Build with a gcc this CUDA accepts{where}: `sudo apt install gcc-{gcc} g++-{gcc}` then "
            f"`export CC=gcc-{gcc} CXX=g++-{gcc} NVCC_CCBIN=gcc-{gcc}` (CMake: -DCMAKE_CUDA_HOST_COMPILER=g++-{gcc}), "
            "or use a newer CUDA toolkit." + distro_nvcc_note(ctx) + " " + CHECK)


def gcc_bounds_fix(ctx: Context) -> str:
    """For "the installed g++ (X) is greater than the maximum required version by CUDA Y": a gcc CUDA Y takes."""
    cuda = ctx.group(2) or log_nvcc_version(ctx)
    top = kb.max_gcc_for_cuda(cuda) if cuda else None
    if top:
        return (f"Build with a gcc CUDA {cuda} accepts (<= {top}): `sudo apt install gcc-{top} g++-{top}` then "
                f"`export CC=gcc-{top} CXX=g++-{top} NVCC_CCBIN=gcc-{top}`, or use a newer CUDA toolkit."
                + distro_nvcc_note(ctx) + " " + CHECK)
    return ("Build with a host compiler inside the range the message names (`export CC=gcc-N CXX=g++-N "
            "NVCC_CCBIN=gcc-N`; on Windows the Visual Studio version this CUDA supports), or use a newer CUDA "
            "toolkit. " + CHECK)


def torch_install(ctx: Context, need_arch: Optional[str] = None) -> str:
    """The pip line for a torch build that this log's driver/GPU can use, or advice to pick one."""
    facts = ctx.facts
    driver = facts.driver or ctx.machine.get("driver.version")
    need = kb.first_cuda_for_arch(need_arch) if need_arch else None
    if driver:
        found = kb.newest_torch_for_driver(driver)
        if found:
            torch, cuda = found
            if not need or _mm(cuda) >= _mm(need):
                command = kb.pip_install_command(torch, cuda)
                if command:
                    return f"`{command}` (the newest build driver {driver} can run)"
    limit = facts.smi_cuda
    if limit or need:
        choice = _build_within(limit, need)
        if choice:
            torch, cuda = choice
            command = kb.pip_install_command(torch, cuda)
            why = f"the driver runs CUDA <= {limit}" if limit else f"{need_arch} needs CUDA >= {need}"
            if command:
                return f"`{command}` ({why})"
    return ("a CUDA build from https://pytorch.org/get-started/locally/ whose CUDA version your driver supports "
            "(`nvidia-smi` shows the maximum; `envdoctor check` picks the command)")


def _build_within(limit: Optional[str], need: Optional[str]):
    top, low = _mm(limit), _mm(need)
    for major in (2, 1):
        for minor in range(30, -1, -1):
            torch = f"{major}.{minor}"
            for cuda in reversed(kb.torch_cuda_builds(torch)):
                mm = _mm(cuda)
                if mm and (top is None or mm <= top) and (low is None or mm >= low):
                    return torch, cuda
    return None


def cpu_only_fix(ctx: Context) -> str:
    return (f"Install a CUDA build of torch: {torch_install(ctx)}. Check with "
            "`python -c \"import torch; print(torch.version.cuda, torch.cuda.is_available())\"`.")


def torch_arch_fix(ctx: Context) -> str:
    sm = ctx.group(0)
    cc = arch_cc(sm)
    return (f"Install a torch build whose arch list includes {sm} (compute capability {cc}): "
            f"{torch_install(ctx, need_arch=cc)}.")


def ops_dir(ctx: Context) -> str:
    return ctx.facts.ops_dir or ""


def msda_fix(ctx: Context) -> str:
    where = ops_dir(ctx)
    if where:
        return (f"Build the op where the log shows it: `cd {where} && sh make.sh` (or `pip install .` there), in "
                "the same environment, with CUDA_HOME set; then run again.")
    return (f"Build the op in the project's ops directory (Mask2Former: `cd {MASK2FORMER_OPS} && sh make.sh`; "
            "Deformable-DETR/DINO: `cd models/ops && sh make.sh`), in the same environment, with CUDA_HOME set.")


def gpu_cc(ctx: Context) -> str:
    return ctx.facts.gpu_cc or str(ctx.machine.get("gpu.cc") or "")


def arch_list_hint(ctx: Context) -> str:
    cc = gpu_cc(ctx)
    if cc:
        gpu = ctx.facts.gpu or "this GPU"
        return f"`export TORCH_CUDA_ARCH_LIST=\"{cc}\"` ({gpu})"
    return "`export TORCH_CUDA_ARCH_LIST=\"X.Y\"` (your GPU's compute capability; `envdoctor check` shows it)"


def arch_export(ctx: Context) -> str:
    return f'TORCH_CUDA_ARCH_LIST="{gpu_cc(ctx) or "X.Y"}"'


def without_cuda_fix(ctx: Context) -> str:
    if "detectron2" in ctx.line.lower() or "roialign" in ctx.line.lower():
        which = "" if gpu_cc(ctx) else " (X.Y: your GPU's compute capability; `envdoctor check` shows it)"
        return ("detectron2's _C was built without CUDA. Rebuild it with CUDA visible: `pip uninstall -y "
                f"detectron2`, remove its build/ directory, then `FORCE_CUDA=1 CUDA_HOME=/usr/local/cuda "
                f"{arch_export(ctx)} pip install -e .` in the checkout{which}; the build needs nvcc and a CUDA torch.")
    return ("Rebuild the extension with CUDA visible: remove its build/ directory and the installed .so, then build "
            f"with `FORCE_CUDA=1`, CUDA_HOME set and {arch_list_hint(ctx)}.")


def no_kernel_fix(ctx: Context) -> str:
    return (f"Rebuild the compiled extension for this GPU: {arch_list_hint(ctx)}, remove its build/ directory, and "
            "build again. If torch itself has no kernels for the GPU, install a newer torch build.")


def toolkit_fix(ctx: Context) -> str:
    nvcc, torch_cuda = ctx.group(0), ctx.group(1)
    line = f"Point the build at a CUDA {torch_cuda} toolkit: `export CUDA_HOME=/usr/local/cuda-{torch_cuda} " \
           f"PATH=/usr/local/cuda-{torch_cuda}/bin:$PATH`"
    command = None
    for torch in (ctx.facts.torch, kb.latest_torch()):
        if torch:
            command = kb.pip_install_command(torch, nvcc)
            if command:
                break
    other = f", or install torch built for CUDA {nvcc}: `{command}`" if command else \
        f", or install a torch built for CUDA {nvcc}"
    return line + other + "." + distro_nvcc_note(ctx) + " " + CHECK


def distro_or_toolkit_fix(ctx: Context) -> str:
    """Build with the toolkit torch was built with; the log's own versions and nvcc path when it shows them."""
    torch_cuda = ctx.facts.torch_cuda
    nvcc = log_nvcc_version(ctx)
    target = f"CUDA {torch_cuda}" if torch_cuda else "torch's CUDA (`python -c \"import torch; print(torch.version.cuda)\"`)"
    ran = f" instead of nvcc {nvcc}" if nvcc else ""
    root = f"/usr/local/cuda-{torch_cuda}" if torch_cuda else "/usr/local/cuda-X.Y"
    return (f"Build with a {target} toolkit{ran}: `export CUDA_HOME={root} PATH={root}/bin:$PATH` (install it if "
            "`ls -d /usr/local/cuda*` lists none), or install a torch built for the toolkit you have."
            + distro_nvcc_note(ctx) + " " + CHECK)


def driver_fix(ctx: Context) -> str:
    cuda = ctx.facts.torch_cuda or (ctx.facts.cuda_mentions[0] if ctx.facts.cuda_mentions else None)
    need = kb.min_driver_for_cuda(cuda) if cuda else None
    head = f"Update the NVIDIA driver to >= {need} (needed by CUDA {cuda})" if need else "Update the NVIDIA driver"
    return head + ", or install a build of the program for an older CUDA that this driver supports. " + CHECK


def libstdcxx_fix(ctx: Context) -> str:
    line = ctx.line
    system = re.search(r"(/usr/lib\S*|/lib\S*|/lib64\S*)/libstdc\+\+\.so", line)
    conda = re.search(r"(\S*/(?:envs|conda|miniconda\d?|anaconda\d?)\S*)/libstdc\+\+\.so", line)
    if system and (ctx.facts.conda or "site-packages" in line or "/envs/" in line):
        return (f"The system libstdc++ ({system.group(1)}) is picked for a binary built with a newer one (conda's): "
                "put the environment's first, `export LD_LIBRARY_PATH=$CONDA_PREFIX/lib:$LD_LIBRARY_PATH`, or "
                "`conda install -c conda-forge libstdcxx-ng` in that environment.")
    if conda:
        return ("The environment's own libstdc++ is older than the binary needs: "
                "`conda install -c conda-forge 'libstdcxx-ng>=12'` (or build with that environment's compiler).")
    return ("Use a libstdc++ at least as new as the one the binary was built with (a newer distribution "
            "libstdc++6, or conda's libstdcxx-ng first on LD_LIBRARY_PATH), or rebuild with the older compiler.")
