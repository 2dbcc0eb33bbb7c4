"""The journey of tests/helpers/journey.py against ``make up`` (the embedded default).

The same scenario runs through the chart's own hub in tests/kube/test_chart_journey.py;
here the admin's onboarding directory comes in the chart's values format too
(``LABDECK_VALUES_FILE`` with ``singleuser.onboardingDir``), and the local AWS endpoint
enforces each person's session policy, so bob's prefix is denied to alice's kernel,
reading and listing.
"""

from __future__ import annotations

import pytest
import yaml

from tests.helpers import journey
from tests.helpers.platform import start_platform

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    work = tmp_path_factory.mktemp("labdeck-journey")
    onboarding = work / "org-onboarding"
    (onboarding / "guides").mkdir(parents=True)
    (onboarding / "guides" / "Data-access.md").write_text("# Data access at Example Corp\n")
    values = work / "values.yaml"
    values.write_text(yaml.safe_dump({"singleuser": {"onboardingDir": str(onboarding)}}))
    plat = start_platform(work / "state", extra_env={"LABDECK_VALUES_FILE": str(values)})
    try:
        yield plat
    finally:
        plat.stop()


def test_journey(platform):
    target = journey.Target(
        name="make up",
        url=platform.url,
        password=platform.password,
        home_dir=lambda user: platform.state_dir / "homes" / user,
        onboarding_files=("guides/Data-access.md",),
        enforces_isolation=True,
    )
    facts = journey.run(target)
    print(f"\njourney through make up: {facts['seconds']}")
