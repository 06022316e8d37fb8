"""``envdoctor fleet``: the same checks on every rank of a torch.distributed job,
gathered over gloo and compared; an all-reduce sweep and a pairwise test as proof.

    launcher (env) -> run (per rank: check-in, checks, gather, sweep)
                   -> result (rank 0: compare, bandwidth verdict) -> render

Only ``comm`` and ``run`` import torch; ``launcher``, ``probes``, ``compare``,
``bandwidth``, ``result`` and ``render`` are plain Python.
"""
