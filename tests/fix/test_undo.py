"""--undo walks back run by run, and says so clearly when it cannot."""
from __future__ import annotations

import os

from envdoctor.fix import undo
from envdoctor.fix.apply import Context, apply_plan
from envdoctor.fix.journal import Journal, load_runs
from envdoctor.fix.plan import Options, plan_fixes
from envdoctor.runner import FakeRunner
from tests.fix import reports


def _apply(env, root):
    rep = reports.report([reports.cuda_home_finding(root)])
    plan = plan_fixes(rep, Options(write_rc=True, env=env))
    return apply_plan(plan, lambda step: True, Context(env=env, runner=FakeRunner(), journal=Journal(env)))


def test_undo_walks_back_one_run_at_a_time(tmp_path):
    env = {"HOME": str(tmp_path)}
    rc = tmp_path / ".bashrc"
    rc.write_bytes(b"original")
    _apply(env, "/opt/cuda-a")
    after_a = rc.read_bytes()
    _apply(env, "/opt/cuda-b")
    assert b"/opt/cuda-b" in rc.read_bytes() and rc.read_bytes().count(b">>> envdoctor >>>") == 1
    assert undo.undo_last_run(env)[0][0] == "done"
    assert rc.read_bytes() == after_a
    assert undo.undo_last_run(env)[0][0] == "done"
    assert rc.read_bytes() == b"original"
    assert undo.undo_last_run(env) is None
    assert all(run["undone"] for run in load_runs(env))


def test_missing_backup_is_reported_and_file_kept(tmp_path):
    env = {"HOME": str(tmp_path)}
    rc = tmp_path / ".bashrc"
    rc.write_bytes(b"original\n")
    _apply(env, "/opt/cuda-a")
    written = rc.read_bytes()
    run = load_runs(env)[-1]
    os.unlink(run["entries"][0]["backup"])
    outcomes = undo.undo_last_run(env)
    assert outcomes[0][0] == "failed" and "backup" in outcomes[0][1] and "is missing" in outcomes[0][1]
    assert rc.read_bytes() == written


def test_undo_without_any_run_removes_the_block_keeping_a_backup(tmp_path):
    env = {"HOME": str(tmp_path)}
    _apply(env, "/opt/cuda-a")
    for run in load_runs(env):  # as if ~/.cache had been cleared
        os.rename(run["path"], str(tmp_path / "moved-away"))
    rc = tmp_path / ".bashrc"
    status, message = undo.remove_block_from(str(rc), env)
    assert status == "done" and rc.read_bytes() == b"" and "backup" in message
    assert undo.remove_block_from(str(rc), env)[0] == "skipped"
