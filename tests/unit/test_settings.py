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


def test_the_fairness_limits_and_work_budget_are_read_and_zero_is_kept() -> None:
    defaults = Settings.from_env({})
    assert (defaults.client_concurrency, defaults.client_rate, defaults.client_burst) == (
        8,
        500.0,
        1000,
    )
    assert (defaults.work_budget_ms, defaults.work_budget_rows) == (30_000, 200_000)
    settings = Settings.from_env(
        {
            "GATEWAY_CLIENT_CONCURRENCY": "3",
            "GATEWAY_CLIENT_RATE": "0",  # no limit: kept, not taken for unset
            "GATEWAY_CLIENT_BURST": "7",
            "GATEWAY_TOKEN_FAILURES_BURST": "4",
            "GATEWAY_TOKEN_FAILURES_PER_MINUTE": "1.5",
            "GATEWAY_WORK_BUDGET_MS": "0",
            "GATEWAY_WORK_BUDGET_ROWS": "",  # empty: the default
        }
    )
    assert (settings.client_concurrency, settings.client_rate, settings.client_burst) == (3, 0, 7)
    assert (settings.token_failures_burst, settings.token_failures_per_minute) == (4, 1.5)
    assert (settings.work_budget_ms, settings.work_budget_rows) == (0, 200_000)
