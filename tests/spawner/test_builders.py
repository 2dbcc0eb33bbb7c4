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
        "LABDECK_FILES_DIR": "/home/alice/.labdeck",
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


def test_server_env_with_bigquery_names_the_metadata_endpoint_for_r():
    env = builders.server_env(
        username="alice", files_dir="/etc/labdeck", broker_url="http://b/", aws_region="us-east-1", s3_bucket="d",
        gcp_project="proj", bq_dataset="user_alice", metadata_port=8988,
    )  # fmt: skip
    assert {k: v for k, v in env.items() if "GOOGLE" in k or "GCE" in k or "METADATA" in k or "BQ" in k} == {
        "GOOGLE_CLOUD_PROJECT": "proj",
        "GOOGLE_APPLICATION_CREDENTIALS": "/etc/labdeck/gcp_credentials.json",
        "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES": "1",
        "LABDECK_BQ_DATASET": "user_alice",
        "LABDECK_METADATA_PORT": "8988",
        "GCE_METADATA_URL": "127.0.0.1:8988",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


LOCAL_ENV = {
    "LABDECK_BROKER_URL": "http://127.0.0.1:9/services/broker/",
    "LABDECK_FILES_DIR": "/h/alice/.labdeck",
    "AWS_CONFIG_FILE": "/h/alice/.labdeck/aws_config",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "LABDECK_S3_BUCKET": "data",
    "LABDECK_S3_HOME": "s3://data/home/alice/",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
    "GOOGLE_CLOUD_PROJECT": "labdeck-local",
    "GOOGLE_APPLICATION_CREDENTIALS": "/h/alice/.labdeck/gcp_credentials.json",
    "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES": "1",
    "LABDECK_BQ_DATASET": "user_alice",
    "LABDECK_METADATA_PORT": "40001",
    "GCE_METADATA_URL": "127.0.0.1:40001",
    "BIGQUERY_EMULATOR_HOST": "http://127.0.0.1:9050",
}


def test_home_files_put_the_wiring_at_each_sdks_default_path():
    import json

    files = builders.home_files(
        env=LOCAL_ENV,
        files_dir="/h/alice/.labdeck",
        broker_url="http://127.0.0.1:9/services/broker/",
        region="us-east-1",
        credential_command=["/opt/env/bin/labdeck-credentials"],
        r_env={"RETICULATE_PYTHON": "/opt/env/bin/python"},
        path_prepend="/opt/env/bin",
    )
    assert files == {
        ".aws/config": {
            "kind": "file",
            "content": "# labdeck-managed: written by labdeck at every server start; delete this line to keep your own edits\n"
            "[default]\n"
            "region = us-east-1\n"
            "credential_process = /opt/env/bin/labdeck-credentials --files-dir /h/alice/.labdeck aws\n"
            "endpoint_url = http://127.0.0.1:5000\n",
        },
        ".Renviron": {
            "kind": "block",
            "content": "# >>> labdeck-managed: rewritten at every server start; add your own lines outside this block >>>\n"
            "AWS_DEFAULT_REGION='us-east-1'\n"
            "AWS_EC2_METADATA_DISABLED='true'\n"
            "AWS_ENDPOINT_URL='http://127.0.0.1:5000'\n"
            "AWS_REGION='us-east-1'\n"
            "BIGQUERY_EMULATOR_HOST='http://127.0.0.1:9050'\n"
            "GCE_METADATA_URL='127.0.0.1:40001'\n"
            "GOOGLE_CLOUD_PROJECT='labdeck-local'\n"
            "LABDECK_BQ_DATASET='user_alice'\n"
            "LABDECK_S3_BUCKET='data'\n"
            "LABDECK_S3_HOME='s3://data/home/alice/'\n"
            "RETICULATE_PYTHON='/opt/env/bin/python'\n"
            'PATH="/opt/env/bin:${PATH}"\n'
            "# <<< labdeck-managed <<<\n",
        },
        ".config/gcloud/application_default_credentials.json": {"kind": "file", "content": files[".config/gcloud/application_default_credentials.json"]["content"]},
    }
    adc = json.loads(files[".config/gcloud/application_default_credentials.json"]["content"])
    assert adc == {
        "labdeck-managed": "written by labdeck at every server start; replace this file to use your own credentials",
        "type": "external_account",
        "audience": "//labdeck/credential-broker",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "http://127.0.0.1:9/services/broker/gcp/token",
        # a file source: google-auth runs no executable without GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES
        "credential_source": {"file": "/h/alice/.labdeck/jupyterhub-api-token", "format": {"type": "text"}},
    }
    for content in (f["content"] for f in files.values()):
        assert "secret" not in content.lower() or "labdeck-managed" in content


def test_renviron_refuses_values_r_would_expand_or_split():
    import pytest

    for bad in ["x'y", "a\nB=c", "${HOME}", "a b", 'q"']:
        with pytest.raises(ValueError, match="refusing"):
            builders.renviron_block({"LABDECK_S3_HOME": bad})
    with pytest.raises(ValueError):
        builders.renviron_block({"BAD NAME": "x"})


def test_server_files_hold_the_token_only_when_asked_and_point_the_client_at_its_dir():
    files = builders.server_files(
        region="us-east-1", credential_command=["labdeck-credentials"], broker_url="http://b/", files_dir="/etc/labdeck", api_token="tok",
    )  # fmt: skip
    assert files == {
        "aws_config": "[default]\nregion = us-east-1\ncredential_process = labdeck-credentials --files-dir /etc/labdeck aws\n",
        "broker-url": "http://b/\n",
        "jupyterhub-api-token": "tok",
    }
    assert "jupyterhub-api-token" not in builders.server_files(region="r", credential_command=["c"], broker_url="http://b/")
