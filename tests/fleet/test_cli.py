"""envdoctor fleet's command line, end to end in a subprocess (the fast cases)."""
import subprocess
import sys

import pytest

from tests.fleet.procs import sealed_env


def _run(args, tmp_path, **env):
    return subprocess.run([sys.executable, "-m", "envdoctor", "fleet", *args], env=sealed_env(str(tmp_path), **env),
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=60)


def test_without_a_launcher_it_says_how_to_start_it(tmp_path):
    proc = _run([], tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "\nError: not started by a distributed launcher: no RANK/WORLD_SIZE" in proc.stderr
    assert "use --nproc-per-node N to start local ranks" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_sizes_are_a_usage_error(tmp_path):
    proc = _run(["--sizes", "1M,lots"], tmp_path, RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
    assert proc.returncode == 2
    assert "Invalid value for '--sizes': 'lots' is not a size (examples: 4096, 64K, 16M, 1G)" in proc.stderr


@pytest.mark.slow
def test_rank_that_cannot_reach_rank_zero_fails_cleanly(tmp_path):
    from tests.fleet.procs import free_port

    proc = _run(["--timeout", "10"], tmp_path, RANK="1", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(free_port()))
    assert proc.returncode == 1 and proc.stdout == ""
    # Either the connection attempt gives up, or the watchdog ends it: both name the address.
    assert proc.stderr.startswith("envdoctor fleet: rank 1"), proc.stderr
    assert "rank 0's store at 127.0.0.1:" in proc.stderr
    assert "Traceback" not in proc.stderr
