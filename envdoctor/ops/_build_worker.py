"""Child process that compiles the extension: ``python -m envdoctor.ops._build_worker SPEC.json``.

The build runs in its own process because torch.utils.cpp_extension reads
CUDA_HOME once, at import, and because a CUDA variant must be loadable (and is
loaded here, to prove it) without clashing with the variant the parent may
already have loaded: an operator namespace can be registered once per process.
"""
from __future__ import annotations

import json
import sys
import time


def main(spec_path: str) -> int:
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    started = time.monotonic()
    import torch
    from torch.utils.cpp_extension import load

    load(
        name=spec["name"],
        sources=spec["sources"],
        extra_cflags=spec["extra_cflags"],
        extra_cuda_cflags=spec["extra_cuda_cflags"],
        extra_include_paths=spec["include_paths"],
        build_directory=spec["build_dir"],
        with_cuda=spec["with_cuda"],
        is_python_module=False,
        verbose=True,
    )
    result = {
        "seconds": round(time.monotonic() - started, 2),
        "cuda_version": int(torch.ops.envdoctor._cuda_version()),
        "has_cpu_kernel": torch._C._dispatch_has_kernel_for_dispatch_key("envdoctor::ms_deform_attn", "CPU"),
        "has_cuda_kernel": torch._C._dispatch_has_kernel_for_dispatch_key("envdoctor::ms_deform_attn", "CUDA"),
    }
    with open(spec["result_path"], "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    print("envdoctor: built and loaded", json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
