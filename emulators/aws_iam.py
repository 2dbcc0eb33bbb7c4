"""IAM policy evaluation for labdeck's local AWS endpoint, as AWS does it.

moto (5.2) enforces the ``Action`` and ``Resource`` of an identity's policies,
but three things labdeck's isolation depends on are missing there:

- its condition check gets no request context, so ``Condition`` blocks never
  constrain anything (``s3:prefix`` on ``s3:ListBucket``: alice could list
  ``home/bob/``), and an ``Allow`` whose condition fails would count as an
  explicit ``Deny``;
- only ``StringEquals`` is known; every other operator is ignored;
- the session policy of ``AssumeRole(Policy=...)`` is stored and never applied.

This module evaluates instead, following the IAM policy evaluation logic for
one account with identity-based and session policies (no resource policies,
boundaries or SCPs: labdeck's emulator has none):

1. an explicit ``Deny`` in any applicable policy denies;
2. otherwise the identity's policies must allow, and, for a session with a
   session policy, the session policy must allow too (the session's
   permissions are the *intersection*);
3. otherwise the request is implicitly denied.

A statement applies when its ``Action``/``NotAction``, ``Resource``/``NotResource``
and every condition match. Conditions follow the IAM reference: operators
``String*``, ``Numeric*``, ``Date*``, ``Bool``, ``Null``, ``IpAddress``,
``Arn*``, ``BinaryEquals``, with ``...IfExists`` and the ``ForAnyValue:`` /
``ForAllValues:`` qualifiers; a key missing from the request context makes a
condition false, except negated operators (true), ``...IfExists`` (true),
``ForAllValues`` (true) and ``Null``. Policy variables (``${aws:username}``)
are replaced in ``Resource`` and condition values of version 2012-10-17
documents. An operator this module does not know refuses the request
(fail closed) instead of being ignored.

The request context (:func:`request_context`) carries the keys S3 gives
listing actions (``s3:prefix``, ``s3:delimiter``, ``s3:max-keys``, present only
when the request has that parameter, as on AWS) and the global keys the
emulator can know.

The pure part (:func:`evaluate`, :func:`request_context`) takes plain values;
:func:`install` puts it in moto's request path through the one seam moto has:
the request classes ``moto.core.authorization`` imports from
``moto.iam.access_control`` on every request.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs, urlsplit


ALLOW, DENY = "Allow", "Deny"

#: S3 actions whose request context has the listing parameters (s3:prefix, s3:delimiter, s3:max-keys)
S3_LISTING_ACTIONS = frozenset({"s3:listbucket", "s3:listbucketversions", "s3:listbucketmultipartuploads"})
#: query parameter → condition key, for :data:`S3_LISTING_ACTIONS`
S3_LISTING_KEYS = {"prefix": "s3:prefix", "delimiter": "s3:delimiter", "max-keys": "s3:max-keys"}


class UnsupportedCondition(ValueError):
    """A condition operator this evaluator does not implement (the request is refused)."""


# ------------------------------------------------------------------ matching


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _pattern(text: str, context: Mapping[str, list[str]] | None, wildcards: bool, ignore_case: bool = False) -> re.Pattern:
    """A regex for a policy string: ``*``/``?`` wildcards (if ``wildcards``) and ``${...}`` variables.

    ``context`` is None when variables are not substituted (policy version 2008-10-17).
    A variable whose key is missing (or has several values) matches nothing.
    """
    out = []
    i = 0
    while i < len(text):
        if context is not None and text.startswith("${", i) and "}" in text[i:]:
            end = text.index("}", i)
            name = text[i + 2 : end].strip()
            i = end + 1
            if name in ("*", "?", "$"):
                out.append(re.escape(name))
                continue
            values = context.get(name.lower())
            if values is None or len(values) != 1:
                return re.compile(r"(?!)")
            out.append(re.escape(values[0]))
            continue
        ch = text[i]
        i += 1
        if wildcards and ch == "*":
            out.append(".*")
        elif wildcards and ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _like(pattern: str, value: str, context, ignore_case: bool = False) -> bool:
    return _pattern(pattern, context, wildcards=True, ignore_case=ignore_case).fullmatch(value) is not None


def _equals(expected: str, value: str, context, ignore_case: bool = False) -> bool:
    return _pattern(expected, context, wildcards=False, ignore_case=ignore_case).fullmatch(value) is not None


def _number(text: str) -> float:
    return float(text)


def _date(text: str) -> datetime.datetime:
    text = text.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return datetime.datetime.fromtimestamp(float(text), datetime.timezone.utc)
    parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def _compare(parse, op):
    def check(expected, value, context):
        try:
            return op(parse(value), parse(expected))
        except (ValueError, OverflowError):
            return False

    return check


def _ip(expected, value, context) -> bool:
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(expected, strict=False)
    except ValueError:
        return False


def _binary(expected, value, context) -> bool:
    try:
        return base64.b64decode(expected) == base64.b64decode(value)
    except ValueError:
        return False


#: positive operators: (expected from the policy, actual value, context) → bool
_POSITIVE = {
    "StringEquals": lambda e, v, c: _equals(e, v, c),
    "StringEqualsIgnoreCase": lambda e, v, c: _equals(e, v, c, ignore_case=True),
    "StringLike": lambda e, v, c: _like(e, v, c),
    "NumericEquals": _compare(_number, lambda a, b: a == b),
    "NumericLessThan": _compare(_number, lambda a, b: a < b),
    "NumericLessThanEquals": _compare(_number, lambda a, b: a <= b),
    "NumericGreaterThan": _compare(_number, lambda a, b: a > b),
    "NumericGreaterThanEquals": _compare(_number, lambda a, b: a >= b),
    "DateEquals": _compare(_date, lambda a, b: a == b),
    "DateLessThan": _compare(_date, lambda a, b: a < b),
    "DateLessThanEquals": _compare(_date, lambda a, b: a <= b),
    "DateGreaterThan": _compare(_date, lambda a, b: a > b),
    "DateGreaterThanEquals": _compare(_date, lambda a, b: a >= b),
    "Bool": lambda e, v, c: e.lower() == v.lower(),
    "IpAddress": _ip,
    "ArnEquals": lambda e, v, c: _like(e, v, c),
    "ArnLike": lambda e, v, c: _like(e, v, c),
    "BinaryEquals": _binary,
}
#: negated operator → the positive one it negates
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "NotIpAddress": "IpAddress",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def condition_holds(operator: str, key: str, expected, context: Mapping[str, list[str]], variables: bool = True) -> bool:
    """One ``operator: {key: expected}`` entry of a ``Condition`` block against ``context``.

    ``context`` maps lower-case condition keys to lists of values.
    """
    qualifier, _, op = operator.rpartition(":")
    if qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise UnsupportedCondition(operator)
    expected = [_text(e) for e in _as_list(expected)]
    actual = context.get(key.lower())
    if op == "Null":
        wants_missing = [e.lower() == "true" for e in expected]
        return (actual is None) in wants_missing
    if_exists = op.endswith("IfExists")
    if if_exists:
        op = op[: -len("IfExists")]
    negated = op in _NEGATED
    check = _POSITIVE.get(_NEGATED.get(op, op))
    if check is None:
        raise UnsupportedCondition(operator)
    if actual is None:
        if if_exists or qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return negated
    vars_ = context if variables else None

    def per_value(value: str) -> bool:
        hit = any(check(e, value, vars_) for e in expected)
        return not hit if negated else hit

    results = [per_value(v) for v in actual]
    if qualifier == "ForAllValues":
        return all(results)
    if qualifier == "ForAnyValue" or not negated:
        return any(results)
    return all(results)


def conditions_hold(block: Mapping, context: Mapping[str, list[str]], variables: bool = True) -> bool:
    """A whole ``Condition`` block: every operator and every key in it must hold."""
    for operator, entries in (block or {}).items():
        for key, expected in entries.items():
            if not condition_holds(operator, key, expected, context, variables):
                return False
    return True


def _action_matches(patterns, action: str) -> bool:
    return any(_like(p, action, None, ignore_case=True) for p in _as_list(patterns))


def _resource_matches(patterns, resource: str, context, variables: bool) -> bool:
    vars_ = context if variables else None
    return any(_like(p, resource, vars_) for p in _as_list(patterns))


def statement_applies(statement: Mapping, action: str, resource: str, context: Mapping[str, list[str]], variables: bool = True) -> bool:
    """True if ``statement`` is about this action on this resource and its conditions hold."""
    if "NotAction" in statement:
        if _action_matches(statement["NotAction"], action):
            return False
    elif not _action_matches(statement.get("Action"), action):
        return False
    if "NotResource" in statement:
        if _resource_matches(statement["NotResource"], resource, context, variables):
            return False
    elif "Resource" in statement and not _resource_matches(statement["Resource"], resource, context, variables):
        return False
    return conditions_hold(statement.get("Condition"), context, variables)


def policy_decision(documents: Iterable[Mapping], action: str, resource: str, context: Mapping[str, list[str]]) -> str | None:
    """``"Deny"`` if a statement of these documents denies, else ``"Allow"`` if one allows, else None."""
    allowed = False
    for doc in documents:
        variables = doc.get("Version") == "2012-10-17"
        for statement in _as_list(doc.get("Statement")):
            if statement_applies(statement, action, resource, context, variables):
                if statement.get("Effect") == DENY:
                    return DENY
                if statement.get("Effect") == ALLOW:
                    allowed = True
    return ALLOW if allowed else None


def evaluate(
    identity_policies: Iterable[Mapping],
    action: str,
    resource: str,
    context: Mapping[str, list[str]],
    session_policies: Iterable[Mapping] | None = None,
) -> bool:
    """True if the request is allowed (see the module docstring for the logic).

    ``session_policies`` is None for an identity without a session policy (an IAM
    user, or a role session assumed without ``Policy``), else the session's policy
    documents (what it passed to ``AssumeRole``).
    """
    decisions = [policy_decision(identity_policies, action, resource, context)]
    if session_policies is not None:
        decisions.append(policy_decision(session_policies, action, resource, context))
    if DENY in decisions:
        return False
    return all(d == ALLOW for d in decisions)


# ------------------------------------------------------------------ request context


def request_context(
    action: str,
    path: str,
    region: str,
    principal: Mapping[str, str],
    now: datetime.datetime | None = None,
    secure: bool = False,
) -> dict[str, list[str]]:
    """The condition keys of one request: lower-case key → list of values.

    Parameters
    ----------
    action : str
        The IAM action, e.g. ``s3:ListBucket``.
    path : str
        The request path with its query string, as received.
    region : str
        The region of the request's signature (``aws:RequestedRegion``).
    principal : Mapping
        Global principal keys (``aws:PrincipalArn``, ``aws:username``, …) → value.
    now : datetime, optional
        The request time (``aws:CurrentTime``, ``aws:EpochTime``).
    secure : bool
        ``aws:SecureTransport``: the emulator serves plain http.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    ctx: dict[str, list[str]] = {
        "aws:currenttime": [now.strftime("%Y-%m-%dT%H:%M:%SZ")],
        "aws:epochtime": [str(int(now.timestamp()))],
        "aws:securetransport": ["true" if secure else "false"],
        "aws:requestedregion": [region],
    }
    for key, value in principal.items():
        if value:
            ctx[key.lower()] = [value]
    if action.lower() in S3_LISTING_ACTIONS:
        query = parse_qs(urlsplit(path).query, keep_blank_values=True)
        for param, key in S3_LISTING_KEYS.items():
            if param in query:
                ctx[key] = [query[param][0]]
    return ctx


def policy_document(policy) -> dict:
    """A policy document (dict) from what moto stores: a ``Policy``, a JSON string or a dict."""
    from moto.iam.models import Policy

    if isinstance(policy, Policy):
        version = next(v for v in policy.versions if v.is_default)
        policy = version.document
    elif isinstance(policy, Mapping):
        policy = policy["policy_document"]
    return json.loads(policy) if isinstance(policy, str) else dict(policy)
