"""The app factory of ``securecmr serve --workers N``: each worker process opens the store itself.

The parent passes its settings in ``$SECURECMR_SERVE_CONFIG`` (JSON: store path, limits, console,
search threads, log level and the passphrase *file* if one was given; never the passphrase, which
comes from the inherited ``$SECURECMR_PASSPHRASE`` or is read from that file again).
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["CONFIG_ENV", "make_app"]

CONFIG_ENV = "SECURECMR_SERVE_CONFIG"


def make_app() -> Any:
    import securecmr

    from ._app import create_app
    from ._limits import Limits
    from ._run import configure_logging, read_passphrase

    cfg = json.loads(os.environ[CONFIG_ENV])
    configure_logging(str(cfg["log_level"]))
    store = securecmr.Store.open(cfg["store"], passphrase=read_passphrase(cfg.get("passphrase_file")))
    try:
        return create_app(
            store,
            Limits(**cfg["limits"]),
            console=bool(cfg["console"]),
            search_threads=int(cfg["search_threads"]),
        )
    except BaseException:
        store.close()
        raise
