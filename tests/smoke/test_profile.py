"""envdoctor smoke --profile: the per-part timers, the table, and the CLI end to end."""
import json
import os
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from envdoctor import ops
from envdoctor.cli_smoke import smoke_command
from envdoctor.ops import module as msda_module
from envdoctor.smoke.profile import ROWS, StepProfiler, render_profile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Matcher(nn.Module):
    def forward(self, x):
        return x.detach().argmax(-1)


class _Criterion(nn.Module):
    def __init__(self):
        super().__init__()
        self.matcher = _Matcher()

    def forward(self, x):
        self.matcher(x)
        return x.square().mean()


class _PixelDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = ops.MSDeformAttn(d_model=16, n_levels=2, n_heads=2, n_points=2, impl="reference")
        self.shapes = torch.tensor([[4, 4], [2, 2]])
        self.starts = torch.tensor([0, 16])

    def forward(self, src):
        ref = torch.rand(src.shape[0], src.shape[1], 2, 2)
        return self.attn(src, ref, src, self.shapes, self.starts)


class _Model(nn.Module):
    """The parts the profiler hooks, at toy size."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(16, 16)
        self.pixel_decoder = _PixelDecoder()
        self.decoder = nn.Linear(16, 4)
        self.criterion = _Criterion()

    def forward(self, x):
        return self.criterion(self.decoder(self.pixel_decoder(self.backbone(x))))


def _profiled_steps(steps=2):
    torch.manual_seed(0)
    model = _Model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    original = msda_module.ms_deform_attn
    with StepProfiler(model, torch.device("cpu")) as profiler:
        assert msda_module.ms_deform_attn is not original  # timed while profiling
        for _ in range(steps):
            profiler.step_begin()
            loss = model(torch.randn(2, 20, 16))
            with profiler.part("backward"):
                loss.backward()
            with profiler.part("optimizer"):
                optimizer.step()
                optimizer.zero_grad()
            profiler.step_end()
        model(torch.randn(2, 20, 16))  # outside a step: not counted
    assert msda_module.ms_deform_attn is original  # restored
    return profiler


def test_every_part_and_the_op_in_both_directions_are_timed():
    profiler = _profiled_steps()
    assert profiler.steps == 2
    for key in ("backbone", "pixel_decoder", "decoder", "criterion", "matcher", "backward", "optimizer",
                "msda_forward", "msda_backward"):
        assert profiler.seconds.get(key, 0.0) > 0, key
    assert profiler.seconds["msda_forward"] <= profiler.seconds["pixel_decoder"]
    assert profiler.seconds["msda_backward"] <= profiler.seconds["backward"]
    assert profiler.seconds["matcher"] <= profiler.seconds["criterion"]


def test_table_shares_sum_to_the_step_and_children_are_shares_of_their_parent():
    profiler = StepProfiler(nn.Module(), torch.device("cpu"))
    profiler.steps, profiler.step_seconds = 2, 2.0
    profiler.seconds = {"backbone": 0.4, "pixel_decoder": 0.3, "msda_forward": 0.1, "decoder": 0.2,
                        "criterion": 0.25, "matcher": 0.05, "backward": 0.6, "msda_backward": 0.2, "optimizer": 0.1}
    rows = {r["part"]: r for r in profiler.table()}
    assert [r[0] for r in ROWS] == list(rows)
    assert rows["loss"]["ms_per_step"] == pytest.approx(100.0)  # criterion minus matcher, per step
    assert rows["other"]["ms_per_step"] == pytest.approx(75.0)  # 2.0 s - 1.85 s over 2 steps
    assert sum(r["share"] for r in rows.values() if r["parent"] is None) == pytest.approx(100.0, abs=0.05)
    assert rows["msda_backward"]["share"] == pytest.approx(10.0)
    lines = render_profile(list(rows.values()), 2)
    assert lines[0] == "  time per step, mean of 2 step(s) after the first:"
    assert any("of which MSDeformAttn op, backward" in line and "(33 % of backward)" in line for line in lines)


def test_no_measured_step_gives_no_table():
    assert StepProfiler(nn.Module(), torch.device("cpu")).table() == []


def test_profile_refuses_several_processes():
    result = CliRunner().invoke(smoke_command, ["--profile", "--nproc-per-node", "2"])
    assert result.exit_code == 2
    assert "--profile times the parts of one process's step" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_cli_profile_prints_the_table_and_json_carries_it():
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-m", "envdoctor", "smoke", "--profile", "--steps", "8", "--device", "cpu",
                           "--format", "json"], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    rows = data["profile"]
    assert data["profile_steps"] == 7 and [r["part"] for r in rows] == [r[0] for r in ROWS]
    assert sum(r["share"] for r in rows if r["parent"] is None) == pytest.approx(100.0, abs=0.1)
    by_part = {r["part"]: r for r in rows}
    for part in ("backbone", "pixel_decoder", "msda_forward", "decoder", "matcher", "backward", "msda_backward",
                 "optimizer"):
        assert by_part[part]["ms_per_step"] > 0, part
    proc = subprocess.run([sys.executable, "-m", "envdoctor", "smoke", "--profile", "--steps", "8", "--device", "cpu"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert proc.returncode == 0
    assert "  time per step, mean of 7 step(s) after the first:" in proc.stdout
    assert "of which MSDeformAttn op, forward" in proc.stdout
