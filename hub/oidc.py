"""labdeck's OIDC login: OAuthenticator's ``GenericOAuthenticator`` with labdeck's username rules.

Usernames from the identity provider's claim are lowercased and validated
exactly like local ones (:mod:`labdeck.hub.usernames`), so a hostile claim
cannot become a path, an S3 prefix or an object name. Configure it through the
``GenericOAuthenticator`` section (client, URLs, ``claim_groups_key``,
``manage_groups``, ``admin_groups``…), as OAuthenticator documents.
"""

from oauthenticator.generic import GenericOAuthenticator

from .auth import LabdeckUsernameMixin


class LabdeckOIDCAuthenticator(LabdeckUsernameMixin, GenericOAuthenticator):
    """GenericOAuthenticator that refuses usernames labdeck cannot use safely."""
