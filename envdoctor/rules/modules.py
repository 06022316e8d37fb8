"""Rules about CUDA offered as environment modules (Lmod, Environment Modules)."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from envdoctor.model import Fix, Severity
from envdoctor.rules._helpers import ev, matching_toolkits, mm, toolkits, torch_info
from envdoctor.rules.base import rule


def _replacement(ctx) -> Optional[Mapping[str, Any]]:
    """A toolkit offered by a module that matches torch's CUDA (exact minor first), else any module's."""
    found = [t for t in toolkits(ctx.facts) if (t.get("module") or {}).get("name")]
    cuda = mm(torch_info(ctx.facts).get("cuda"))
    ranked = matching_toolkits(cuda, found) if cuda else []
    return ranked[0] if ranked else (found[0] if found and not cuda else None)


@rule("ED209", area="toolkit", title="CUDA modulefiles point at toolkits that exist", needs=("modules",),
      reads=("toolkits", "torch"))
def stale_modulefile(ctx):
    """A CUDA modulefile on ``MODULEPATH`` names a toolkit directory that does not exist.

    Clusters keep modulefiles after the toolkit they describe is removed or
    moved. ``module load`` of such a module succeeds silently (Lmod 8.6 says
    nothing): it puts ``<root>/bin`` first on PATH and sets ``CUDA_HOME`` to the
    missing root, so ``nvcc`` is not found and every CUDA extension build fails
    ("No such file or directory: '<root>/bin/nvcc'"). This is an error when such
    a module is loaded, and a note otherwise (loading it would break builds).

    Fix: ``module swap`` to a module whose toolkit exists and matches torch
    (envdoctor names it) or ``module unload`` the stale one; the modulefile
    itself belongs to whoever maintains the cluster's modules.
    """
    modules = ctx.value("modules") or {}
    stale = [o for o in modules.get("offered") or [] if not o.get("root_exists")]
    if not stale:
        return None
    replacement = _replacement(ctx)
    good = (replacement or {}).get("module", {}).get("name") if replacement else None
    findings = []
    for offer in stale:
        name, root, file = offer.get("name"), offer.get("root"), offer.get("file")
        sets = ", ".join(offer.get("sets") or []) or "PATH"
        instead = (f" {good} offers {replacement.get('root')} (CUDA {replacement.get('version')})."
                   if replacement and good else "")
        if offer.get("loaded"):
            commands = (f"module swap {name} {good}",) if good else (f"module unload {name}",)
            findings.append(ctx.finding(
                Severity.ERROR,
                f"The loaded module {name} ({file}) names the toolkit {root}, which does not exist: it put "
                f"{root}/bin on PATH and set {sets} to a missing directory, so CUDA builds find no nvcc.{instead} "
                f"Expected the loaded CUDA module to name an existing toolkit.",
                evidence=(ev("module", name), ev("module.file", file), ev("module.root", root)),
                fixes=[Fix(summary=f"Replace the module {name}" + (f" with {good}" if good else ""),
                           commands=commands, action=None, safe=False)]))
            continue
        commands = (f"module load {good}",) if good else ()
        findings.append(ctx.finding(
            Severity.INFO,
            f"The modulefile {name} ({file}) names the toolkit {root}, which does not exist: `module load {name}` "
            f"would put a missing directory first on PATH and set {sets} to it, and CUDA builds would fail.{instead}",
            evidence=(ev("module", name), ev("module.file", file), ev("module.root", root)),
            fixes=[Fix(summary=(f"Use {good} instead" if good else "Use another CUDA module")
                       + f"; {file} needs updating or removing by whoever maintains the modules",
                       commands=commands, action=None, safe=False)]))
    return findings
