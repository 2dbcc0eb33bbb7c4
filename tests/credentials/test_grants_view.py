"""The broker's ``grants`` reply (what the data UIs list), compared as whole dicts."""

from labdeck.credentials.grants import grants_view, resolve_grants

GRANTS = {
    "everyone": {
        "s3": [{"prefix": "shared/", "access": "ro"}],
        "bigquery": [{"dataset": "labdeck-local.demo", "access": "ro"}],
    },
    "groups": {"analysts": {"s3": [{"prefix": "shared/analysts/", "access": "rw"}],
                            "bigquery": [{"dataset": "labdeck-local.sales", "access": "rw"}]}},
    "users": {"alice": {"s3": [{"prefix": "home/alice/", "access": "ro"}]}},
}
DESCRIBED = {"aws": {"bucket": "labdeck-data", "home": "s3://labdeck-data/home/alice/", "region": "us-east-1"},
             "gcp": {"project": "labdeck-local", "dataset": "user_alice"}}


def test_plain_user_sees_home_rw_shared_ro_and_the_restricted_prefix_denied():
    view = grants_view("alice", resolve_grants(GRANTS, "alice", []), DESCRIBED)
    assert view == {
        "name": "alice",
        "s3": {
            "bucket": "labdeck-data",
            # the home stays read-write even if a grant names it read-only
            "prefixes": [{"prefix": "home/alice/", "access": "rw"}, {"prefix": "shared/", "access": "ro"}],
            "denied": ["shared/analysts/"],
        },
        "bigquery": {
            "project": "labdeck-local",
            "datasets": [{"dataset": "labdeck-local.user_alice", "access": "rw"},
                         {"dataset": "labdeck-local.demo", "access": "ro"}],
        },
    }


def test_group_member_sees_the_group_prefix_and_dataset():
    described = {"aws": {"bucket": "b"}, "gcp": {"project": "p", "dataset": "user_carol"}}
    view = grants_view("carol", resolve_grants(GRANTS, "carol", ["analysts"]), described)
    assert view == {
        "name": "carol",
        "s3": {"bucket": "b", "prefixes": [{"prefix": "home/carol/", "access": "rw"},
                                           {"prefix": "shared/", "access": "ro"},
                                           {"prefix": "shared/analysts/", "access": "rw"}], "denied": []},
        "bigquery": {"project": "p", "datasets": [{"dataset": "p.user_carol", "access": "rw"},
                                                  {"dataset": "labdeck-local.demo", "access": "ro"},
                                                  {"dataset": "labdeck-local.sales", "access": "rw"}]},
    }


def test_no_provider_no_section():
    assert grants_view("dave", resolve_grants(GRANTS, "dave", []), {}) == {"name": "dave"}
