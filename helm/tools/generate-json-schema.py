#!/usr/bin/env python3
"""Generate helm/labdeck/values.schema.json from values.schema.yaml.

values.schema.yaml is the source of truth and the documentation (every key has
a Markdown ``description``). Helm only needs the validating keywords, so the
JSON drops every ``description``; everything else is kept as is.

    python helm/tools/generate-json-schema.py          # write the JSON
    python helm/tools/generate-json-schema.py --check  # exit 1 if it is stale
"""

import argparse
import json
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent.parent / "labdeck"
SOURCE = CHART / "values.schema.yaml"
TARGET = CHART / "values.schema.json"


def strip_docs(node, *, in_properties=False):
    """Copy of ``node`` without ``description`` keywords (property names are kept)."""
    if isinstance(node, dict):
        return {
            k: strip_docs(v, in_properties=(k in ("properties", "$defs") and not in_properties))
            for k, v in node.items()
            if in_properties or k != "description"
        }
    if isinstance(node, list):
        return [strip_docs(v) for v in node]
    return node


def render(source: Path = SOURCE) -> str:
    schema = yaml.safe_load(source.read_text(encoding="utf-8"))
    return json.dumps(strip_docs(schema), indent=2, sort_keys=False) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON differs from the YAML")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
