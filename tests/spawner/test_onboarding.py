import os

from labdeck.spawner import onboarding


def test_default_onboarding_has_the_welcome_notebook():
    assert "Welcome.ipynb" in onboarding.plan([onboarding.default_onboarding_dir()])


def test_copy_missing_never_overwrites_and_later_dirs_override(tmp_path):
    a, b, home = tmp_path / "a", tmp_path / "b", tmp_path / "home"
    (a / "sub").mkdir(parents=True)
    b.mkdir()
    home.mkdir()
    (a / "Welcome.ipynb").write_text("from a")
    (a / "sub" / "data.csv").write_text("x")
    (a / ".hidden").write_text("no")
    (b / "Welcome.ipynb").write_text("from b")
    (home / "sub").mkdir()
    (home / "sub" / "data.csv").write_text("mine")
    copied = onboarding.copy_missing([str(a), str(b)], str(home))
    assert copied == ["Welcome.ipynb"]
    assert (home / "Welcome.ipynb").read_text() == "from b"
    assert (home / "sub" / "data.csv").read_text() == "mine"
    assert not (home / ".hidden").exists()
    assert onboarding.copy_missing([str(a), str(b)], str(home)) == []


def test_copy_missing_does_not_follow_a_symlink_out_of_home(tmp_path):
    src, home, outside = tmp_path / "src", tmp_path / "home", tmp_path / "outside"
    src.mkdir()
    home.mkdir()
    outside.mkdir()
    (src / "Welcome.ipynb").write_text("x")
    os.symlink(outside / "Welcome.ipynb", home / "Welcome.ipynb")
    assert onboarding.copy_missing([str(src)], str(home)) == []
    assert not (outside / "Welcome.ipynb").exists()


def test_pod_env_names_the_default_by_marker_and_keeps_admin_dirs():
    default = onboarding.default_onboarding_dir()
    value = onboarding.dirs_env_value([default, "/opt/org/onboarding"])
    assert value == f"{onboarding.DEFAULT_DIR_MARKER}{os.pathsep}/opt/org/onboarding"
    # the pod resolves the marker to *its own* labdeck's welcome directory
    assert onboarding.dirs_from_env(value) == [default, "/opt/org/onboarding"]
    assert onboarding.dirs_from_env(None) == [default]
    # an admin who replaced the list gets exactly their list
    assert onboarding.dirs_from_env(onboarding.dirs_env_value(["/opt/only"])) == ["/opt/only"]


def test_pod_env_refuses_a_dir_with_the_separator():
    import pytest

    with pytest.raises(ValueError, match="separates directories"):
        onboarding.dirs_env_value([f"/a{os.pathsep}b"])
