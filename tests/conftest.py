import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = [
    "tests.fixtures.td",
    "tests.fixtures.kafka",
    "tests.fixtures.moto_s3",
    "tests.fixtures.batchload",
]

# Hypothesis's timing checks measure the machine, not the code: on a loaded host (xdist
# workers, other suites) drawing one input took 56 s (HealthCheck.too_slow) and an
# example may pass the 200 ms deadline; the properties checked stay as they are.
settings.register_profile("streamer", suppress_health_check=[HealthCheck.too_slow],
                          deadline=None)
settings.load_profile("streamer")

# A module's `timeout` mark guards against a hang; it is not a check. Under a loaded host
# (xdist workers, other suites) 60-150 s guards fired in fixture set-up and daemon
# start-up, so none is below pytest.ini's default.
MIN_TIMEOUT_S = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        mark = item.get_closest_marker("timeout")
        if mark is not None and mark.args and mark.args[0] < MIN_TIMEOUT_S:
            item.add_marker(pytest.mark.timeout(MIN_TIMEOUT_S), append=False)
