"""The finding codes of ``envdoctor fleet`` (ED9xx): stable, never reused. Each code's
``doc`` is its user documentation and becomes ``docs/codes/<CODE>.md``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

from envdoctor.model import Finding, Fix, Severity


@dataclass(frozen=True)
class FleetCode:
    code: str
    severity: Severity
    title: str
    doc: str

    @property
    def docs_path(self) -> str:
        return f"docs/codes/{self.code}.md"

    def finding(self, message: str, evidence: Sequence[str] = (), fixes: Sequence[Fix] = (),
                severity: Severity = None) -> Finding:
        return Finding(code=self.code, severity=severity or self.severity, area="fleet", title=self.title,
                       message=message, evidence=tuple(evidence), fixes=tuple(fixes), docs=self.docs_path)


_CODES: Tuple[FleetCode, ...] = (
    FleetCode("ED901", Severity.ERROR, "Every rank joined", """
A rank the launcher promised (``WORLD_SIZE``) never checked in with rank 0 within the
rendezvous window (half of ``--timeout``). The job would hang at its first collective.

Typical causes: the node did not start the task (a Slurm node failure, a pod stuck in
``Pending``), a wrong ``MASTER_ADDR``/``MASTER_PORT`` on that node, a firewall between the
node and rank 0, or a crash before Python started (see that task's own log).

Fix: look at the log of the named rank; check that it can reach ``MASTER_ADDR:MASTER_PORT``
(``nc -z host port``); drain the node if it cannot start tasks.
"""),
    FleetCode("ED902", Severity.ERROR, "Every rank finished each phase", """
A rank joined but stopped answering in a later phase (the checks, the gather, the
all-reduce sweep or the pairwise test): it hung, was stopped, or died. The finding names
the rank, its node, the last phase it reached and how long ago its heartbeat stopped
(a stopped heartbeat means a dead or frozen process; a running one means it is stuck
in a call, such as an NCCL initialisation or a hanging ``nvidia-smi``).

Fix: look at that rank's log and ``dmesg`` on its node (Xid errors, OOM kills); run
``envdoctor check`` on the node; drain it if it keeps failing.
"""),
    FleetCode("ED903", Severity.ERROR, "Same NVIDIA driver on every node", """
The nodes run different NVIDIA drivers. A CUDA build that one driver runs may not run
on the older one, and NCCL's features (CUDA graphs, NVLS, CUMEM) depend on it: mixed
drivers make a job fail, or be slow, on some nodes only.

Fix: install the majority driver on the odd nodes (or drain them until they are
updated). The table shows which nodes have which version.
"""),
    FleetCode("ED904", Severity.ERROR, "Same torch and CUDA build on every node", """
The nodes import different torch versions or torch builds for different CUDA versions
(or the drivers allow different newest CUDA versions). Ranks then run different kernels
and collectives, which produces hangs or silently different numerics.

Fix: install the same environment everywhere (one container image, or one shared
virtual environment); ``pip install torch==<majority version>`` on the odd nodes.
"""),
    FleetCode("ED905", Severity.ERROR, "Same NCCL on every node", """
The NCCL that torch reports (``torch.cuda.nccl.version()``), or the ``libnccl`` actually
loaded into the process (read from ``/proc/self/maps``), differs between nodes. NCCL
requires the same version on every rank of a communicator; mismatches hang or fail at
initialisation.

Fix: remove stray ``libnccl.so`` copies from ``LD_LIBRARY_PATH`` on the odd nodes, or
install the same ``nvidia-nccl-*`` wheel everywhere.
"""),
    FleetCode("ED906", Severity.ERROR, "NCCL net plugin on every node, or on none", """
Some nodes have an NCCL net plugin (``libnccl-net*.so``: the InfiniBand SHARP, AWS OFI
or GCP plugins) on the library path and others do not, or the plugin names differ.
The nodes without it fall back to TCP sockets, which makes every collective of the job
as slow as those nodes.

Fix: install the plugin on the odd nodes (or put its directory on ``LD_LIBRARY_PATH``
in the job script the same way everywhere).
"""),
    FleetCode("ED907", Severity.WARNING, "Same NCCL_*, UCX_*, FI_* variables on every node", """
The network variables differ between nodes (``NCCL_SOCKET_IFNAME``, ``NCCL_IB_HCA``,
``NCCL_P2P_DISABLE``, ``FI_PROVIDER``, ...). Different settings give different transports
or algorithms on different ranks: hangs or slow collectives.

Fix: set them in one place (the job script or the container image) and export them to
every task (``srun --export=ALL``, ``mpirun -x``).
"""),
    FleetCode("ED908", Severity.ERROR, "Same GPUs on every node", """
The GPU model, the number of GPUs, their memory or their compute capability differ
between nodes: a GPU missing from one node (fallen off the bus), a node of another
type in the allocation, or MIG enabled on one node only.

Fix: drain the odd node and check it with ``nvidia-smi`` and ``dmesg`` (Xid 79: GPU
fallen off the bus); request a homogeneous partition.
"""),
    FleetCode("ED909", Severity.ERROR, "InfiniBand ports the same and ACTIVE", """
The InfiniBand devices or their port state or rate (from ``/sys/class/infiniband``)
differ between nodes, or a port is not ``ACTIVE``. NCCL skips a down port, so that node
has less bandwidth, or falls back to sockets.

Fix: check the cable and the switch port of the named device (``ibstat``); drain the
node until the port is ``ACTIVE`` at the majority rate.
"""),
    FleetCode("ED910", Severity.ERROR, "Every node has its own hostname", """
Two different machines (different boot ids) report the same node name. Launchers,
NCCL's topology detection and log files key on the hostname; duplicates make ranks
land on the wrong node and make logs ambiguous.

Fix: give every node a unique hostname (``hostnamectl set-hostname``); in containers,
pass a unique ``--node-name`` (for example the pod name).
"""),
    FleetCode("ED911", Severity.WARNING, "Clocks agree across nodes", """
The wall clocks of the nodes, read by every rank right after a barrier, differ by more
than one second. Timeouts, logs and profiler traces compared across nodes are then
wrong, and some authentication (Kerberos, cloud tokens) fails.

Fix: run an NTP client (chrony or systemd-timesyncd) on every node.
"""),
    FleetCode("ED912", Severity.ERROR, "All-reduce bus bandwidth reaches the expected figure", """
The best all-reduce bus bandwidth of the sweep (nccl-tests' definition: busbw = algbw x
2(n-1)/n, algbw = bytes / time) is below the sourced figure for this hardware (see
``envdoctor/knowledge/data/fleet_bandwidth.json``: for one node of 8 H100 SXM GPUs 460
GB/s, of 8 A100 SXM GPUs 228 GB/s). The pairwise test (ED913) names the slow link or
node when there is one.

Fix: check ``nvidia-smi topo -m`` and ``nvidia-smi nvlink -s`` (NVLink down), the
NCCL_* variables (a forced ``NCCL_P2P_DISABLE=1`` or ``NCCL_ALGO``), and that nothing else
runs on the GPUs. Measure the largest sizes (``--sizes 1G,4G``): small messages never
reach the peak.
"""),
    FleetCode("ED913", Severity.ERROR, "No slow link or rank in the pairwise test", """
In the pairwise test every rank exchanges messages with its neighbours in a ring (the
median of five timings, taken in turns). A pair below half the bandwidth of the good pairs
(a quarter on gloo, whose CPU cores are shared with the rest of the machine) is slow;
a rank all of whose pairs are
slow is a slow rank (an overloaded or throttled node, a bad NIC or GPU), while a single
slow pair is a slow link between two nodes.

Fix: drain the named node, or check the link between the two named nodes (``ibstat``,
cables, switch counters); rerun ``envdoctor fleet`` with the node excluded to confirm.
"""),
    FleetCode("ED914", Severity.WARNING, "The nodes' own checks agree", """
``envdoctor check``, run on every rank, raised different error findings on different
nodes (for example a missing ``CUDA_HOME`` or a stale extension build on one node only).
Jobs that compile or load extensions then fail on those nodes only.

Fix: run ``envdoctor check`` on an odd node to see the findings and their fixes.
"""),
    FleetCode("ED915", Severity.ERROR, "Collectives run on the fleet", """
A collective of the fleet test (the gather over gloo, or the all-reduce sweep over NCCL
or gloo) failed with an error rather than a timeout: for example NCCL could not
initialise (no route between the nodes, a wrong ``NCCL_SOCKET_IFNAME``) or a peer closed
the connection. The message quotes the error.

Fix: rerun with ``NCCL_DEBUG=INFO`` and read the first rank that reports a failure;
check ``NCCL_SOCKET_IFNAME`` names an interface that exists on every node.
"""),
)

FLEET_CODES: Dict[str, FleetCode] = {c.code: c for c in _CODES}


def code(name: str) -> FleetCode:
    return FLEET_CODES[name]
