"""Config model of the file source (`type = "file"`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    PositiveInt,
)

from streamer.config.base import Model


class FileSourceConfig(Model):
    type: Literal["file"]
    # an empty pattern matches nothing: a typo, refused rather than warned about at run
    paths: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    # paths the patterns match that are not read (fnmatch on the whole path: `*`
    # crosses `/`, so "*.gz" leaves out every gzip file): rotated, compressed logs
    exclude: list[Annotated[str, Field(min_length=1)]] = []
    follow: bool = True
    read_from: Literal["beginning", "end"] = "beginning"
    max_line_bytes: PositiveInt = 1024 * 1024
    read_bytes: PositiveInt = 1024 * 1024
    poll_interval_ms: PositiveInt = 250
    glob_interval_ms: PositiveInt = 1000
    # a rotated (renamed) file is read on until it has been idle this long
    rotate_wait_s: Annotated[float, Field(ge=0)] = 5.0
    # files open at once (each holds a descriptor); beyond it files wait their
    # turn and idle followed files are closed and reopened by identity.  None:
    # 256, or half the soft RLIMIT_NOFILE when that is lower
    max_open_files: PositiveInt | None = None
