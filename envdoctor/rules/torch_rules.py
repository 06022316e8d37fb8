"""Rules about torch and torchvision (ED3xx)."""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

from envdoctor import knowledge as kb
from envdoctor.model import Fix, Severity
from envdoctor.rules._helpers import (env_vars, ev, fmt_mm, gpus, mm, pip_install_fix, public_version, release_mm,
                                      set_env_fix, torch_for_driver_fix, torch_info,
                                      unverified_note)
from envdoctor.rules.base import rule

_MISSING_LIB = re.compile(r"(lib[\w.+-]+\.so[\w.]*): cannot open shared object file")
_UNDEFINED = re.compile(r"undefined symbol: (\S+)")


def _import_error_hint(message: str, ld_library_path: List[str]) -> Tuple[str, List[Fix]]:
    """Explain the usual causes of a failing ``import torch`` from its error text."""
    reinstall = Fix(summary="Reinstall torch in this environment (pin the release you need, e.g. torch==2.5.1, and "
                            "add the --index-url of its CUDA build)",
                    commands=("python -m pip show torch  # the installed version",
                              "python -m pip install --force-reinstall --no-cache-dir --no-deps torch"),
                    action=None, safe=False)
    missing = _MISSING_LIB.search(message)
    if missing:
        hint = (f" The library {missing.group(1)} it was linked against is not installed or not found: this torch "
                f"expects a CUDA runtime from elsewhere (a removed conda cudatoolkit, or a build for another CUDA).")
        return hint, [reinstall]
    undefined = _UNDEFINED.search(message)
    if undefined:
        hint = (f" A library exports no {undefined.group(1)}: torch loaded a different build of a library than it "
                f"was built with")
        fixes = [reinstall]
        if ld_library_path:
            hint += f", typically through LD_LIBRARY_PATH ({':'.join(ld_library_path)})"
            fixes.insert(0, set_env_fix("Drop LD_LIBRARY_PATH entries that shadow torch's own libraries",
                                        unset=list(ld_library_path)))
        return hint + ".", fixes
    return "", [reinstall]


@rule("ED300", area="torch", title="torch imports", needs=("torch.status",), fixable=True,
      reads=("driver.version", "env.ld_library_path", "env.python", "torch"))
def torch_import_broken(ctx):
    """``import torch`` fails, crashes or hangs in this Python.

    envdoctor imports torch in a separate process, so a broken torch is a
    finding, not a crash of the check. Common causes: a missing CUDA runtime
    library (``libcudart.so.11.0: cannot open shared object file`` after
    removing a conda ``cudatoolkit``), ``LD_LIBRARY_PATH`` loading another
    build of cuDNN/NCCL/cuBLAS (``undefined symbol``), or a mix of conda and
    pip installs. A missing torch is reported as information.

    Fix: remove the shadowing ``LD_LIBRARY_PATH`` entries, or reinstall torch
    in this environment.
    """
    status = ctx.value("torch.status") or {}
    state, message = status.get("status"), (status.get("message") or "").strip()
    if state in (None, "ok"):
        return None
    if state == "missing":
        fix = torch_for_driver_fix(ctx.facts, "Install torch {torch} built for CUDA {cuda}, which this driver runs")
        return ctx.finding(Severity.INFO, "torch is not installed in this Python; torch checks were skipped.",
                           evidence=(ev("torch.status", state),), fixes=[fix] if fix else [])
    hint, fixes = _import_error_hint(message, list(ctx.value("env.ld_library_path") or []))
    first = message.splitlines()[-1] if message else "no message"
    what = {"import_error": "raises", "crashed": "crashes the interpreter", "timeout": "does not finish"}.get(
        state, f"fails ({state})")
    if ctx.has("torch"):  # the import worked; initialising CUDA is what crashed or hung
        version = torch_info(ctx.facts).get("version")
        return ctx.finding(
            Severity.ERROR,
            f"torch {version} imports, but initialising CUDA {what.replace('raises', 'fails')}: {first!r}.{hint} "
            f"Expected torch.cuda to initialise or report why not.",
            evidence=(ev("torch.status", state), ev("torch.version", version)), fixes=fixes)
    return ctx.finding(
        Severity.ERROR,
        f"`import torch` {what}: {first!r}.{hint} Expected torch to import; checks that need torch's facts were "
        f"skipped.", evidence=(ev("torch.status", state), "torch.status"), fixes=fixes)


def _gpu_present(ctx) -> bool:
    return bool(gpus(ctx.facts)) or bool(ctx.value("driver.present"))


@rule("ED301", area="torch", title="torch has CUDA on a machine with an NVIDIA GPU", needs=("torch",),
      fixable=True, reads=("driver.present", "driver.version", "env.python", "gpus"))
