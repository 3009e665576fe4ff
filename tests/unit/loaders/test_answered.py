"""An answer without what the service always answers (a captive portal's page parsed as
an empty answer) names the call and the missing field, and is retried as a connection
failure (before 2026-12-05 the load loop logged a KeyError's text: `failed ('TaskId')`)."""

import pytest

from streamer.loaders.base import NotServiceAnswer, answered


def test_a_missing_field_names_the_call_and_the_service():
    assert answered({"TaskId": "T1"}, "TaskId", "CreateBatchLoadTask", "Timestream") == "T1"
    with pytest.raises(NotServiceAnswer) as raised:
        answered({"ResponseMetadata": {"HTTPStatusCode": 200}}, "TaskId",
                 "CreateBatchLoadTask", "Timestream")
    assert str(raised.value).startswith(
        "the answer to CreateBatchLoadTask had no TaskId: not Timestream's answer?")
    assert isinstance(raised.value, ConnectionError)  # retried by the load loop
