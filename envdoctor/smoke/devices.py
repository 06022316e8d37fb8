"""Which physical GPU is which: nvidia-smi index -> CUDA index -> UUID. Pure functions.

nvidia-smi numbers GPUs by PCI bus; CUDA numbers them fastest first unless
``CUDA_DEVICE_ORDER=PCI_BUS_ID``, and integer entries of ``CUDA_VISIBLE_DEVICES``
use CUDA's numbering. UUIDs are the only names everyone agrees on, so the
smoke-train verifies by UUID.

Inputs are plain data: the ``gpus`` fact (list of dicts with index, name, uuid,
pci_bus_id, compute_cap), environment values, and the UUIDs torch reports.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence


@dataclass
class DeviceRow:
    cuda_index: int
    uuid: str
    nvidia_smi_index: Optional[int] = None
    name: str = ""
    pci_bus_id: str = ""

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


@dataclass
class DeviceMap:
    rows: List[DeviceRow] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    def by_cuda_index(self, index: int) -> Optional[DeviceRow]:
        return next((r for r in self.rows if r.cuda_index == index), None)

    def table(self) -> List[str]:
        lines = ["nvidia-smi  cuda  uuid                                      name"]
        for r in self.rows:
            smi = "?" if r.nvidia_smi_index is None else str(r.nvidia_smi_index)
            lines.append(f"{smi:>10}  {r.cuda_index:>4}  {r.uuid:<40}  {r.name}")
        return lines


def normalize_uuid(value: str) -> str:
    """torch prints UUIDs bare ("8932f937-..."), nvidia-smi with "GPU-": compare the bare form."""
    text = str(value).strip()
    for prefix in ("GPU-", "MIG-"):
        if text.upper().startswith(prefix):
            return text[len(prefix):].lower()
    return text.lower()


def _cap(gpu: Dict) -> float:
    try:
        return float(gpu.get("compute_cap") or 0)
    except (TypeError, ValueError):
        return 0.0


def cuda_order(gpus: Sequence[Dict], device_order: Optional[str]) -> List[Dict]:
    """Predicted CUDA enumeration order of the physical GPUs.

    PCI_BUS_ID: by bus id, same as nvidia-smi. FASTEST_FIRST (CUDA's default): the
    newest architecture first, bus order among equals. This is a prediction; the
    UUIDs torch reports, when available, are the truth.
    """
    by_bus = sorted(gpus, key=lambda g: (str(g.get("pci_bus_id", "")).lower(), g.get("index", 0)))
    if (device_order or "FASTEST_FIRST").upper() == "PCI_BUS_ID":
        return by_bus
    return sorted(by_bus, key=lambda g: -_cap(g))


def _match_entry(entry: str, ordered: List[Dict]) -> Optional[Dict]:
    if entry.lstrip("-").isdigit():
        i = int(entry)
        return ordered[i] if 0 <= i < len(ordered) else None
    bare = normalize_uuid(entry.split("/")[0])
    if entry.upper().startswith("MIG-"):
        # MIG-GPU-<parent uuid>/gi/ci names its parent GPU; a bare MIG-<uuid> cannot be resolved here.
        bare = normalize_uuid(entry[4:].split("/")[0]) if entry[4:].upper().startswith("GPU-") else ""
    hits = [g for g in ordered if bare and normalize_uuid(g.get("uuid", "")).startswith(bare)]
    return hits[0] if len(hits) == 1 else None


def visible_gpus(gpus: Sequence[Dict], visible: Optional[str], device_order: Optional[str]):
    """Apply CUDA_VISIBLE_DEVICES: returns (GPUs in CUDA index order, problems).

    CUDA reads the list left to right and stops at the first entry that names no
    device: everything after an invalid entry is hidden too.
    """
    ordered = cuda_order(gpus, device_order)
    if visible is None:
        return ordered, []
    chosen: List[Dict] = []
    problems: List[str] = []
    entries = [e.strip() for e in visible.split(",")]
    if visible.strip() == "":
        return [], ["CUDA_VISIBLE_DEVICES is set but empty: CUDA sees no GPU at all"]
    for pos, entry in enumerate(entries):
        gpu = _match_entry(entry, ordered)
        if gpu is None or gpu in chosen:
            why = "repeats an earlier entry" if gpu is not None else "names no GPU on this machine"
            hidden = entries[pos + 1:]
            problems.append(f"CUDA_VISIBLE_DEVICES entry {entry!r} {why}: CUDA stops reading there"
                            + (f", so the entries after it ({','.join(hidden)}) are hidden too" if hidden else ""))
            break
        chosen.append(gpu)
    return chosen, problems


def build_map(gpus: Sequence[Dict], visible: Optional[str], device_order: Optional[str],
              torch_uuids: Optional[Sequence[str]] = None) -> DeviceMap:
    """The nvidia-smi -> CUDA -> UUID table, and every way it can surprise the user."""
    chosen, problems = visible_gpus(gpus, visible, device_order)
    by_uuid = {normalize_uuid(g.get("uuid", "")): g for g in gpus}
    result = DeviceMap(problems=list(problems))
    if torch_uuids is not None:
        for i, uuid in enumerate(torch_uuids):
            gpu = by_uuid.get(normalize_uuid(uuid), {})
            result.rows.append(_row(i, gpu, uuid))
    else:
        result.rows = [_row(i, g, g.get("uuid", "")) for i, g in enumerate(chosen)]
    result.problems.extend(_order_problems(result.rows, visible, device_order))
    return result


def _row(cuda_index: int, gpu: Dict, uuid: str) -> DeviceRow:
    full = uuid if str(uuid).upper().startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
    return DeviceRow(cuda_index, full, gpu.get("index"), gpu.get("name", ""), gpu.get("pci_bus_id", ""))


def _order_problems(rows: List[DeviceRow], visible: Optional[str], device_order: Optional[str]) -> List[str]:
    """An integer that means one GPU to nvidia-smi and another to CUDA: explain, with the first example."""
    if (device_order or "").upper() == "PCI_BUS_ID":
        return []
    if visible is None:
        pairs = [(f"CUDA device {r.cuda_index}", r.cuda_index, r) for r in rows]
    else:
        entries = [e.strip() for e in visible.split(",")]
        pairs = [(f"CUDA_VISIBLE_DEVICES entry {e}", int(e), r) for e, r in zip(entries, rows) if e.isdigit()]
    for label, number, row in pairs:
        if row.nvidia_smi_index is not None and row.nvidia_smi_index != number:
            return [f"{label} is nvidia-smi GPU {row.nvidia_smi_index} ({row.name}), not GPU {number}: CUDA "
                    f"numbers GPUs fastest first, nvidia-smi by PCI bus. Set CUDA_DEVICE_ORDER=PCI_BUS_ID, "
                    f"or name GPUs by UUID in CUDA_VISIBLE_DEVICES"]
    return []


def late_visible_change(at_start: Optional[str], now: Optional[str], cuda_initialized: bool) -> Optional[str]:
    """CUDA reads CUDA_VISIBLE_DEVICES once, when it initialises: later changes do nothing."""
    if at_start == now or not cuda_initialized:
        return None
    return (f"CUDA_VISIBLE_DEVICES was changed from {at_start!r} to {now!r} after CUDA had initialised in this "
            f"process: CUDA still uses {at_start!r}. Set it before the process starts (or before importing "
            f"code that touches the GPU)")


class GpuRequestError(ValueError):
    """--gpus names a GPU that does not exist; the message says which."""


def requested_uuids(request: str, gpus: Sequence[Dict]) -> List[str]:
    """``--gpus 2,3`` means nvidia-smi GPUs 2 and 3 (what the user sees); UUIDs are accepted too."""
    uuids = []
    for entry in (e.strip() for e in request.split(",") if e.strip()):
        if entry.isdigit():
            gpu = next((g for g in gpus if g.get("index") == int(entry)), None)
        else:
            hits = [g for g in gpus if normalize_uuid(g.get("uuid", "")).startswith(normalize_uuid(entry))]
            gpu = hits[0] if len(hits) == 1 else None
        if gpu is None:
            known = ", ".join(str(g.get("index")) for g in gpus) or "none"
            raise GpuRequestError(f"--gpus {request}: no GPU {entry!r} (nvidia-smi GPUs here: {known})")
        uuids.append(gpu["uuid"])
    if not uuids:
        raise GpuRequestError("--gpus is empty")
    return uuids


def child_env_for(uuids: Sequence[str]) -> Dict[str, str]:
    """Environment that pins child processes to exactly these GPUs, whatever the ordering rules."""
    return {"CUDA_VISIBLE_DEVICES": ",".join(uuids), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def verify_placement(expected: Sequence[str], records: Sequence[Dict]) -> List[str]:
    """Each rank's device UUID (from torch, in that rank) must be the GPU that was asked for."""
    problems = []
    for rec in records:
        rank = int(rec.get("local_rank", rec.get("rank", 0)))
        want = expected[rank] if rank < len(expected) else None
        got = rec.get("uuid")
        if want is None or got is None:
            continue
        if normalize_uuid(got) != normalize_uuid(want):
            problems.append(f"rank {rec.get('rank', rank)} ran on {got}, but {want} was asked for")
    return problems
