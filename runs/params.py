"""Run parameters: validation, CLI parsing and papermill-style injection.

Parameters are a JSON object of scalars whose keys are Python identifiers,
so papermill can write them as assignments in the ``injected-parameters``
cell right after the cell tagged ``parameters``.
"""

from __future__ import annotations

import keyword
import math

MAX_PARAMS = 100
MAX_STRING = 10_000


class InvalidParameters(ValueError):
    """Parameters that cannot be injected safely."""


def validate_parameters(params) -> dict:
    """Return ``params`` if it is a dict of identifier → scalar; raise :class:`InvalidParameters`."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidParameters("parameters must be a JSON object")
    if len(params) > MAX_PARAMS:
        raise InvalidParameters(f"at most {MAX_PARAMS} parameters")
    for key, value in params.items():
        if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key) or key.startswith("__"):
            raise InvalidParameters(f"parameter name {key!r} is not a Python identifier")
        if isinstance(value, bool) or value is None or isinstance(value, int):
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidParameters(f"parameter {key}: numbers must be finite")
            continue
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                raise InvalidParameters(f"parameter {key}: strings are limited to {MAX_STRING} characters")
            continue
        raise InvalidParameters(f"parameter {key}: only strings, numbers, booleans and null are allowed")
    return dict(params)


def parse_value(text: str):
    """A ``-p key value`` value, like papermill's CLI: None/True/False, int, float, else the string."""
    if text == "None":
        return None
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    for cast in (int, float):
        try:
            value = cast(text)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            return text
        return value
    return text


def parse_cli_parameters(pairs) -> dict:
    """``[["n", "3"], ["name", "x"]]`` → ``{"n": 3, "name": "x"}`` (validated)."""
    return validate_parameters({k: parse_value(v) for k, v in (pairs or [])})


def inject_parameters(nb, params: dict, kernel_name: str | None = None, language: str | None = None):
    """Return a copy of ``nb`` with an ``injected-parameters`` cell after the ``parameters`` cell.

    Exactly what papermill does at execution (this calls papermill's own
    ``parameterize_notebook``), usable for previews and tests without a kernel.
    """
    import copy

    from papermill.parameterize import parameterize_notebook

    nb = copy.deepcopy(nb)
    nb.metadata.setdefault("papermill", {})
    for cell in nb.cells:  # as papermill's load_notebook_node does
        cell.metadata.setdefault("tags", [])
    return parameterize_notebook(nb, validate_parameters(params), kernel_name=kernel_name, language=language)
