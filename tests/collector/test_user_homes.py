"""User homes per OS: /etc/passwd, the Windows registry's ProfileList, /Users/*, /root, /var/root.

The registry hive is tests/fixtures/registry/SOFTWARE, a real hive written by Samba's registry
library and chntpw (see build_software_hive.py there); the file-system trees are real folders
read through the directory source, and the reference images are read through dfvfs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collector.artifacts import SOFTWARE_HIVE, UserHome, expand_path, owner_of, user_homes
from collector.live import DirectoryFileSystem
from collector.opener import open_source
from tests.conftest import IMAGES

HIVE = Path(__file__).resolve().parents[1] / "fixtures" / "registry" / "SOFTWARE"
SID = "S-1-5-21-1004336348-1177238915-682003330-"


def _tree(root: Path, folders: list[str], hive: bytes | None = None) -> DirectoryFileSystem:
    for folder in folders:
        (root / folder.lstrip("/")).mkdir(parents=True, exist_ok=True)
    if hive is not None:
        target = root / SOFTWARE_HIVE.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(hive)
    return DirectoryFileSystem(str(root), label="root")


def test_profile_list_names_profiles_outside_users(tmp_path: Path) -> None:
    fs = _tree(tmp_path, ["/Windows/System32/config/systemprofile", "/Windows/ServiceProfiles/LocalService",
                          "/Windows/ServiceProfiles/NetworkService", "/Profiles/bob", "/Users/Jürgen",
                          "/Users/dave", "/Users/Public", "/Users/Default", "/Data/carol"],
               HIVE.read_bytes())
    warnings: list[str] = []
    homes = user_homes(fs, warnings)
    assert warnings == []
    assert homes == [
        UserHome("bob", "/Profiles/bob", SID + "1107"),  # D:\Profiles\bob; SystemRoot is D:\WINDOWS
        UserHome("Jürgen", "/Users/Jürgen", SID + "1109"),  # %SystemDrive%\Users\Jürgen (REG_SZ)
        UserHome("dave", "/Users/dave"),  # no registry profile: still a folder under /Users
        # %systemroot%\system32\config\systemprofile and the service profiles, at their real case:
        UserHome("LOCAL SERVICE", "/Windows/ServiceProfiles/LocalService", "S-1-5-19"),
        UserHome("NETWORK SERVICE", "/Windows/ServiceProfiles/NetworkService", "S-1-5-20"),
        UserHome("SYSTEM", "/Windows/System32/config/systemprofile", "S-1-5-18"),
    ]
    # C:\Data\carol is on another volume, \\fileserver\profiles\erin a share, D:\Users\ghost gone.
    assert not {"/Data/carol", "/Users/ghost"} & {h.homedir for h in homes}
    psreadline = "%%users.homedir%%/AppData/Roaming/Microsoft/Windows/PowerShell/PSReadLine/*_history.txt"
    assert "/Profiles/bob/AppData/Roaming/Microsoft/Windows/PowerShell/PSReadLine/*_history.txt" in \
        expand_path(psreadline, homes)
    assert owner_of("/Windows/System32/config/systemprofile/AppData/x", homes) == \
        ("SYSTEM", "/Windows/System32/config/systemprofile")


def test_missing_hive_falls_back_to_users_with_a_warning(tmp_path: Path) -> None:
    fs = _tree(tmp_path, ["/Windows/System32", "/Users/dave", "/Profiles/bob"])
    warnings: list[str] = []
    assert user_homes(fs, warnings) == [UserHome("dave", "/Users/dave")]
    assert warnings == [f"root: no registry hive {SOFTWARE_HIVE}; Windows profiles are taken from "
                        "/Users/* only"]


@pytest.mark.parametrize("damage", [b"", b"regf" + b"\x00" * 100, b"not a hive at all" * 600])
def test_unreadable_hive_is_a_warning(tmp_path: Path, damage: bytes) -> None:
    fs = _tree(tmp_path, ["/Users/dave", "/Profiles/bob"], damage)
    warnings: list[str] = []
    assert user_homes(fs, warnings) == [UserHome("dave", "/Users/dave")]
    assert len(warnings) == 1 and "unreadable" in warnings[0] and SOFTWARE_HIVE in warnings[0]


def test_truncated_hive_is_a_warning(tmp_path: Path) -> None:
    fs = _tree(tmp_path, ["/Users/dave", "/Profiles/bob"], HIVE.read_bytes()[:5000])
    warnings: list[str] = []
    assert user_homes(fs, warnings) == [UserHome("dave", "/Users/dave")]
    assert len(warnings) == 1 and "unreadable" in warnings[0]


def test_linux_tree_gets_no_registry_warning(tmp_path: Path) -> None:
    fs = _tree(tmp_path, ["/home/alice", "/root", "/srv/mail/bob"])
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                            "bob:x:1001:1001::/srv/mail/bob:/bin/sh\n")
    warnings: list[str] = []
    assert user_homes(fs, warnings) == [UserHome("alice", "/home/alice"), UserHome("root", "/root"),
                                        UserHome("bob", "/srv/mail/bob")]
    assert warnings == []


def test_macos_homes_and_var_root(tmp_path: Path) -> None:
    fs = _tree(tmp_path, ["/Users/erin", "/Users/Shared", "/private/var/root"])
    os.symlink("private/var", tmp_path / "var")  # as on macOS: /var -> private/var
    # Once, at the path collection can walk (it never follows the /var link).
    assert user_homes(fs) == [UserHome("erin", "/Users/erin"), UserHome("root", "/private/var/root")]


def test_macos_var_root_without_private(tmp_path: Path) -> None:
    fs = _tree(tmp_path, ["/Users/erin", "/var/root"])
    assert user_homes(fs) == [UserHome("erin", "/Users/erin"), UserHome("root", "/var/root")]


def _image_homes(image: Path) -> tuple[list[UserHome], list[str]]:
    source = open_source(str(image))
    try:
        warnings: list[str] = []
        homes = [h for fs in source.filesystems() for h in user_homes(fs, warnings)]
        return homes, warnings
    finally:
        source.close()


def test_windows_image_without_hive(tmp_path: Path) -> None:
    homes, warnings = _image_homes(IMAGES / "windows-suspect.raw")
    assert homes == [UserHome("dave", "/Users/dave")]
    assert len(warnings) == 1 and "no registry hive" in warnings[0]


def test_macos_image_users(tmp_path: Path) -> None:
    homes, warnings = _image_homes(IMAGES / "macos-suspect.E01")
    assert homes == [UserHome("erin", "/Users/erin")] and warnings == []


def test_hive_fixture_is_the_built_one() -> None:
    # build_software_hive.py is reproducible (libfaketime): the committed bytes are its output.
    import hashlib

    assert hashlib.sha256(HIVE.read_bytes()).hexdigest() == \
        "c09ee7751b1d21530b78e1aa9350266ee74c991cf0ce327b08d5536b3bf94a26"
