"""The torch probe: facts about torch and torchvision, observed in a subprocess.

torch is imported in a child process (``_torch_script.py``) with a timeout, so a
torch that raises on import, segfaults or hangs becomes a finding instead of
taking the doctor down. The child prints marked JSON lines section by section;
whatever arrived before a crash or a hang is kept.

In quick mode torch is not imported at all: the facts come from its installed
files (``torch/version.py`` and friends), and the fields that need the import
are null with error "quick mode".
"""
from __future__ import annotations

import json
import os
import re
import signal
import time
from typing import Any, Dict, List, Optional

from envdoctor.model import Fact
from envdoctor.probes import _prestart
from envdoctor.probes._inproc import find_spec_as_child, same_interpreter
from envdoctor.probes.base import Probe, ProbeContext
from envdoctor.runner import CommandResult, Runner, base_env, decode_output

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_torch_script.py")
MARK = "@@envdoctor-torch "
# The child's last line (json.dumps of {"section": "status", ...}): everything is reported.
STATUS_LINE = (MARK + '{"section": "status"').encode()
IMPORT_TIMEOUT = 60.0  # importing torch takes 2-8 s; a hang must still end
QUICK_TIMEOUT = 15.0
QUICK = "quick mode"

# Lines of an import traceback that say what actually went wrong.
_KEY_LINE = re.compile(r"undefined symbol|cannot open shared object file|GLIBCXX_|GLIBC_|version `|"
                       r"No module named|DLL load failed|image not found|Symbol not found")


def probe_torch(ctx: ProbeContext) -> List[Fact]:
    argv = [ctx.python, SCRIPT] + (["--quick"] if ctx.quick else [])
    timeout = QUICK_TIMEOUT if ctx.quick else max(IMPORT_TIMEOUT, ctx.timeout)
    # The child must not write byte-code caches: `check` only reads.
    env = _child_env(ctx.env)
    result = _quick_in_process(ctx, argv) if ctx.quick else None
    if result is None:
        result = _run_child(ctx, argv, env, timeout)
    sections = parse_sections(result.stdout)
    status = classify(result, sections)
    source = f"{ctx.python} {os.path.basename(SCRIPT)}" + (" --quick" if ctx.quick else "")
    raw = _raw(result)
    facts = [Fact("torch.status", status, source=source, raw=raw)]
    facts.extend(_torch_facts(sections, status, source, ctx.quick, timeout))
    return facts


def _quick_in_process(ctx: ProbeContext, argv: List[str]) -> Optional[CommandResult]:
    """The script's quick mode run here (it only reads files) when the diagnosed Python is this
    one: the same sections, without an interpreter start. None: run the script as a child."""
    if not same_interpreter(ctx):
        return None
    from envdoctor.probes import _torch_script as script

    env = base_env(extra=_child_env(ctx.env), env=getattr(ctx.runner, "env", None))
    script_dir = os.path.dirname(SCRIPT)  # a child's sys.path[0] is the script's directory
    try:
        sections = script.quick(env=env, find_spec=lambda name: find_spec_as_child(name, script_dir))
    except Exception:  # whatever went wrong, the child reports it the way it always has
        return None
    # Through JSON like the child's lines, so the values are exactly what the child would give.
    stdout = "".join(MARK + json.dumps({"section": name, "data": data}, default=str) + "\n"
                     for name, data in sections)
    return CommandResult(tuple(argv), 0, stdout, "")


def _run_child(ctx: ProbeContext, argv: List[str], env: Dict[str, str], timeout: float) -> CommandResult:
    """Run the script; with real processes, adopt the child the entry point started first
    (see ``_prestart``) when it runs exactly this command, and stop at its status line
    instead of waiting for the interpreter to exit. The timeout counts from its start."""
    if type(ctx.runner) is not Runner:
        return ctx.runner.run(argv, timeout=timeout, env=env)
    child_env = base_env(extra=env, env=ctx.runner.env)
    started_child = _prestart.take(argv, child_env) or _prestart.spawn(argv, child_env)
    if started_child is None:  # could not start: the runner says why, in its usual words
        return ctx.runner.run(argv, timeout=timeout, env=env)
    proc, started = started_child
    out, err, code, error = _prestart.read_until_done(proc, started, timeout, STATUS_LINE)
    return CommandResult(tuple(argv), code, decode_output(out), decode_output(err), error=error, duration=time.monotonic() - started)


