import pytest

from labdeck.hub.usernames import MAX_LENGTH, InvalidUsername, check_username, normalize_username


@pytest.mark.parametrize("name", ["alice", "a", "bob.smith", "carol_1", "dave-x", "erin@example.com", "0day", "x" * MAX_LENGTH])
def test_valid(name):
    assert check_username(name) == name


@pytest.mark.parametrize(
    "name, reason",
    [
        ("", "empty"),
        ("../bob", "'/'"),
        ("a/b", "'/'"),
        ("a\\b", "'/'"),
        ("al ice", "spaces"),
        (" alice", "spaces"),
        ("alice\x00", "control"),
        ("bob\n", "control"),
        ("ali\tce", "control"),
        ("x" * (MAX_LENGTH + 1), "too long"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("-rf", "start with"),
        (".hidden", "start with"),
        ("Alice", "lowercase"),
        ("ålice", "lowercase"),
        ("al\u200bice", "control"),
        ("bob;rm", "lowercase"),
    ],
)
def test_invalid(name, reason):
    with pytest.raises(InvalidUsername) as e:
        check_username(name)
    assert reason in str(e.value)
    # the message never echoes the raw name (control characters, hostile text)
    if len(name) > 2:
        assert name not in str(e.value)


def test_normalize():
    assert normalize_username("Alice") == "alice"
    assert normalize_username("ＡＬＩＣＥ") == "alice"  # fullwidth, NFKC
    assert normalize_username(" Bob ") == " bob "  # whitespace is kept so it is rejected, not silently fixed
