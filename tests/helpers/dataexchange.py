"""A file -> S3 stage -> Data Exchange config against moto and the batch-load
emulator, and the assets each revision got: shared by the load and failure suites."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.batchload import BatchLoadEmulator
from tests.fixtures.moto_s3 import MotoServer
from tests.helpers.configs import s3_stage_config, toml_value

PREFIX = "dx/"


def dx_config(tmp_path: Path, moto: MotoServer, emu: BatchLoadEmulator, bucket: str,
              source: Path, data_set: str, *, per_job: int, extra: str = "") -> Path:
    load = f"""type = "dataexchange"
endpoint_url = {toml_value(emu.endpoint_url)}
data_set_id = {toml_value(data_set)}
max_assets_per_job = {per_job}
poll_initial_s = 0.1
poll_max_s = 0.5
{extra}"""
    return s3_stage_config(tmp_path, paths=[source], bucket=bucket, prefix=PREFIX,
                           s3_endpoint=moto.endpoint_url,
                           sink="max_file_records = 1000\nwindow_files = 5", load=load)


def assets_by_revision(emu: BatchLoadEmulator, data_set: str) -> dict[str, list[str]]:
    return {rev["Id"]: sorted(a["Source"]["Key"] for a in emu.assets(data_set, rev["Id"]))
            for rev in emu.revisions(data_set)}