def cpu_only_torch_with_gpu(ctx):
    """torch is a CPU-only build, but this machine has an NVIDIA GPU and driver.

    ``pip install torch`` from some indexes, or a conda solve that picked the
    ``cpu`` variant, gives a torch with ``torch.version.cuda = None``: training
    silently runs on the CPU and ``.cuda()`` raises "Torch not compiled with
    CUDA enabled".

    Fix: install the CUDA build of the same torch release for the newest CUDA
    the driver runs (exact pip command given).
    """
    torch = torch_info(ctx.facts)
    if not _gpu_present(ctx):
        return ctx.not_applicable("no NVIDIA GPU or driver found")
    if torch.get("cuda") or torch.get("hip"):
        return None
    driver = ctx.value("driver.version")
    fix = torch_for_driver_fix(ctx.facts, "Install torch {torch} built for CUDA {cuda}, which driver "
                               + str(driver) + " runs")
    names = ", ".join(str(g.get("name")) for g in gpus(ctx.facts)) or "an NVIDIA driver"
    return ctx.finding(
        Severity.ERROR,
        f"torch {torch.get('version')} is a CPU-only build (torch.version.cuda is None) on a machine with {names} "
        f"(driver {driver or 'present'}). Expected a CUDA build of torch.",
        evidence=(ev("torch.version", torch.get("version")), ev("torch.cuda", None), ev("driver.version", driver)),
        fixes=[fix] if fix else [Fix(summary="Install a CUDA build of torch (see https://pytorch.org/get-started/)",
                                     action=None, safe=False)])


def _visible_devices_hidden(ctx) -> Optional[str]:
    value = env_vars(ctx.facts).get("CUDA_VISIBLE_DEVICES")
    if value is not None and value.strip() in ("", "-1", "none", "NoDevFiles"):
        return value
    return None


@rule("ED302", area="torch", title="CUDA is available to torch", needs=("torch", "driver.present"), fixable=True,
      reads=("driver.smi", "driver.version", "env.vars"))
def cuda_not_available(ctx):
    """torch is a CUDA build and an NVIDIA driver is present, yet
    ``torch.cuda.is_available()`` is False.

    The reason is in the warning torch prints (recorded as
    ``torch.cuda_error``): a driver too old for torch's CUDA (see ED101),
    ``CUDA_VISIBLE_DEVICES`` hiding every GPU, a driver/library mismatch after
    an update (ED103), or a container without GPU access.

    Fix: depends on the reason, which the message names; the matching fix is
    given.
    """
    torch = torch_info(ctx.facts)
    if not torch.get("cuda"):
        return ctx.not_applicable("torch is a CPU-only build")
    if not ctx.value("driver.present"):
        return ctx.not_applicable("no NVIDIA driver found (see ED303)")
    if torch.get("cuda_available") is not False:
        return None
    reason = (torch.get("cuda_error") or "").strip() or "torch gave no reason"
    fixes: List[Fix] = []
    hidden = _visible_devices_hidden(ctx)
    driver = ctx.value("driver.version")
    explanation = ""
    if hidden is not None:
        explanation = f" CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU."
        fixes.append(set_env_fix("Stop hiding the GPUs", unset=["CUDA_VISIBLE_DEVICES"]))
    elif driver and not kb.driver_runs_cuda(driver, torch["cuda"])[0]:
        explanation = f" Driver {driver} is too old for CUDA {torch['cuda']} (see ED101)."
        fix = torch_for_driver_fix(ctx.facts, "Install torch {torch} built for CUDA {cuda}, which driver "
                                   + driver + " runs")
        fixes.extend([fix] if fix else [])
    elif (ctx.value("driver.smi") or {}).get("status") not in (None, "ok"):
        explanation = " nvidia-smi cannot talk to the driver either (see ED103)."
    if not fixes:
        fixes.append(Fix(summary="See the full error torch raises when it initialises CUDA",
                         commands=('python -c "import torch; torch.cuda.init()"',), action=None, safe=True))
    return ctx.finding(
        Severity.ERROR,
        f"torch {torch.get('version')} (CUDA {torch.get('cuda')}) reports CUDA not available although an NVIDIA "
        f"driver is present: {reason!r}.{explanation} Expected torch.cuda.is_available() to be True.",
        evidence=(ev("torch.cuda_available", False), ev("torch.cuda_error", reason), ev("driver.present", True)),
        fixes=fixes)


@rule("ED303", area="torch", title="A GPU is there for torch's CUDA build", needs=("torch", "driver.present"),
      reads=("driver.state", "gpus"))
