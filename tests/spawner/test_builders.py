import configparser
import shlex

from labdeck.spawner import builders


def test_server_env_local():
    env = builders.server_env(
        username="alice",
        files_dir="/home/alice/.labdeck",
        broker_url="http://127.0.0.1:9/services/broker/",
        aws_region="eu-west-1",
        s3_bucket="data",
        aws_endpoint_url="http://127.0.0.1:5000",
    )
    assert env == {
        "LABDECK_BROKER_URL": "http://127.0.0.1:9/services/broker/",
        "AWS_CONFIG_FILE": "/home/alice/.labdeck/aws_config",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "LABDECK_S3_BUCKET": "data",
        "LABDECK_S3_HOME": "s3://data/home/alice/",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
    }


def test_server_env_real_aws_has_no_endpoint_and_no_secret():
    env = builders.server_env(
        username="bob", files_dir="/etc/labdeck", broker_url="http://b/", aws_region="us-east-1", s3_bucket="d"
    )
    assert "AWS_ENDPOINT_URL" not in env
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "JUPYTERHUB_API_TOKEN"} & set(env)


def test_aws_config_quotes_the_command():
    text = builders.aws_config("us-east-1", ["/opt/my venv/bin/labdeck-credentials", "aws"])
    cp = configparser.ConfigParser()
    cp.read_string(text)
    assert cp["default"]["region"] == "us-east-1"
    assert shlex.split(cp["default"]["credential_process"]) == ["/opt/my venv/bin/labdeck-credentials", "aws"]


def test_bigquery_dataset_names_are_valid_and_distinct():
    import re

    names = ["alice", "a.b", "a_b", "a-b", "alice@example.com"]
    ds = [builders.bigquery_dataset(n) for n in names]
    assert len(set(ds)) == len(ds)
    assert all(re.fullmatch(r"[A-Za-z0-9_]{1,1024}", d) for d in ds)
    assert builders.bigquery_dataset("alice") == "user_alice"
