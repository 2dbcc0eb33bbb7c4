import pytest

from tests.helpers.platform import person, session_platform

#: short enough that the first credentials expire during the test session
CREDENTIAL_TTL = 20

platform = session_platform("labdeck", extra_env={"LABDECK_CREDENTIAL_TTL": str(CREDENTIAL_TTL)})


@pytest.fixture(scope="session")
def alice(platform):
    return person(platform, "alice")


@pytest.fixture(scope="session")
def bob(platform):
    return person(platform, "bob")


@pytest.fixture(scope="session")
def alice_kernel(alice):
    alice.start_server()
    return alice.start_kernel()