def cuda_torch_without_driver(ctx):
    """torch is a CUDA build but this machine has no NVIDIA driver (a CPU-only
    machine, a CI runner, or a container started without GPU access).

    That is fine: CUDA builds of torch run on the CPU, and CUDA extensions can
    still be compiled (nvcc needs no GPU; set ``TORCH_CUDA_ARCH_LIST``). This is
    information, so that "CUDA not available" is not a surprise.

    Nothing to fix, unless you expected a GPU here (then start the container
    with ``--gpus all`` or install the driver).
    """
    torch = torch_info(ctx.facts)
    if not torch.get("cuda") or ctx.value("driver.present") or gpus(ctx.facts):
        return None
    if (ctx.value("driver.state") or {}).get("state") in ("user_space_only", "container_no_gpu", "no_user_space"):
        return None  # ED105, ED107 or ED108 says what there is instead of a driver
    return ctx.finding(
        Severity.INFO,
        f"torch {torch.get('version')} is a CUDA {torch.get('cuda')} build and no NVIDIA driver or GPU was found: "
        f"torch runs on the CPU here. CUDA extensions can still be built (set TORCH_CUDA_ARCH_LIST, since there "
        f"is no GPU to detect).", evidence=(ev("driver.present", False), ev("torch.cuda", torch.get("cuda"))))


def _torchvision_cuda(torchvision: dict) -> Optional[Tuple[int, int]]:
    """torchvision.version.cuda is "13.0" or an int like 13000 (major*1000 + minor*10)."""
    raw = torchvision.get("cuda")
    if raw is None:
        local = str(torchvision.get("version") or "").partition("+")[2]
        return mm(local) if local.startswith("cu") else None
    text = str(raw).strip()
    if text.isdigit() and int(text) >= 1000:
        number = int(text)
        return number // 1000, (number % 1000) // 10
    return mm(text)


@rule("ED304", area="torch", title="torchvision matches torch", needs=("torch", "torchvision"), fixable=True)
def torchvision_mismatch(ctx):
    """torchvision does not match torch: another release line, another CUDA build, or
    it fails to import.

    Each torch release has one matching torchvision (torch 2.14 -> 0.29, 1.9 ->
    0.10). A mismatched pair fails with "operator torchvision::nms does not
    exist", "undefined symbol" when importing ``torchvision._C``, or CUDA ops
    that fail only on the GPU when torchvision is a CPU build.

    Fix: install the matching pair from the same index (exact pip command).
    """
    torch, torchvision = torch_info(ctx.facts), ctx.value("torchvision") or {}
    if not torchvision.get("version") and not torchvision.get("import_error"):
        return ctx.not_applicable("torchvision is not installed")
    expected = kb.torchvision_for_torch(public_version(torch.get("version")))
    actual = release_mm(torchvision.get("version"))
    problems = []
    if torchvision.get("import_error"):
        problems.append(f"`import torchvision` fails: {str(torchvision['import_error']).strip().splitlines()[-1]!r}")
    if expected and actual and fmt_mm(actual) != fmt_mm(mm(expected) or release_mm(expected)):
        release = kb.torch_release(public_version(torch.get("version"))) or {}
        shaky = unverified_note("torchvision" in (release.get("unverified_fields") or []), "torch release")
        problems.append(f"torchvision {torchvision.get('version')} belongs to another torch; torch "
                        f"{torch.get('version')} expects torchvision {expected}{shaky}")
    torch_cuda, tv_cuda = mm(torch.get("cuda")), _torchvision_cuda(torchvision)
    if torch_cuda and torchvision.get("version") and tv_cuda != torch_cuda and not torchvision.get("import_error"):
        problems.append(f"torchvision is built for {'CUDA ' + fmt_mm(tv_cuda) if tv_cuda else 'the CPU only'} and "
                        f"torch for CUDA {fmt_mm(torch_cuda)}")
    if not problems:
        return None
    fix = pip_install_fix(public_version(torch.get("version")), torch.get("cuda") or "cpu",
                          "Install the matching torch/torchvision pair from the same index") if torch.get("cuda") \
        else None
    if fix is None and expected:
        fix = Fix(summary=f"Install torchvision {expected}.x next to torch {torch.get('version')}",
                  commands=(f'python -m pip install "torchvision=={expected}.*"',), action=None, safe=False)
    return ctx.finding(Severity.ERROR, "; ".join(problems) + ".",
                       evidence=(ev("torch.version", torch.get("version")),
                                 ev("torchvision.version", torchvision.get("version")),
                                 ev("torchvision.cuda", torchvision.get("cuda"))),
                       fixes=[fix] if fix else [])
