import pytest

from tests.helpers.platform import start_platform

#: short enough that the first credentials expire during the test session
CREDENTIAL_TTL = 20


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    state = tmp_path_factory.mktemp("labdeck") / "state"
    plat = start_platform(state, extra_env={"LABDECK_CREDENTIAL_TTL": str(CREDENTIAL_TTL)})
    try:
        yield plat
    finally:
        plat.stop()


@pytest.fixture(scope="session")
def alice(platform):
    from tests.helpers.hubclient import HubClient

    return HubClient(platform.url).login("alice", platform.password)


@pytest.fixture(scope="session")
def bob(platform):
    from tests.helpers.hubclient import HubClient

    return HubClient(platform.url).login("bob", platform.password)


@pytest.fixture(scope="session")
def alice_kernel(alice):
    alice.start_server()
    return alice.start_kernel()
