"""broker-config/make-passwords: keeps given passwords, fills in the rest, refuses bad ones."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from runtime.mqtt_auth import PasswordFile

from tests.deploy.conftest import ACCOUNTS, CONFIG_DIR, make_credentials, read_env


def test_given_passwords_are_kept_and_missing_ones_generated(tmp_path: Path) -> None:
    credentials = make_credentials(tmp_path, "ROBOT=koala\nMQTT_PASSWORD_DRIVER='drive-me'\n")
    assert credentials.passwords["driver"] == "drive-me"
    generated = [credentials.passwords[a] for a in ACCOUNTS if a != "driver"]
    assert all(len(p) == 32 and p.isalnum() for p in generated)
    assert len(set(generated)) == len(generated)
    users = PasswordFile(credentials.password_file)
    assert sorted(users.users) == sorted(ACCOUNTS)
    assert all(users.check(a, p) for a, p in credentials.passwords.items())
    assert stat.S_IMODE(credentials.env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(credentials.password_file.stat().st_mode) == 0o644
    # A second run changes nothing in the env file (passwords stay what the services use).
    before = read_env(credentials.env_file)
    subprocess.run([str(CONFIG_DIR / "make-passwords"), "--env-file", str(credentials.env_file),
                    "--output", str(credentials.password_file)], check=True, capture_output=True)
    assert read_env(credentials.env_file) == before
    assert read_env(credentials.env_file)["ROBOT"] == "koala"


def test_a_password_that_would_need_escaping_in_a_url_is_refused(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.write_text("MQTT_PASSWORD_FIELD=p@ss:word\n")
    result = subprocess.run([str(CONFIG_DIR / "make-passwords"), "--env-file", str(env),
                             "--output", str(tmp_path / "passwd")], capture_output=True, text=True)
    assert result.returncode == 1
    assert "MQTT_PASSWORD_FIELD holds characters that need escaping" in result.stderr
    assert not (tmp_path / "passwd").exists()
