"""A real platform (``labdeck up``) for the data UIs' server APIs: alice's and bob's servers with the S3
drive and the BigQuery panel, driven over HTTP with their own hub tokens, checked with their kernels."""

import pytest
import requests

from tests.helpers.platform import person, session_platform

platform = session_platform("labdeck-data")


@pytest.fixture(scope="session")
def alice(platform):
    return person(platform, "alice", started=True)


@pytest.fixture(scope="session")
def bob(platform):
    return person(platform, "bob", started=True)


@pytest.fixture(scope="session")
def alice_kernel(alice):
    return alice.start_kernel()


def call(client, method, route, **kw):
    """``<server>/labdeck/<route>`` with the client's token (a header, never the URL)."""
    kw.setdefault("timeout", 60)
    return requests.request(method, f"{client.server_url()}labdeck/{route}", headers=client.headers(), **kw)


def drive(client, method, path="", **kw):
    return call(client, method, f"s3/api/contents/{path}", **kw)


def kernel_ls(client, kernel, url) -> str:
    """``aws s3 ls <url>`` in the person's kernel (their own credentials): its stdout."""
    r = client.execute(
        "import subprocess\n"
        f"out = subprocess.run(['aws', 's3', 'ls', '--recursive', {url!r}], capture_output=True, text=True)\n"
        "print(out.stdout)",
        kernel,
    ).check()
    return r.stdout
