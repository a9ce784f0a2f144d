"""The Python client of ``securecmr serve`` (standard library and numpy only).

``Client(url, token)`` has the calls and return types of ``Store.session(token)``::

    from securecmr.client import Client

    with Client("http://127.0.0.1:8470", token) as client:
        hits = client.collection("scans").search(text="chest x-ray", k=5)   # list[securecmr.Hit]

Refusals raise the same :mod:`securecmr.errors` classes as in process.
"""

from __future__ import annotations

from ._client import Client, RemoteCollection

__all__ = ["Client", "RemoteCollection"]
