"""values.schema.yaml documents every key, forbids unknown ones, and values.schema.json is generated from it."""

import importlib.util
import json

import pytest
import yaml
from chartlib import CHART, EXAMPLES, LINT_VALUES, ROOT

SCHEMA = yaml.safe_load((CHART / "values.schema.yaml").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def _generator():
    spec = importlib.util.spec_from_file_location("generate_json_schema", ROOT / "helm/tools/generate-json-schema.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _resolve(node):
    if "$ref" in node:
        target = SCHEMA
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _walk(node, path="", seen=None):
    """Yield (path, schema node) for every property in the schema, following $refs once."""
    node = _resolve(node)
    for key, child in node.get("properties", {}).items():
        yield f"{path}.{key}".lstrip("."), child
        yield from _walk(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}.*")


def test_json_schema_in_sync_with_yaml():
    gen = _generator()
    assert (CHART / "values.schema.json").read_text() == gen.render(), (
        "values.schema.json is stale: run python helm/tools/generate-json-schema.py"
    )
    assert "description" not in json.dumps(json.loads(gen.render())["properties"]["hub"]["properties"]["baseUrl"])


def test_every_key_has_a_description():
    missing = [path for path, node in _walk(SCHEMA) if not node.get("description")]
    assert not missing, missing


def test_every_object_forbids_unknown_keys():
    loose = []
    for path, node in [("", SCHEMA), *_walk(SCHEMA)]:
        node = _resolve(node)
        if "properties" in node and node.get("additionalProperties") is not False:
            loose.append(path)
    assert not loose, loose


def _value_paths(values, path=()):
    for key, value in values.items():
        yield (*path, key)
        if isinstance(value, dict) and value:
            yield from _value_paths(value, (*path, key))


def _schema_has(path):
    node = SCHEMA
    for part in path:
        node = _resolve(node)
        props = node.get("properties", {})
        if part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        elif not props and node.get("additionalProperties") is not False:
            return True  # a free-form object (pass-through config, Kubernetes objects)
        else:
            return False
    return True


def test_every_default_value_is_in_the_schema():
    assert [p for p in _value_paths(VALUES) if not _schema_has(p)] == []


def test_every_schema_key_has_a_default():
    """Like z2jh's tools/compare-values-schema-content.py: top-level sections of the schema all appear in values.yaml."""
    removed = {p for p, n in _walk(SCHEMA) if str(n.get("description", "")).startswith("**Removed**")}
    top = {p for p, _ in _walk(SCHEMA) if p.count(".") <= 1 and "*" not in p and "[]" not in p}
    missing = sorted(p for p in top - removed if not _has_value(p))
    assert missing == []


def _has_value(path):
    node = VALUES
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("path", [*EXAMPLES, LINT_VALUES], ids=lambda p: p.name)
def test_value_files_only_use_schema_keys(path):
    values = yaml.safe_load(path.read_text())
    assert [p for p in _value_paths(values) if not _schema_has(p)] == []
