"""BigQuery pre-wired: the real google-cloud-bigquery client in a real kernel, scoped by grants."""

import pytest

pytestmark = pytest.mark.integration

JOIN = """
from google.cloud import bigquery
client = bigquery.Client()
df = client.query('''
    WITH recent AS (
      SELECT o.customer_id, o.amount, o.order_date FROM `labdeck-local.demo.orders` o
      WHERE o.status = 'delivered'
    )
    SELECT c.country, COUNT(*) AS orders, ROUND(SUM(r.amount), 2) AS revenue,
           MIN(EXTRACT(YEAR FROM r.order_date)) AS first_year
    FROM recent r JOIN `labdeck-local.demo.customers` c USING (customer_id)
    GROUP BY c.country ORDER BY revenue DESC
''').to_dataframe()
print(client.project, len(df), list(df.columns), int(df['orders'].sum()) > 0)
"""


def test_env_and_select_one(alice, alice_kernel):
    r = alice.execute(
        "import os\nfrom google.cloud import bigquery\n"
        "print(os.environ['GOOGLE_CLOUD_PROJECT'], os.environ['LABDECK_BQ_DATASET'])\n"
        "print(bigquery.Client().query('select 1 as x').result().to_dataframe()['x'][0])",
        alice_kernel,
    ).check()
    assert r.stdout.split() == ["labdeck-local", "user_alice", "1"]


def test_join_aggregate_over_demo_dataset(alice, alice_kernel):
    r = alice.execute(JOIN, alice_kernel).check()
    project, rows, *rest = r.stdout.split(maxsplit=2)
    assert project == "labdeck-local"
    assert int(rows) >= 5
    assert "['country', 'orders', 'revenue', 'first_year']" in r.stdout and r.stdout.strip().endswith("True")


def test_write_own_dataset_read_back_into_pandas_and_s3_still_works(alice, alice_kernel):
    r = alice.execute(
        "import os, pandas as pd, boto3\n"
        "from google.cloud import bigquery\n"
        "client = bigquery.Client()\n"
        "table = f\"{client.project}.{os.environ['LABDECK_BQ_DATASET']}.scores\"\n"
        "df = pd.DataFrame({'name': ['a', 'b', 'c'], 'score': [1.5, 2.5, 3.0]})\n"
        "client.load_table_from_dataframe(df, table, job_config=bigquery.LoadJobConfig(write_disposition='WRITE_TRUNCATE')).result()\n"
        "back = client.query(f'SELECT name, score FROM `{table}` ORDER BY score DESC').to_dataframe()\n"
        "print(back['name'].tolist(), float(back['score'].sum()))\n"
        "home = os.environ['LABDECK_S3_HOME'][5:].split('/', 1)[1]\n"
        "boto3.client('s3').put_object(Bucket='labdeck-data', Key=home + 'bq.txt', Body=b'x'); print('s3 ok')",
        alice_kernel,
    ).check()
    assert r.stdout.splitlines() == ["['c', 'b', 'a'] 7.0", "s3 ok"]


def test_other_users_dataset_is_denied(alice, alice_kernel, bob):
    bob.start_server()
    bk = bob.start_kernel()
    bob.execute(
        "from google.cloud import bigquery; import pandas as pd, os\n"
        "c = bigquery.Client(); t = f\"{c.project}.{os.environ['LABDECK_BQ_DATASET']}.private\"\n"
        "c.load_table_from_dataframe(pd.DataFrame({'secret': [42]}), t).result()",
        bk,
    ).check()
    r = alice.execute(
        "from google.cloud import bigquery\nfrom google.api_core import exceptions\n"
        "c = bigquery.Client()\n"
        "for sql in ['SELECT * FROM `labdeck-local.user_bob.private`',\n"
        "            'CREATE TABLE `labdeck-local.user_bob.evil` AS SELECT 1 AS x',\n"
        "            'CREATE TABLE `labdeck-local.demo.evil` AS SELECT 1 AS x']:\n"
        "    try:\n"
        "        c.query(sql).result(); print('ALLOWED')\n"
        "    except exceptions.Forbidden as e:\n"
        "        print('Forbidden')",
        alice_kernel,
    ).check()
    assert r.stdout.split() == ["Forbidden", "Forbidden", "Forbidden"]
    bob.stop_server()
