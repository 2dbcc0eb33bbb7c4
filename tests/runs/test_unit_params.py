"""Run parameters and papermill-style injection (labdeck.runs.params)."""

import math

import nbformat
import pytest

from labdeck.runs import params


def test_valid_parameters():
    p = {"n": 3, "x": 1.5, "name": "a", "flag": True, "nothing": None}
    assert params.validate_parameters(p) == p
    assert params.validate_parameters(None) == {}


@pytest.mark.parametrize(
    "bad",
    [[1], "x", {"a-b": 1}, {"class": 1}, {"__import__": 1}, {"1x": 1}, {"x": [1]}, {"x": {"a": 1}},
     {"x": math.inf}, {"x": math.nan}, {"x": "y" * 20000}, {f"k{i}": i for i in range(101)}],
    ids=lambda b: repr(b)[:25],
)
def test_invalid_parameters(bad):
    with pytest.raises(params.InvalidParameters):
        params.validate_parameters(bad)


def test_cli_values_are_typed_like_papermill():
    got = params.parse_cli_parameters([["n", "3"], ["x", "2.5"], ["b", "True"], ["z", "None"], ["s", "hello"], ["inf", "inf"]])
    assert got == {"n": 3, "x": 2.5, "b": True, "z": None, "s": "hello", "inf": "inf"}


def _nb():
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("n = 1\nname = 'x'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(n, name)"),
    ]
    return nb


def test_injected_cell_follows_parameters_cell_and_input_is_untouched():
    nb = _nb()
    before = nbformat.writes(nb)
    out = params.inject_parameters(nb, {"n": 5, "name": "it's"})
    assert nbformat.writes(nb) == before
    assert [c.metadata.get("tags", []) for c in out.cells] == [[], ["parameters"], ["injected-parameters"], []]
    ns = {}
    exec(out.cells[2].source, ns)
    assert (ns["n"], ns["name"]) == (5, "it's")


def test_injection_refuses_code_in_names():
    with pytest.raises(params.InvalidParameters):
        params.inject_parameters(_nb(), {"x=1;import os;y": 1})
