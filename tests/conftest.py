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