def _child_env(env: Dict[str, str]) -> Dict[str, str]:
    child = dict(env)
    child["PYTHONDONTWRITEBYTECODE"] = "1"
    return child


def _raw(result: CommandResult) -> str:
    text = result.stderr.strip()
    if result.error:
        text = (text + "\n" if text else "") + f"[{result.error}]"
    return text[-8000:]  # a long warning spew must not bloat the report


def parse_sections(stdout: str) -> Dict[str, Dict[str, Any]]:
    """The marked JSON lines of the child, by section. Garbage lines are ignored."""
    sections: Dict[str, Dict[str, Any]] = {}
    for line in stdout.splitlines():
        if not line.startswith(MARK):
            continue
        try:
            item = json.loads(line[len(MARK):])
        except ValueError:
            continue
        if isinstance(item, dict) and isinstance(item.get("data"), dict):
            sections[str(item.get("section"))] = item["data"]
    return sections


def classify(result: CommandResult, sections: Dict[str, Dict[str, Any]]) -> Dict[str, str]:
    """torch.status: ok | missing | import_error | crashed | timeout, with a message."""
    if result.error and result.error.startswith("timed out"):
        stage = _last_stage(sections)
        return {"status": "timeout", "message": f"the torch probe {result.error} ({stage})"}
    if result.error:
        return {"status": "crashed", "message": f"could not run {result.argv[0]}: {result.error}"}
    reported = sections.get("status")
    if reported and reported.get("status") in ("ok", "missing", "import_error"):
        message = str(reported.get("message", ""))
        if reported["status"] == "import_error":
            message = import_error_message(str(reported.get("traceback") or message))
        return {"status": reported["status"], "message": message}
    if result.returncode is not None and result.returncode < 0:
        return {"status": "crashed", "message": _signal_message(-result.returncode, sections)}
    return _classify_stderr(result)


def _last_stage(sections: Dict[str, Dict[str, Any]]) -> str:
    if "basics" not in sections:
        return "while importing torch"
    if "cuda" not in sections:
        return "while initialising CUDA"
    return "after CUDA initialisation"


def _signal_message(signum: int, sections: Dict[str, Dict[str, Any]]) -> str:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    return f"the Python process probing torch was killed by {name} {_last_stage(sections)}"


def _classify_stderr(result: CommandResult) -> Dict[str, str]:
    """No status line from the child: judge by what it printed (a wrapper, a broken interpreter)."""
    text = result.stderr or result.stdout
    if re.search(r"No module named '?torch'?\s*$", text, re.M):
        return {"status": "missing", "message": "No module named 'torch'"}
    if re.search(r"^\w*(Error|Exception)\b", text, re.M):
        return {"status": "import_error", "message": import_error_message(text)}
    if result.returncode is not None and result.returncode > 128:  # a shell reporting a signal
        return {"status": "crashed", "message": _signal_message(result.returncode - 128, {})}
    tail = text.strip().splitlines()[-1:] or ["no output"]
    return {"status": "crashed",
            "message": f"the torch probe exited with status {result.returncode} without reporting: {tail[0][:200]}"}


