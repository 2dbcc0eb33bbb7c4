"""OIDC usernames follow the same rules as local ones."""

import pytest

from labdeck.hub.oidc import LabdeckOIDCAuthenticator


@pytest.mark.parametrize("claim, ok", [("Alice@Example.com", True), ("bob", True), ("../bob", False), ("a b", False), ("x" * 65, False)])
def test_oidc_usernames_are_normalized_and_validated(claim, ok):
    auth = LabdeckOIDCAuthenticator(client_id="x", client_secret="y", authorize_url="https://idp/a", token_url="https://idp/t", userdata_url="https://idp/u")
    name = auth.normalize_username(claim)
    assert name == name.lower()
    assert auth.validate_username(name) is ok


def test_entry_point_is_registered():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="jupyterhub.authenticators")}
    assert eps["labdeck-oidc"] == "labdeck.hub.oidc:LabdeckOIDCAuthenticator"
