"""`elt`'s dbt profile, derived from the worker's settings, and how a build's outcome is read and summarised."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dbt.adapters.snowflake.connections import SnowflakeCredentials

from caves_faust.elt.build import (
    PASSPHRASE_VARIABLE,
    PASSWORD_VARIABLE,
    PROFILE,
    BuildResult,
    dbt_vars,
    profile,
    run_results,
)
from caves_faust.settings import SettingsError, load_settings

ADAPTER_FIELDS = {f.name for f in dataclasses.fields(SnowflakeCredentials)}


def credentials(profiles: dict, secrets: dict[str, str]) -> SnowflakeCredentials:
    """The profile's output as dbt-snowflake reads it, its env_var() secrets resolved."""
    [output] = profiles[PROFILE]["outputs"].values()
    rendered = {k: secrets[m.group(1)] if isinstance(v, str) and (m := re.fullmatch(r"\{\{ env_var\('(\w+)'\) \}\}", v))
                else v for k, v in output.items()}
    fields = {k: v for k, v in rendered.items() if k not in ("type", "threads")}
    assert set(fields) <= ADAPTER_FIELDS, set(fields) - ADAPTER_FIELDS
    return SnowflakeCredentials.from_dict(fields)


def test_the_embedded_snowflake_profile_points_at_its_host_and_port():
    settings = load_settings({"SNOWFLAKE_PORT": "18085", "SNOWFLAKE_DATABASE": "SHOP_DB"}, dotenv=False)
    profiles, secrets = profile(settings)
    creds = credentials(profiles, secrets)
    assert (creds.account, creds.host, creds.port, creds.protocol) == ("embedded", "localhost", 18085, "http")
    assert (creds.database, creds.schema) == ("SHOP_DB", "RAW_DATA")
    assert secrets == {}


def test_a_password_reaches_dbt_only_through_its_environment():
    settings = load_settings({"SNOWFLAKE_ACCOUNT": "xy12345.eu-west-1", "SNOWFLAKE_USER": "loader",
                              "SNOWFLAKE_PASSWORD": "canary-s3cret", "SNOWFLAKE_WAREHOUSE": "ELT_WH",
                              "SNOWFLAKE_ROLE": "TRANSFORMER"}, dotenv=False)
    profiles, secrets = profile(settings)
    assert "canary-s3cret" not in json.dumps(profiles)
    assert secrets == {PASSWORD_VARIABLE: "canary-s3cret"}
    assert PASSWORD_VARIABLE.startswith("DBT_ENV_SECRET_")  # dbt scrubs these from its logs
    creds = credentials(profiles, secrets)
    assert (creds.account, creds.user, creds.password) == ("xy12345.eu-west-1", "loader", "canary-s3cret")
    assert (creds.warehouse, creds.role, creds.host) == ("ELT_WH", "TRANSFORMER", None)


