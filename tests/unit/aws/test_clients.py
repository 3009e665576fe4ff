"""The AWS SDK is loaded by the first client, not when the pipeline is built."""

import subprocess
import sys

BUILD_S3_PIPELINE = r"""
import sys
from streamer.config.root import parse_config
from streamer.observability.metrics import Metrics
from streamer.pipeline.graph import Pipeline
data = {"data_dir": sys.argv[1],
        "sources": {"logs": {"type": "file", "paths": [sys.argv[1] + "/in.ndjson"]}},
        "sinks": {"st": {"type": "stage", "url": "s3://my-bucket/stage/",
                         "columns": ["t", "host"], "load": {"type": "none"}}}}
Pipeline(parse_config(data, {}), Metrics(), None)
print(sorted(m for m in ("aiobotocore", "aiohttp") if m in sys.modules))
"""


def test_an_s3_stage_is_built_without_loading_the_aws_sdk(tmp_path):
    # the SDK (~0.3 s) is loaded by the store's first client, in a thread, while the
    # pipeline already reads and encodes: building the sink must not import it
    out = subprocess.run([sys.executable, "-c", BUILD_S3_PIPELINE, str(tmp_path)],
                         capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
