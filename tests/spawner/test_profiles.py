import pytest

from labdeck.spawner import profiles as P

PROFILES = P.normalize_profiles(
    [
        {"slug": "lab", "display_name": "JupyterLab", "default": True},
        {"slug": "r", "display_name": "R", "requires": ["r"]},
        {"slug": "gpu", "display_name": "GPU", "groups": ["ml"]},
    ]
)
SIZES = P.normalize_sizes(
    [
        {"slug": "small", "display_name": "Small", "cpu_limit": 1, "mem_limit": "2G", "default": True},
        {"slug": "huge", "display_name": "Huge", "cpu_limit": 16, "groups": ["ml"]},
    ]
)


@pytest.mark.parametrize(
    "options, groups, unavailable, expect",
    [
        ({}, set(), {}, ("lab", "small")),
        (None, set(), {}, ("lab", "small")),
        ({"profile": "lab", "size": "small"}, set(), {}, ("lab", "small")),
        ({"profile": "gpu"}, {"ml"}, {}, ("gpu", "small")),
        ({"profile": "gpu", "size": "huge"}, {"ml", "x"}, {}, ("gpu", "huge")),
        ({"profile": "r"}, set(), {}, ("r", "small")),
    ],
    ids=lambda v: str(v),
)
def test_choose_accepts(options, groups, unavailable, expect):
    c = P.choose(PROFILES, SIZES, options, groups, unavailable)
    assert (c.profile["slug"], c.size["slug"]) == expect


@pytest.mark.parametrize(
    "options, groups, unavailable, status, text",
    [
        ({"profile": "gpu"}, set(), {}, 403, "restricted to the group(s) ml"),
        ({"size": "huge"}, {"analysts"}, {}, 403, "restricted"),
        ({"profile": "nope"}, set(), {}, 400, "Unknown profile"),
        ({"profile": "lab", "image": "evil:latest"}, set(), {}, 400, "Unknown server option(s): image"),
        ({"profile": ["lab"]}, set(), {}, 400, "must be a string"),
        ({"profile": "r"}, set(), {"r": "R is not installed"}, 400, "not available here: R is not installed"),
    ],
)
def test_choose_rejects(options, groups, unavailable, status, text):
    with pytest.raises(P.OptionsError) as e:
        P.choose(PROFILES, SIZES, options, groups, unavailable)
    assert e.value.status == status
    assert text in e.value.message


def test_default_skips_unavailable_profiles():
    profiles = P.normalize_profiles([{"slug": "r", "requires": ["r"], "default": True}, {"slug": "lab"}])
    assert P.choose(profiles, [], {}, set(), {"r": "missing"}).profile["slug"] == "lab"


@pytest.mark.parametrize(
    "bad, message",
    [
        ([{"slug": "Bad Slug"}], "'slug' must match"),
        ([{"slug": "a"}, {"slug": "a"}], "duplicate slug"),
        ([{"slug": "a", "default": True}, {"slug": "b", "default": True}], "more than one default"),
        ([{"slug": "a", "imagee": "x"}], "unknown key(s) ['imagee']"),
        ([{"slug": "a", "groups": "ml"}], "'groups' must be a list"),
    ],
)
def test_bad_profile_config(bad, message):
    with pytest.raises(P.ProfileConfigError) as e:
        P.normalize_profiles(bad)
    assert message in str(e.value)


def test_form_hides_restricted_and_disables_unavailable_with_reason():
    html = P.render_form(PROFILES, SIZES, set(), {"r": "R needs <make r-kernel>"})
    assert 'value="lab" checked' in html
    assert 'value="gpu"' not in html and 'value="huge"' not in html
    assert 'value="r" disabled' in html
    assert "R needs &lt;make r-kernel&gt;" in html  # escaped
    html_ml = P.render_form(PROFILES, SIZES, {"ml"}, {})
    assert 'value="gpu"' in html_ml and 'value="huge"' in html_ml


def test_options_from_form_keeps_unknown_fields_so_they_are_rejected():
    opts = P.options_from_form({"profile": ["lab"], "size": ["small"], "_xsrf": ["x"], "image": ["evil"]})
    assert opts == {"profile": "lab", "size": "small", "image": "evil"}


@pytest.mark.parametrize("trait, value, message", [("profiles", [{"slug": "X"}], "profiles[0]"), ("sizes", [{"slug": "s", "cpu": 1}], "sizes[0]")])
def test_spawner_traits_validate_profiles_and_sizes(trait, value, message):
    from labdeck.spawner.local.spawner import LabdeckLocalProcessSpawner

    with pytest.raises(Exception) as e:
        LabdeckLocalProcessSpawner(**{trait: value})
    assert f"LabdeckSpawnerMixin.{message}" in str(e.value)
