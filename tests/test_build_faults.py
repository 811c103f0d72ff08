"""Build directories after faults (issue 12): one lock per build name, leftovers of killed builds cleaned by the
next build of that name, recovery that restores only a complete build and never a symlink."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import builder.writer
from builder.build import build
from builder.locks import BuildLockedError, build_lock, lock_path
from builder.verify import verify_build

REPO = Path(__file__).resolve().parents[1]


def _copy(build_dir: Path, dest: Path) -> Path:
    return Path(shutil.copytree(build_dir, dest, symlinks=True))


def _half_deleted(build_dir: Path, dest: Path) -> Path:
    """What an interrupted ``rmtree`` of an old build leaves: some sequences gone, the manifest still there."""
    half = _copy(build_dir, dest)
    for seq in sorted((half / "train").iterdir())[:2]:
        shutil.rmtree(seq)
    return half


def test_leftovers_of_killed_builds_are_removed_by_the_next_build_of_that_name(tiny_curriculum, tiny_builds,
                                                                              tmp_path):
    root = tmp_path / "builds"
    good = _copy(tiny_builds[1], root / "tiny_stage1")
    tmp_left = root / ".tmp-tiny_stage1-k1ll3d01"
    (tmp_left / "train").mkdir(parents=True)
    (tmp_left / "train" / "big.bin").write_bytes(b"\0" * (1 << 20))
    old_left = _half_deleted(tiny_builds[1], root / ".old-tiny_stage1-k1ll3d02")
    planted = root / ".old-tiny_stage1-link"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    planted.symlink_to(outside)
    other = root / ".tmp-tiny_stage2-a1b2c3d4"  # another name's leftover: not this build's to remove
    other.mkdir()
    stale_lock = lock_path(root, "tiny_stage1")
    stale_lock.write_text("pid 1: killed\n")  # a killed build's lock file: no process holds it

    out = build(tiny_curriculum[1], build_root=root, seed=3)
    assert out == good and verify_build(out).ok
    assert sorted(p.name for p in root.iterdir()) == sorted([good.name, other.name])
    assert not tmp_left.exists() and not old_left.exists() and not planted.is_symlink()
    assert (outside / "keep.txt").read_text() == "mine"  # the link was removed, never followed


def test_after_two_faults_recovery_restores_the_complete_copy_not_the_newest(tiny_builds, tmp_path):
    """Fault 1 cut short the deletion of an old copy; fault 2 killed a swap between its renames. The half-deleted
    copy is the newest: before the fix it was put back; now only a copy that verifies is."""
    root = tmp_path / "builds"
    root.mkdir()
    intact = _copy(tiny_builds[1], root / ".old-tiny_stage1-00000002")
    half = _half_deleted(tiny_builds[1], root / ".old-tiny_stage1-00000001")
    os.utime(intact, (time.time() - 100, time.time() - 100))
    assert not verify_build(half).ok and half.lstat().st_mtime > intact.lstat().st_mtime

    restored = builder.writer.recover_interrupted_swap(root, "tiny_stage1")
    assert restored == root / "tiny_stage1" and verify_build(restored).ok
    assert not intact.exists() and half.exists()  # the damaged copy stays until a build of the name cleans it
    assert builder.writer.clean_leftovers(root, "tiny_stage1") == [half] and not half.exists()


def test_a_planted_old_symlink_is_never_renamed_into_place(tiny_builds, tmp_path):
    root = tmp_path / "builds"
    root.mkdir()
    elsewhere = _copy(tiny_builds[1], tmp_path / "elsewhere")  # a valid build, but not one this root made
    (root / ".old-tiny_stage1-00000001").symlink_to(elsewhere)
    assert builder.writer.recover_interrupted_swap(root, "tiny_stage1") is None
    assert not (root / "tiny_stage1").exists()
    builder.writer.clean_leftovers(root, "tiny_stage1")
    assert list(root.iterdir()) == [] and verify_build(elsewhere).ok


def test_while_no_copy_verifies_none_is_deleted(tiny_builds, tmp_path):
    """With ``<name>`` missing, a damaged ``.old-*`` copy may be the only one left: kept (tmp dirs go)."""
    root = tmp_path / "builds"
    root.mkdir()
    half = _half_deleted(tiny_builds[1], root / ".old-tiny_stage1-00000001")
    (root / ".tmp-tiny_stage1-00000002").mkdir()
    assert builder.writer.recover_interrupted_swap(root, "tiny_stage1") is None
    assert builder.writer.clean_leftovers(root, "tiny_stage1") == [root / ".tmp-tiny_stage1-00000002"]
    assert half.is_dir()


def test_a_second_build_of_the_same_name_fails_clearly_while_the_first_runs(tiny_curriculum, tmp_path):
    """Before the fix both printed "built" and the last silently won. The second fails at once (exit 2), naming
    the running build; once the first is done, building works again and no lock file is left."""
    root = tmp_path / "builds"
    with build_lock(root, "tiny_stage1"):
        with pytest.raises(BuildLockedError, match=rf"build 'tiny_stage1' is being written by another process "
                                                   rf"\(pid {os.getpid()}"):
            build(tiny_curriculum[1], build_root=root)
        other = subprocess.run([sys.executable, "-m", "builder", "build", str(tiny_curriculum[1]), "--build-root",
                                str(root), "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert other.returncode == 2 and other.stderr.strip().splitlines() == [
            line for line in other.stderr.strip().splitlines() if line.startswith("error: build 'tiny_stage1' is being")]
    assert not (root / "tiny_stage1").exists()
    build(tiny_curriculum[1], build_root=root)
    assert sorted(p.name for p in root.iterdir()) == ["tiny_stage1"]


def test_a_replay_waits_for_no_one_and_reads_a_build_being_rewritten_never(tiny_curriculum, tiny_builds, tmp_path):
    """Stage 3 replays stage 2: while another process rewrites stage 2 (holds its lock), stage 3 fails clearly."""
    root = tmp_path / "builds"
    _copy(tiny_builds[2], root / "tiny_stage2")
    with build_lock(root, "tiny_stage2"), pytest.raises(BuildLockedError, match="tiny_stage2"):
        build(tiny_curriculum[3], build_root=root)
    assert verify_build(build(tiny_curriculum[3], build_root=root)).ok
