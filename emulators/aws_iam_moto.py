"""moto glue for :mod:`labdeck.emulators.aws_iam`: every request moto authorizes goes through its evaluation.

The principal of a request (an IAM user or an assumed role, with the session policy of
``AssumeRole(Policy=...)``) and its request context are read from moto's own request
object; :func:`install` puts :class:`PolicyEvaluationMixin` first in the MRO of moto's two
request classes. This depends on moto's internals, hence the pinned moto; the emulator
tests fail if the hook stops working.
"""

from __future__ import annotations

import json
import logging

from .aws_iam import UnsupportedCondition, evaluate, policy_document, request_context

log = logging.getLogger(__name__)


def _assumed_role(account_id: str, partition: str, access_key_id: str):
    from moto.sts.models import sts_backends

    for role in sts_backends[account_id][partition].assumed_roles:
        if role.access_key_id == access_key_id:
            return role
    return None


class PolicyEvaluationMixin:
    """Replaces moto's ``check_action_permitted`` with :func:`evaluate` (first in the MRO)."""

    def _principal(self) -> tuple[dict[str, str], list[dict] | None]:
        """Global principal keys, and the session's policy documents (None: no session policy)."""
        from moto.iam.access_control import AssumedRoleAccessKey
        from moto.utilities.utils import get_partition

        key = self._access_key
        partition = get_partition(self._region)
        keys = {"aws:PrincipalAccount": self.account_id}
        if isinstance(key, AssumedRoleAccessKey):
            role = _assumed_role(self.account_id, partition, key._access_key_id)
            keys["aws:PrincipalType"] = "AssumedRole"
            keys["aws:PrincipalArn"] = role.role_arn if role else ""
            keys["aws:userid"] = role.user_id if role else ""
            session = [json.loads(role.policy)] if role is not None and role.policy else None
            return keys, session
        keys["aws:PrincipalType"] = "User"
        keys["aws:PrincipalArn"] = key.arn
        keys["aws:username"] = key._owner_user_name
        return keys, None

    def check_action_permitted(self, resource: str) -> None:
        if self._action == "sts:GetCallerIdentity":  # always allowed, as on AWS
            return
        principal, session = self._principal()
        context = request_context(self._action, self._path, self._region, principal)
        try:
            identity = [policy_document(p) for p in self._access_key.collect_policies()]
            allowed = evaluate(identity, self._action, resource, context, session)
        except (UnsupportedCondition, ValueError, KeyError, TypeError) as e:
            log.warning("refusing %s on %s: cannot evaluate a policy (%s)", self._action, resource, e)
            allowed = False
        if allowed and self._is_assuming_role_operation(resource):
            allowed = self._check_role_trust_relationship(resource)
        if not allowed:
            self._raise_access_denied()


def install() -> None:
    """Make moto authorize every request through :class:`PolicyEvaluationMixin`.

    ``moto.core.authorization`` imports ``IAMRequest`` and ``S3IAMRequest`` from
    ``moto.iam.access_control`` at each request, so replacing those two names is
    enough; calling this twice changes nothing.
    """
    from moto.iam import access_control

    for name in ("IAMRequest", "S3IAMRequest"):
        cls = getattr(access_control, name)
        if not issubclass(cls, PolicyEvaluationMixin):
            setattr(access_control, name, type(name, (PolicyEvaluationMixin, cls), {"__module__": __name__}))