def test_an_encrypted_key_pair_opens_through_dbt(tmp_path: Path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "key.p8"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(b"canary-phrase")))
    settings = load_settings({"SNOWFLAKE_ACCOUNT": "xy12345", "SNOWFLAKE_PRIVATE_KEY_FILE": str(key_file),
                              "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "canary-phrase"}, dotenv=False)
    profiles, secrets = profile(settings)
    assert "canary-phrase" not in json.dumps(profiles) and secrets == {PASSPHRASE_VARIABLE: "canary-phrase"}
    creds = credentials(profiles, secrets)
    assert creds.password is None and creds.private_key_path == str(key_file)
    # What dbt-snowflake hands the connector: the key, decrypted with the passphrase.
    der = creds.auth_args()["private_key"]
    decrypted = serialization.load_der_private_key(der, None)
    assert isinstance(decrypted, rsa.RSAPrivateKey) and decrypted.private_numbers() == key.private_numbers()


RUN_RESULTS = {"results": [
    {"unique_id": "model.caves_faust.stg_order_lines", "status": "success", "message": "SUCCESS 12"},
    {"unique_id": "test.caves_faust.accepted_values_stg_order_lines_CATEGORY__Rouge__Blanc.4c1d2e3f4a",
     "status": "fail", "message": "Got 1 result,\n configured to fail if != 0"},
    {"unique_id": "test.caves_faust.unique_stg_order_lines_EVENT_KEY.0a1b2c3d4e", "status": "pass", "message": None},
    {"unique_id": "model.caves_faust.daily_sales", "status": "skipped", "message": None},
]}


def test_a_failed_test_is_named_in_the_summary(tmp_path: Path):
    path = tmp_path / "run_results.json"
    path.write_text(json.dumps(RUN_RESULTS))
    result = BuildResult(returncode=1, seconds=21.5, nodes=run_results(path), output_tail="...")

    assert result.outcome == "failed"
    assert [t.name for t in result.failed_tests] == ["accepted_values_stg_order_lines_CATEGORY__Rouge__Blanc"]
    assert result.summary().splitlines() == [
        "elt: failed in 21.5s: 2 models, 2 tests (1 fail, 1 pass, 1 skipped, 1 success)",
        "  test accepted_values_stg_order_lines_CATEGORY__Rouge__Blanc: fail: Got 1 result, configured to fail if != 0",
    ]


def test_the_rows_the_incremental_models_wrote_are_summed_up(tmp_path: Path):
    results = {"results": [
        {"unique_id": "model.caves_faust.fct_sales", "status": "success", "message": "SUCCESS 40",
         "adapter_response": {"rows_affected": 40}},
        {"unique_id": "model.caves_faust.dim_products", "status": "success", "message": "SUCCESS 1",
         "adapter_response": {"rows_affected": 1}},  # a table, created whole: its figure is not rows
        {"unique_id": "model.caves_faust.daily_sales", "status": "success", "message": "SUCCESS 1234",
         "adapter_response": {"rows_affected": 1234}},
    ]}
    manifest = {"nodes": {
        "model.caves_faust.fct_sales": {"config": {"materialized": "incremental"}},
        "model.caves_faust.dim_products": {"config": {"materialized": "table"}},
        "model.caves_faust.daily_sales": {"config": {"materialized": "incremental"}},
    }}
    (tmp_path / "run_results.json").write_text(json.dumps(results))
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    result = BuildResult(0, 4.0, run_results(tmp_path / "run_results.json", tmp_path / "manifest.json"), "")

    assert result.rows_written == {"fct_sales": 40, "daily_sales": 1234}
    assert result.summary().splitlines()[1] == "  rows written: fct_sales 40, daily_sales 1,234"
    assert run_results(tmp_path / "run_results.json")[0].rows_affected is None  # no manifest: no figure


def test_a_build_dbt_could_not_run_shows_dbt_s_last_words(tmp_path: Path):
    result = BuildResult(returncode=2, seconds=3.0, nodes=run_results(tmp_path / "absent.json"),
                         output_tail="Database Error\n  250001: Could not connect to Snowflake backend")
    assert result.outcome == "error" and result.failed_tests == []
    assert result.summary().splitlines() == [
        "elt: error in 3.0s: nothing built", "  dbt exited with 2:",
        "Database Error", "  250001: Could not connect to Snowflake backend",
    ]


@pytest.mark.parametrize("name, value, why", [
    ("ELT_INTERVAL_SECONDS", "-5", "0 or more"), ("ELT_INTERVAL_SECONDS", "often", "a number"),
    ("SHOP_TIMEZONE", "Europe/Lutece", "IANA time zone"), ("SHOP_TIMEZONE", "", "IANA time zone"),
])
def test_a_bad_elt_setting_stops_with_its_name(name: str, value: str, why: str):
    with pytest.raises(SettingsError, match=f"{name}=.*{why}"):
        load_settings({name: value}, dotenv=False)


def test_elt_defaults():
    settings = load_settings({}, dotenv=False)
    assert (settings.elt_interval_seconds, settings.shop_timezone) == (300, "Europe/Paris")


def test_the_models_get_the_stock_locations_and_reorder_rules_from_the_settings():
    given = dbt_vars(load_settings({"STOCK_LOCATIONS": "Quai=Nantes", "STOCK_LEAD_DAYS": "10",
                                    "SHOP_TIMEZONE": "America/Martinique"}))
    assert given == {"shop_timezone": "America/Martinique", "stock_locations": {"Quai": "Nantes"},
                     "stock_reorder_min_bottles": 12, "stock_lead_days": 10}
