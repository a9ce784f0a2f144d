"""Keyring KDF parameters are validated on load: a tampered keyring.json gives KeyringError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _store_helpers import PASS, new_store

import securecmr
from securecmr.errors import KeyringError
from securecmr.protect._atomic import read_checked, write_checked


def _edit_kdf(root: Path, **changes: Any) -> None:
    path = root / "keyring.json"
    doc = json.loads(read_checked(path))
    for key, value in changes.items():
        if value is _DROP:
            doc["kdf"].pop(key, None)
        else:
            doc["kdf"][key] = value
    write_checked(path, json.dumps(doc).encode())  # a valid checksum: only the parameters are wrong


_DROP = object()


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"n": 20000}, "power of two"),
        ({"n": 2**40}, "outside"),
        ({"n": 2}, "outside"),
        ({"n": "32768"}, "outside"),
        ({"n": True}, "outside"),
        ({"r": 0}, "outside"),
        ({"r": 1000}, "outside"),
        ({"p": -1}, "outside"),
        ({"n": 2**22, "r": 32}, "memory"),
        ({"salt": "AAAA"}, "salt"),
        ({"salt": "not base64!"}, "salt"),
        ({"salt": 7}, "salt"),
        ({"n": _DROP}, "exactly"),
        ({"extra": 1}, "exactly"),
        ({"name": "argon9"}, "unknown kdf"),
    ],
)
def test_tampered_scrypt_parameters_raise_keyring_error(
    tmp_path: Path, changes: dict[str, Any], match: str
) -> None:
    new_store(tmp_path).close()
    _edit_kdf(tmp_path / "store", **changes)
    with pytest.raises(KeyringError, match=match) as info:
        securecmr.Store.open(tmp_path / "store", passphrase=PASS)
    assert "keyring.json" in str(info.value)


def test_kdf_entry_of_wrong_type(tmp_path: Path) -> None:
    new_store(tmp_path).close()
    path = tmp_path / "store" / "keyring.json"
    doc = json.loads(read_checked(path))
    doc["kdf"] = ["scrypt"]
    write_checked(path, json.dumps(doc).encode())
    with pytest.raises(KeyringError, match="kdf"):
        securecmr.Store.open(tmp_path / "store", passphrase=PASS)


def test_valid_parameters_still_open(tmp_path: Path) -> None:
    new_store(tmp_path).close()
    with securecmr.Store.open(tmp_path / "store", passphrase=PASS) as store:
        assert store.collections() == []