def import_error_message(text: str) -> str:
    """The last line of a traceback, plus the line that names the real cause when it differs."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "import torch failed"
    last = lines[-1]
    key = next((line for line in reversed(lines) if _KEY_LINE.search(line)), None)
    if key and key not in last:
        return f"{last} ({key})"
    return last


def _torch_facts(sections: Dict[str, Dict[str, Any]], status: Dict[str, str], source: str,
                 quick: bool, timeout: float) -> List[Fact]:
    if quick and "quick" in sections:
        return [Fact("torch", quick_torch_value(sections["quick"]), source=source),
                _torchvision_fact(sections.get("torchvision"), source, quick)]
    if "basics" not in sections:
        reason = f"torch is not usable: {status['status']}: {status['message']}"
        return [Fact.unavailable("torch", reason, source=source),
                Fact.unavailable("torchvision", reason, source=source)]
    value = torch_value(sections)
    if "cuda" not in sections and status["status"] in ("timeout", "crashed"):
        # The import worked; CUDA initialisation is what hung or crashed. That is the reason.
        value["cuda_error"] = status["message"]
    return [Fact("torch", value, source=source), _torchvision_fact(sections.get("torchvision"), source, quick)]


def torch_value(sections: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    basics = sections.get("basics", {})
    cuda = sections.get("cuda", {})
    libs = sections.get("libs", {})
    raw = cuda.get("cudnn_raw")
    return {
        "version": basics.get("version"),
        "cuda": basics.get("cuda"),
        "hip": basics.get("hip"),
        "file": basics.get("file"),
        "cuda_available": bool(cuda.get("cuda_available")),
        "cuda_error": cuda.get("cuda_error"),
        "device_count": cuda.get("device_count", 0) or 0,
        "devices": cuda.get("devices") or [],
        "arch_list": basics.get("arch_list") or [],
        "cudnn": decode_cudnn(raw),
        "cudnn_raw": raw,
        "nccl": cuda.get("nccl"),
        "cxx11_abi": basics.get("cxx11_abi"),
        "loaded_cuda_libs": libs.get("loaded_cuda_libs") or [],
        "cpp_ext_cuda_home": basics.get("cpp_ext_cuda_home"),
        "cpp_ext_cuda_home_source": basics.get("cpp_ext_cuda_home_source") if basics.get("cpp_ext_cuda_home")
        else None,
        "install": basics.get("install"),
    }


def quick_torch_value(data: Dict[str, Any]) -> Dict[str, Any]:
    """Torch facts from installed files; what needs the import is None (cuda_error says "quick mode")."""
    version_py = data.get("version_py") or {}
    cudnn = data.get("cudnn_files")
    home = data.get("cpp_ext_cuda_home")
    return {
        "version": version_py.get("__version__"),
        "cuda": version_py.get("cuda"),
        "hip": version_py.get("hip"),
        "file": data.get("file"),
        "cuda_available": None,
        "cuda_error": QUICK,
        "device_count": None,
        "devices": None,
        "arch_list": None,
        "cudnn": ".".join(cudnn.split(".")[:3]) if cudnn else None,
        "cudnn_raw": None,
        "nccl": None,
        "cxx11_abi": None,
        "loaded_cuda_libs": None,
        "cpp_ext_cuda_home": home,
        "cpp_ext_cuda_home_source": data.get("cpp_ext_cuda_home_source") if home else None,
        "install": data.get("install"),
    }


def _torchvision_fact(data: Optional[Dict[str, Any]], source: str, quick: bool) -> Fact:
    if data is None:
        return Fact.unavailable("torchvision", "the torch probe ended before checking torchvision", source=source)
    if not data.get("installed"):
        return Fact.unavailable("torchvision", "torchvision is not installed", source=source)
    version = (data.get("version_py") or {}).get("__version__")
    cuda_raw = data.get("cuda_raw")
    cuda = decode_torchvision_cuda(cuda_raw) if cuda_raw is not None else None
    if cuda is None and quick:
        cuda = cuda_from_local_version(version)
    value = {"version": version, "cuda": cuda, "import_error": data.get("import_error")}
    return Fact("torchvision", value, source=source + " (torchvision/_C loaded by torch.ops)" if not quick
                else source + " (torchvision/version.py)")


def decode_torchvision_cuda(raw: Any) -> Optional[str]:
    """torchvision's ``_cuda_version()``: 13000 -> "13.0", 11080 -> "11.8"; -1/0 = CPU build."""
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return None
    if value <= 0:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"


def cuda_from_local_version(version: Optional[str]) -> Optional[str]:
    """"0.29.1+cu130" -> "13.0", "+cu118" -> "11.8", "+cu92" -> "9.2"; None without a +cu tag."""
    match = re.search(r"\+cu(\d+)(\d)$", version or "")
    return f"{match.group(1)}.{match.group(2)}" if match else None


def decode_cudnn(raw: Any) -> Optional[str]:
    """torch.backends.cudnn.version() as "major.minor.patch" (92400 -> "9.24.0", 8902 -> "8.9.2")."""
    if raw is None:
        return None
    try:
        from envdoctor.knowledge import cudnn_version  # the shared decoder, when present
    except ImportError:
        return _decode_cudnn_fallback(raw)
    try:
        return cudnn_version(raw)
    except Exception:
        return _decode_cudnn_fallback(raw)


def _decode_cudnn_fallback(raw: Any) -> Optional[str]:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return None
    # cuDNN >= 9 encodes major*10000 + minor*100 + patch; before, major*1000 + minor*100 + patch.
    if value >= 90000:
        return f"{value // 10000}.{(value % 10000) // 100}.{value % 100}"
    return f"{value // 1000}.{(value % 1000) // 100}.{value % 100}"


PROBE = Probe(name="torch", fn=probe_torch, keys=("torch.status", "torch", "torchvision"), slow=True)
