pytest_plugins = [
    "tests.fixtures.td",
    "tests.fixtures.kafka",
    "tests.fixtures.moto_s3",
    "tests.fixtures.batchload",
]
