"""Start-up: migrations, seeding without overwriting, the generated key, a schema from the future."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from openesd.server.runtime import boot
from openesd.metadata.errors import SchemaTooNew
from openesd.metadata.models import Role
from tests.api.conftest import make_settings


def test_generated_key_is_stored_private_and_reused(tmp_path):
    settings = make_settings(tmp_path, api_keys=[])
    first = boot(settings)
    assert first.api_key_created and len(first.api_keys[0]) == 20
    key_file = settings.data_dir / "api_key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    second = boot(settings)
    assert not second.api_key_created and second.api_keys == first.api_keys


def test_seeding_does_not_overwrite_a_changed_default_role(tmp_path):
    settings = make_settings(tmp_path)
    runtime = boot(settings)
    with runtime.sessionmaker.begin() as session:
        session.get(Role, "byoc").permissions = ["sagemaker_endpoint:all"]
    runtime = boot(settings)
    with runtime.sessionmaker() as session:
        assert session.get(Role, "byoc").permissions == ["sagemaker_endpoint:all"]


def test_a_newer_schema_is_refused_with_the_fix_named(tmp_path):
    settings = make_settings(tmp_path)
    runtime = boot(settings)
    with runtime.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(SchemaTooNew) as raised:
        boot(settings)
    assert "9999_future" in raised.value.message
    assert "upgrade OpenESD" in raised.value.message


def test_migrations_match_the_models(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from openesd.metadata.base import Base

    runtime = boot(make_settings(tmp_path))
    with runtime.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_replicas_sharing_a_password_key_read_each_others_passwords(tmp_path):
    from cryptography.fernet import Fernet

    from openesd.errors import ConfigurationError
    from openesd.keys import PasswordCipher

    key = Fernet.generate_key().decode()
    one = PasswordCipher(tmp_path / "replica-1", key)
    other = PasswordCipher(tmp_path / "replica-2", key)
    assert other.verify("s3cret", one.encrypt("s3cret"))
    assert not (tmp_path / "replica-2" / "password.key").exists()
    with pytest.raises(ConfigurationError, match="OPENESD_PASSWORD_KEY must be 32 url-safe base64"):
        PasswordCipher(tmp_path, "not-a-key")


def test_compat_mode_warns_at_start_that_any_key_holder_can_act_as_any_user(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="openesd.server.runtime"):
        boot(make_settings(tmp_path))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "anyone holding the API key can act as any user" in warnings[0]
    assert "OPENESD_AUTH_MODE=strict" in warnings[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="openesd.server.runtime"):
        boot(make_settings(tmp_path, auth_mode="strict"))
    assert not [r for r in caplog.records if "OPENESD_AUTH_MODE" in r.getMessage()]
