"""The key-pair JWT a real account's streaming endpoints expect: Snowflake's claims, signed with the user's key."""

from __future__ import annotations

import base64
import hashlib
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from caves_faust.snowflake.streaming_auth import KeyPair, _field


def test_the_jwt_names_the_account_user_and_public_key_fingerprint_and_verifies_with_the_public_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_der = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(public_der).digest()).decode()
    now = time.time()

    token = KeyPair("MYORG-CAVES", "CAVES_FAUST", key).jwt(now)

    claims = jwt.decode(token, key.public_key(), algorithms=["RS256"])
    assert claims["iss"] == f"MYORG-CAVES.CAVES_FAUST.{fingerprint}"
    assert claims["sub"] == "MYORG-CAVES.CAVES_FAUST"
    assert claims["iat"] == int(now) and 0 < claims["exp"] - claims["iat"] <= 3600


def test_hostname_and_token_answers_are_read_as_json_or_as_the_bare_value():
    host = "abc.ingest.snowflakecomputing.com"
    assert _field(f'{{"hostname": "{host}"}}', "hostname") == host
    assert _field(f"{host}\n", "hostname") == host
    assert _field('{"token": "t0k"}', "token") == "t0k"
