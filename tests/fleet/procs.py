"""Real local ranks of ``envdoctor fleet`` on gloo over 127.0.0.1, each with a sealed
environment: PATH is the rank's own fake bin dir plus /usr/bin:/bin, nothing inherited
(no NCCL_* of the machine running the tests)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sealed_env(home: str, bin_dir: Optional[str] = None, **extra: str) -> Dict[str, str]:
    env = {"PATH": (bin_dir + os.pathsep if bin_dir else "") + "/usr/bin:/bin", "HOME": home,
           "PYTHONPATH": ROOT, "LC_ALL": "C", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(extra)
    return env


def rank_env(home: str, rank: int, world: int, port: int, bin_dir: Optional[str] = None, **extra: str):
    return sealed_env(home, bin_dir, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK="0", **extra)


def start(env: Dict[str, str], args: Sequence[str], cwd: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "envdoctor", "fleet", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(procs: List[subprocess.Popen], limit: float = 120) -> List[tuple]:
    """(returncode, stdout, stderr) of each; kills what is still running at the limit."""
    out = []
    deadline = time.monotonic() + limit
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            stdout, stderr = p.communicate()
        out.append((p.returncode, stdout, stderr))
    return out


def kill(procs: List[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
