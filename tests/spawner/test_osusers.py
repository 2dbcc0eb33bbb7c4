"""labdeck.spawner.local.accounts: the name mapping (pure) and the account checks (root)."""

import os
import re
import shutil
import subprocess

import pytest

from labdeck.spawner.local import accounts

LINUX_NAME = re.compile(r"^[a-z_][a-z0-9_-]*$")
TRICKY = ["alice", "Alice", "alice.smith@example.com", "alice_smith", "alice-smith", "a" * 64, "a" * 63 + "b", "1bob", "bob-", "x@y", "x.y"]


def test_system_usernames_are_valid_short_deterministic_and_distinct():
    names = {}
    for hub_name in TRICKY:
        name = accounts.system_username(hub_name.lower())
        assert name == accounts.system_username(hub_name.lower())
        assert name.startswith("labdeck-") and len(name) <= accounts.MAX_LENGTH
        assert LINUX_NAME.match(name), name
        names.setdefault(name, set()).add(hub_name.lower())
    assert all(len(v) == 1 for v in names.values()), names
    assert accounts.system_username("alice") == "labdeck-alice"


def test_account_ids_have_no_supplementary_groups():
    a = accounts.Account("alice", "labdeck-alice", 1234, 1235, "/h/alice")
    assert a.ids == (1234, 1235, ())


root_only = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"), reason="needs root and useradd")


@root_only
def test_an_existing_account_that_is_not_labdecks_is_refused(tmp_path):
    hub_name = f"zz-{os.getpid()}"
    name = accounts.system_username(hub_name)
    subprocess.run(["useradd", "--no-create-home", "--comment", "someone else", name], check=True)
    try:
        with pytest.raises(accounts.OSUserError, match="not labdeck's account"):
            accounts.ensure_account(hub_name, str(tmp_path / hub_name))
    finally:
        subprocess.run(["userdel", name], check=True)


@root_only
def test_home_is_0700_owned_by_the_account_and_a_linked_home_is_refused(tmp_path):
    homes = tmp_path / "homes"
    homes.mkdir(mode=0o711)
    hub_name = f"zy-{os.getpid()}"
    account = accounts.ensure_account(hub_name, str(homes / hub_name))
    try:
        assert account.name == accounts.system_username(hub_name) and account.uid != 0
        # a home the root-run hub left behind is handed over, without following links
        (homes / hub_name).mkdir()
        (homes / hub_name / "old.txt").write_text("x")
        os.symlink("/etc/passwd", homes / hub_name / "link")
        accounts.ensure_home(account)
        st = os.stat(homes / hub_name)
        assert (st.st_uid, st.st_mode & 0o777) == (account.uid, 0o700)
        assert os.stat(homes / hub_name / "old.txt").st_uid == account.uid
        assert os.stat("/etc/passwd").st_uid == 0
        # a home that is a symlink (to somewhere else) is never chowned
        shutil.rmtree(homes / hub_name)
        os.symlink(tmp_path, homes / hub_name)
        with pytest.raises(OSError):
            accounts.ensure_home(account)
        assert os.stat(tmp_path).st_uid == 0
    finally:
        subprocess.run(["userdel", account.name], check=True)


def test_refusals_tell_the_admin_what_to_run_and_the_person_to_ask():
    moved = accounts.home_in_use("alice", "labdeck-alice", "/old state/homes/alice", "/new/homes/alice")
    assert moved.admin_message == str(moved)
    assert "mv '/old state/homes/alice' /new/homes/alice && usermod --home /new/homes/alice labdeck-alice" in moved.admin_message
    assert "usermod --home /new/homes/alice labdeck-alice" in moved.admin_message.rsplit("from scratch", 1)[1]
    assert "/old" not in moved.person_message and "admin" in moved.person_message
    foreign = accounts.foreign_account("alice", "labdeck-alice", "someone else", False, "/new/homes/alice")
    assert "userdel labdeck-alice" in foreign.admin_message
    assert "usermod --comment 'labdeck user alice' --home /new/homes/alice labdeck-alice" in foreign.admin_message
    assert "labdeck-alice" in foreign.person_message and "someone else" not in foreign.person_message


@root_only
def test_an_account_whose_old_home_is_gone_is_rehomed_and_one_whose_old_home_holds_files_is_refused(tmp_path):
    old, new, newer = (tmp_path / d / "homes" for d in ("old", "new", "newer"))
    for homes in (old, new, newer):
        homes.mkdir(parents=True, mode=0o711)
    hub_name = f"zr-{os.getpid()}"
    name = accounts.system_username(hub_name)
    account = accounts.ensure_account(hub_name, str(old / hub_name))
    try:
        accounts.ensure_home(account)
        (old / hub_name / "notes.txt").write_text("mine")
        # the state directory was recreated elsewhere while the old home still holds files: refused, nothing changed
        with pytest.raises(accounts.AccountRefused) as refused:
            accounts.ensure_account(hub_name, str(new / hub_name))
        assert f"usermod --home {new / hub_name} {name}" in str(refused.value)
        assert pwd_home(name) == str(old / hub_name)
        # the old state directory is gone (moved away or deleted): re-homed, same account
        shutil.rmtree(tmp_path / "old")
        again = accounts.ensure_account(hub_name, str(new / hub_name))
        assert (again.uid, again.gid, again.home) == (account.uid, account.gid, str(new / hub_name))
        assert pwd_home(name) == str(new / hub_name)
        accounts.ensure_home(again)
        # an empty old home holds nothing to lose: re-homed too
        assert accounts.ensure_account(hub_name, str(newer / hub_name)).home == str(newer / hub_name)
    finally:
        subprocess.run(["userdel", name], check=True)


def pwd_home(name):
    import pwd

    return pwd.getpwnam(name).pw_dir
