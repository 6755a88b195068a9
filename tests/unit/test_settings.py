"""Settings read from the environment."""

from __future__ import annotations

from gateway.config import DEFAULT_DATABASE_URL, Settings


def test_defaults_when_nothing_is_set() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.not_found_floor_ms == 50
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert (settings.max_url_bytes, settings.max_header_bytes) == (8 * 1024, 64 * 1024)


def test_each_variable_overrides_its_setting() -> None:
    settings = Settings.from_env(
        {
            "GATEWAY_DATABASE_URL": "postgresql://gateway@db:5432/gateway",
            "GATEWAY_BASE_URL": "https://gateway.example.nhs.uk/fhir/",
            "GATEWAY_MAX_BODY_BYTES": "1024",
            "GATEWAY_MAX_URL_BYTES": "2048",
            "GATEWAY_MAX_HEADER_BYTES": "4096",
            "GATEWAY_TOKEN_LIFETIME": "60",
            "GATEWAY_LOG_LEVEL": "debug",
            "GATEWAY_DB_POOL_SIZE": "4",
            "GATEWAY_AUDIT_CHECKPOINT_SECONDS": "2.5",
            "GATEWAY_NOT_FOUND_FLOOR_MS": "120",
        }
    )
    assert settings.database_url == "postgresql://gateway@db:5432/gateway"
    assert settings.base_url == "https://gateway.example.nhs.uk/fhir"  # no trailing slash
    assert (settings.max_body_bytes, settings.token_lifetime_s, settings.db_pool_size) == (
        1024,
        60,
        4,
    )
    assert (settings.max_url_bytes, settings.max_header_bytes) == (2048, 4096)
    assert settings.log_level == "DEBUG"
    assert settings.audit_checkpoint_s == 2.5
    assert settings.not_found_floor_ms == 120
