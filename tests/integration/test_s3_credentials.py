"""The core of the product: a real kernel in alice's server gets IAM-scoped S3 credentials."""

import time

import pytest

from .conftest import CREDENTIAL_TTL

pytestmark = pytest.mark.integration


def test_environment_is_wired(alice, alice_kernel):
    r = alice.execute(
        "import os\n"
        "for k in ['LABDECK_S3_HOME','AWS_DEFAULT_REGION','AWS_ENDPOINT_URL','AWS_CONFIG_FILE','LABDECK_BROKER_URL']:\n"
        "    print(k, os.environ.get(k))\n"
        "print('secret-in-env', any(k in os.environ for k in ['AWS_ACCESS_KEY_ID','AWS_SECRET_ACCESS_KEY','AWS_SESSION_TOKEN']))\n"
        "print(open(os.environ['AWS_CONFIG_FILE']).read())",
        alice_kernel,
    ).check()
    assert "LABDECK_S3_HOME s3://labdeck-data/home/alice/" in r.stdout
    assert "AWS_DEFAULT_REGION us-east-1" in r.stdout
    assert "AWS_ENDPOINT_URL http://127.0.0.1:" in r.stdout
    assert "secret-in-env False" in r.stdout
    assert "credential_process" in r.stdout
    # no long-lived secret in the config file
    assert "aws_secret_access_key" not in r.stdout.lower()


def test_boto3_reads_and_writes_own_home(alice, alice_kernel):
    r = alice.execute(
        "import boto3, os\n"
        "s3 = boto3.client('s3')\n"
        "home = os.environ['LABDECK_S3_HOME']\n"
        "bucket, prefix = home[5:].split('/', 1)\n"
        "s3.put_object(Bucket=bucket, Key=prefix + 'hello.txt', Body=b'hi from alice')\n"
        "print(s3.get_object(Bucket=bucket, Key=prefix + 'hello.txt')['Body'].read().decode())\n"
        "print(len(s3.get_object(Bucket=bucket, Key='shared/demo/trips.csv')['Body'].read()) > 1000)",
        alice_kernel,
    ).check()
    assert r.stdout.split() == ["hi", "from", "alice", "True"]


def test_pandas_s3fs_and_aws_cli_work(alice, alice_kernel):
    r = alice.execute(
        "import os, subprocess, pandas as pd\n"
        "home = os.environ['LABDECK_S3_HOME']\n"
        "df = pd.read_csv('s3://labdeck-data/shared/demo/trips.csv')\n"
        "df.groupby('start_station').size().to_csv(home + 'by_station.csv')\n"
        "print(len(df), len(pd.read_csv(home + 'by_station.csv')))\n"
        "out = subprocess.run(['aws', 's3', 'ls', home], capture_output=True, text=True)\n"
        "print('cli', out.returncode, 'by_station.csv' in out.stdout, out.stderr[-300:])",
        alice_kernel,
    ).check()
    assert r.stdout.splitlines()[0] == "2000 8"
    assert r.stdout.splitlines()[1].startswith("cli 0 True")


def test_other_users_prefix_is_denied_by_iam(alice, alice_kernel):
    r = alice.execute(
        "import boto3\n"
        "from botocore.exceptions import ClientError\n"
        "s3 = boto3.client('s3')\n"
        "for op, kw in [('put_object', dict(Key='home/bob/x.txt', Body=b'x')), ('get_object', dict(Key='home/bob/x.txt')),\n"
        "               ('put_object', dict(Key='shared/evil.txt', Body=b'x'))]:\n"
        "    try:\n"
        "        getattr(s3, op)(Bucket='labdeck-data', **kw); print(op, 'ALLOWED')\n"
        "    except ClientError as e:\n"
        "        print(op, e.response['Error']['Code'])",
        alice_kernel,
    ).check()
    assert r.stdout.split() == ["put_object", "AccessDenied", "get_object", "AccessDenied", "put_object", "AccessDenied"]


def test_listing_other_prefixes_is_denied_by_iam(alice, alice_kernel):
    """s3:prefix on ListBucket: bob's home, the bucket root and a group prefix alice is not in are refused."""
    r = alice.execute(
        "import boto3, os, subprocess\n"
        "from botocore.exceptions import ClientError\n"
        "s3 = boto3.client('s3')\n"
        "home = os.environ['LABDECK_S3_HOME'][len('s3://labdeck-data/'):]\n"
        "s3.put_object(Bucket='labdeck-data', Key=home + 'listed.txt', Body=b'x')\n"
        "for name, kw in [('own', dict(Prefix=home)), ('bob', dict(Prefix='home/bob/')), ('homes', dict(Prefix='home/')),\n"
        "                 ('root', {}), ('analysts', dict(Prefix='shared/analysts/')), ('shared', dict(Prefix='shared/demo/'))]:\n"
        "    try:\n"
        "        keys = [o['Key'] for o in s3.list_objects_v2(Bucket='labdeck-data', **kw).get('Contents', [])]\n"
        "        print(name, 'listed', home + 'listed.txt' in keys if name == 'own' else len(keys))\n"
        "    except ClientError as e:\n"
        "        print(name, e.response['Error']['Code'])\n"
        "out = subprocess.run(['aws', 's3', 'ls', 's3://labdeck-data/home/bob/'], capture_output=True, text=True)\n"
        "print('cli', out.returncode != 0, 'AccessDenied' in out.stderr)",
        alice_kernel,
    ).check()
    assert r.stdout.splitlines() == [
        "own listed True",
        "bob AccessDenied",
        "homes AccessDenied",
        "root AccessDenied",
        "analysts AccessDenied",
        "shared listed 1",
        "cli True True",
    ]


def test_credentials_refresh_after_expiry(alice, alice_kernel):
    code = (
        "import boto3, os, time\n"
        "s = boto3.Session(); s3 = s.client('s3')\n"
        "home = os.environ['LABDECK_S3_HOME'][5:].split('/', 1)[1]\n"
        "s3.put_object(Bucket='labdeck-data', Key=home + 'a.txt', Body=b'1')\n"
        "k1 = s.get_credentials().get_frozen_credentials().access_key\n"
        f"time.sleep({CREDENTIAL_TTL} + 3)\n"
        "s3.put_object(Bucket='labdeck-data', Key=home + 'b.txt', Body=b'2')\n"
        "k2 = s.get_credentials().get_frozen_credentials().access_key\n"
        "print(k1 != k2, k1[:4], k2[:4])"
    )
    r = alice.execute(code, alice_kernel, timeout=CREDENTIAL_TTL + 60).check()
    assert r.stdout.split() == ["True", "ASIA", "ASIA"]
