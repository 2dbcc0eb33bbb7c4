"""pandas-gbq (shipped in the single-user image) against the local BigQuery, grants enforced.

Its own platform with the default credential lifetime: pydata-google-auth only
uses application-default credentials that are *valid* after a refresh, and
google-auth counts a token that expires within ~4 minutes as invalid, so the
20-second lifetime of the other integration tests would send pandas-gbq to its
browser login flow. (Real lifetimes are at least an hour.)
"""

import pytest

from tests.helpers.hubclient import HubClient
from tests.helpers.platform import start_platform

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def alice_kernel(tmp_path_factory):
    plat = start_platform(tmp_path_factory.mktemp("labdeck-gbq") / "state")
    try:
        alice = HubClient(plat.url).login("alice", plat.password)
        alice.start_server()
        alice.wait_ready(timeout=120)
        yield alice, alice.start_kernel()
    finally:
        plat.stop()


PANDAS_GBQ = """
import os, pandas as pd, pandas_gbq
project, mine = os.environ['GOOGLE_CLOUD_PROJECT'], os.environ['LABDECK_BQ_DATASET']
df = pd.DataFrame({'city': ['Oslo', 'Lima', 'Pune'], 'trips': [3, 5, 8]})
pandas_gbq.to_gbq(df, f'{mine}.trips', project_id=project, if_exists='replace', progress_bar=False)
back = pandas_gbq.read_gbq(f'SELECT city, trips FROM `{project}.{mine}.trips` ORDER BY trips', project_id=project, progress_bar_type=None)
print(back['city'].tolist(), int(back['trips'].sum()))
demo = pandas_gbq.read_gbq('SELECT COUNT(*) AS n FROM `labdeck-local.demo.customers`', project_id=project, progress_bar_type=None)
print(int(demo['n'][0]) > 0)
"""


def test_pandas_gbq_writes_and_reads_own_dataset_and_reads_demo(alice_kernel):
    """pandas-gbq (shipped in the image) against the local BigQuery, with the broker's credentials."""
    alice, kernel = alice_kernel
    r = alice.execute(PANDAS_GBQ, kernel).check()
    assert r.stdout.splitlines() == ["['Oslo', 'Lima', 'Pune'] 16", "True"]


def test_pandas_gbq_cannot_write_another_users_or_the_read_only_dataset(alice_kernel):
    alice, kernel = alice_kernel
    r = alice.execute(
        "import os, pandas as pd, pandas_gbq\n"
        "project = os.environ['GOOGLE_CLOUD_PROJECT']\n"
        "df = pd.DataFrame({'x': [1]})\n"
        "for target in ('user_bob.stolen', 'demo.vandal'):\n"
        "    try:\n"
        "        pandas_gbq.to_gbq(df, target, project_id=project, if_exists='replace', progress_bar=False); print(target, 'WRITTEN')\n"
        "    except Exception as e:\n"
        "        print(target, 'denied' if ('403' in str(e) or 'Forbidden' in str(e) or 'Access Denied' in str(e) or 'denied' in str(e).lower()) else repr(e)[:300])\n"
        "try:\n"
        "    pandas_gbq.read_gbq('SELECT * FROM `labdeck-local.user_bob.scores`', project_id=project, progress_bar_type=None); print('read WRITTEN')\n"
        "except Exception as e:\n"
        "    print('read', 'denied' if ('403' in str(e) or 'denied' in str(e).lower()) else repr(e)[:300])\n",
        kernel,
    ).check()
    assert r.stdout.splitlines() == ["user_bob.stolen denied", "demo.vandal denied", "read denied"]
