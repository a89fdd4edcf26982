"""The hotplug lock trusts no folder or file another user could have planted."""

import os
from pathlib import Path

import pytest

from layoutd.errors import HostUnavailable
from layoutd.live.lock import lock_folder, lock_path, vm_lock

NOBODY = 65534


def test_a_foreign_or_open_or_linked_folder_is_skipped(tmp_path: Path) -> None:
    foreign, open_to_all, linked, ours = (tmp_path / name for name in
                                          ("foreign", "open", "linked", "ours"))
    foreign.mkdir(mode=0o700)
    if os.getuid() == 0:
        os.chown(foreign, NOBODY, NOBODY)
    else:
        foreign = Path("/")  # owned by root: as foreign to this user
    open_to_all.mkdir()
    open_to_all.chmod(0o777)
    linked.symlink_to(tmp_path)
    assert lock_folder([foreign, open_to_all, linked, ours]) == ours
    assert ours.stat().st_mode & 0o777 == 0o700
    with pytest.raises(HostUnavailable, match=r"owned by uid .*writable by others.*symlink"):
        lock_folder([foreign, open_to_all, linked])


def test_a_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    folder = tmp_path / "locks"
    folder.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    lock_path("vm", folder).symlink_to(victim)
    with pytest.raises(HostUnavailable, match="symlink"), vm_lock("vm", wait=0, folder=folder):
        pass
    assert victim.read_text() == "keep me\n"
    lock_path("vm", folder).unlink()
    with vm_lock("vm", wait=0, folder=folder) as path:
        assert path.is_file() and not path.is_symlink()
