import json
from pathlib import Path

import nbformat
import pytest

from tests.helpers.platform import person, session_platform

platform = session_platform("labdeck-runs")


@pytest.fixture(scope="session")
def alice(platform):
    return person(platform, "alice")


@pytest.fixture(scope="session")
def bob(platform):
    return person(platform, "bob")


@pytest.fixture(scope="session")
def carol(platform):
    return person(platform, "carol")


@pytest.fixture(scope="session")
def dave(platform):
    return person(platform, "dave")


@pytest.fixture(scope="session")
def admin(platform):
    return person(platform, "admin")


def write_notebook(platform, user: str, path: str, cells, parameters: str | None = None) -> Path:
    """Put a notebook in a user's home (local mode: homes/<user>/ under the state directory)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    if parameters is not None:
        nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    target = platform.state_dir / "homes" / user / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(nbformat.writes(nb))
    return target


@pytest.fixture(scope="session")
def reader(platform):
    """boto3 S3 client with the viewer's read-only identity (GetObject on home/*)."""
    import boto3

    s = platform.settings()
    creds = platform.state_dir / "secrets" / "viewer_aws_credentials"
    import configparser

    cp = configparser.ConfigParser()
    cp.read(creds)
    return boto3.client(
        "s3",
        endpoint_url=s["aws_endpoint"],
        region_name=s["region"],
        aws_access_key_id=cp["default"]["aws_access_key_id"],
        aws_secret_access_key=cp["default"]["aws_secret_access_key"],
    )


def read_s3_json(reader, url: str) -> dict:
    bucket, key = url[5:].split("/", 1)
    return json.loads(reader.get_object(Bucket=bucket, Key=key)["Body"].read())
