"""`streamer check`: the security defaults it shows, and its warnings about
secrets in files that group/others can read."""

from __future__ import annotations

import os
import re
from pathlib import Path

from streamer.config.root import load_config
from streamer.config.secrets import permission_warnings, secret_values
from tests.helpers import REPO, run_cli, socket_source, stage_sink, toml_keys, write_config

TD_KEY = "1234/0123456789abcdef0123456789abcdef"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_TOKEN = "FQoGZXIvYXdzEBYaDExampleSessionToken"
KAFKA_PASSWORD = "kafka-pass-123"


def minimal(tmp: Path, url: str | None = None) -> str:
    """No [api] table: the default listen address applies."""
    return (toml_keys(data_dir=f"{tmp}/data") + socket_source("net", "newline")
            + stage_sink(tmp, url=url, columns=["a"], max_file_age_s=None, fsync=None))


def td_sink(key_line: str) -> str:
    return f"""
[sinks.td]
type = "td"
database = "db_1"
table = "t_1"
{key_line}
"""


def test_check_shows_the_secure_defaults(tmp_path):
    config = write_config(tmp_path, minimal(tmp_path))
    result = run_cli("check", "-c", str(config))
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "api: 127.0.0.1:9108" in lines  # loopback unless configured otherwise
    (net,) = [line for line in lines if line.startswith("  net (socket)")]
    assert "max_connections=256" in net
    assert "idle_timeout_s=300" in net
    assert "max_frame_bytes=1048576" in net
    assert "tls=off" in net
    assert "warning" not in result.stderr


def test_no_client_turns_tls_verification_off():
    """Every HTTPS/TLS client keeps certificate and host name verification on (the
    emulators of the tests use plain http instead)."""
    insecure = re.compile(r"verify\s*=\s*False|verify_ssl\s*=\s*False|ssl\s*=\s*False|CERT_NONE"
                          r"|check_hostname\s*=\s*False|_create_unverified_context")
    found = [f"{path.relative_to(REPO)}:{n}: {line.strip()}"
             for path in sorted((REPO / "streamer").rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if insecure.search(line)]
    assert found == []


def test_check_warns_about_inline_secrets_in_a_readable_config(tmp_path):
    config = write_config(tmp_path, minimal(tmp_path) + td_sink(f'write_key = "{TD_KEY}"'))
    os.chmod(config, 0o644)
    result = run_cli("check", "-c", str(config))
    assert result.code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {config} holds secrets inline (sinks.td.write_key) and is "
                        "readable by group/others (mode 0644); chmod 600 it or use ${ENV} "
                        "references"]
    assert TD_KEY not in result.stdout + result.stderr
    assert "write_key: set (hidden)" in result.stdout

    os.chmod(config, 0o600)
    private = run_cli("check", "-c", str(config))
    assert private.code == 0 and "warning" not in private.stderr


def test_secrets_from_the_environment_are_not_inline(tmp_path):
    config = write_config(tmp_path, minimal(tmp_path) + td_sink('write_key = "${TD_KEY}"'))
    os.chmod(config, 0o644)
    assert permission_warnings(config, load_config(config, {"TD_KEY": TD_KEY})) == []
    # a default after :- is written in the file
    config.write_text(minimal(tmp_path) + td_sink('write_key = "${TD_KEY:-1/fallback}"'))
    (warning,) = permission_warnings(config, load_config(config, {}))
    assert "(sinks.td.write_key)" in warning and "1/fallback" not in warning


def test_every_inline_secret_is_named_and_none_is_printed(tmp_path):
    text = minimal(tmp_path, url="s3://bucket/p/") + f"""
[sinks.stage.s3]
access_key_id = "AKIAEXAMPLE"
secret_access_key = "{AWS_SECRET}"
session_token = "{AWS_TOKEN}"
[sources.k]
type = "kafka"
bootstrap_servers = "127.0.0.1:9092"
topics = ["t"]
group_id = "g"
security_protocol = "SASL_PLAINTEXT"
sasl_plain_username = "u"
sasl_plain_password = "{KAFKA_PASSWORD}"
"""
    config = write_config(tmp_path, text)
    os.chmod(config, 0o640)
    cfg = load_config(config)
    (warning,) = permission_warnings(config, cfg)
    assert ("holds secrets inline (sources.k.sasl_plain_password, sinks.stage.s3.access_key_id, "
            "sinks.stage.s3.secret_access_key, sinks.stage.s3.session_token)") in warning
    assert "(mode 0640)" in warning
    for secret in (AWS_SECRET, AWS_TOKEN, KAFKA_PASSWORD):
        assert secret not in warning
    assert sorted(secret_values(cfg)) == sorted([AWS_SECRET, AWS_TOKEN, KAFKA_PASSWORD])


def test_check_warns_about_a_readable_write_key_file(tmp_path):
    key_file = tmp_path / "td.key"
    key_file.write_text(TD_KEY + "\n")
    config = write_config(tmp_path, minimal(tmp_path) +
                          td_sink(f'write_key_file = "{key_file}"'))
    os.chmod(config, 0o644)  # no secret inline: the config may be readable
    os.chmod(key_file, 0o604)
    result = run_cli("check", "-c", str(config))
    assert result.code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: sinks.td.write_key_file {key_file} is readable by "
                        "group/others (mode 0604); chmod 600 it"]
    assert TD_KEY not in result.stdout + result.stderr
    assert secret_values(load_config(config)) == [TD_KEY]

    os.chmod(key_file, 0o400)
    assert permission_warnings(config, load_config(config)) == []


def test_a_data_dir_that_cannot_be_created_is_one_config_line(tmp_path):
    (tmp_path / "a-file").write_text("not a directory\n")
    text = minimal(tmp_path).replace(f'data_dir = "{tmp_path}/data"',
                                     f'data_dir = "{tmp_path}/a-file/data"')
    config = write_config(tmp_path, text)
    for command in ("check", "run"):
        result = run_cli(command, "-c", str(config), timeout=30)
        assert result.code == 2, (command, result.stderr)
        assert result.stderr.strip().splitlines() == [
            f"data_dir: cannot create {tmp_path}/a-file/data: "
            f"{tmp_path}/a-file is not a directory"], command
