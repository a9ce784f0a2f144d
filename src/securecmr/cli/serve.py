"""``securecmr serve STORE``: serve a store over HTTP (API, docs and console)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def serve_cmd(
    store: Annotated[Path, typer.Argument(help="The store directory.")],
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8470,
    tls_cert: Annotated[str | None, typer.Option("--tls-cert", help="PEM certificate (chain).")] = None,
    tls_key: Annotated[str | None, typer.Option("--tls-key", help="PEM private key.")] = None,
    insecure_http: Annotated[
        bool, typer.Option("--insecure-http", help="Allow plain HTTP on a non-loopback address.")
    ] = False,
    passphrase_file: Annotated[
        str | None,
        typer.Option(
            "--passphrase-file", help="File holding the passphrase (chmod 600); else $SECURECMR_PASSPHRASE."
        ),
    ] = None,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", help="Largest request body, MiB.")] = 32.0,
    max_image_pixels: Annotated[
        int, typer.Option("--max-image-pixels", help="Largest uploaded image.")
    ] = 40_000_000,
    max_video_seconds: Annotated[
        float, typer.Option("--max-video-seconds", help="Longest uploaded clip.")
    ] = 600.0,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Most items or ids per request.")] = 1000,
    max_k: Annotated[int, typer.Option("--max-k", help="Most results per search.")] = 1000,
    timeout: Annotated[float, typer.Option("--timeout", help="Per-request time limit, seconds.")] = 30.0,
    client_timeout: Annotated[
        float,
        typer.Option("--client-timeout", help="Seconds a client may stall while sending headers or body."),
    ] = 10.0,
    search_threads: Annotated[
        int, typer.Option("--search-threads", help="OpenMP threads per faiss search (1 suits small boxes).")
    ] = 1,
    workers: Annotated[
        int, typer.Option("--workers", help="Server processes sharing the port and the store.")
    ] = 1,
    drain_seconds: Annotated[int, typer.Option("--drain-seconds", help="Grace period on SIGTERM.")] = 30,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    no_console: Annotated[bool, typer.Option("--no-console", help="Do not serve the web console.")] = False,
) -> None:
    """Serve STORE over HTTP: the /v1 API, /docs, /console, /healthz and /readyz."""
    from ..server import Limits, serve

    limits = Limits(
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        max_image_pixels=max_image_pixels,
        max_video_seconds=max_video_seconds,
        max_batch=max_batch,
        max_k=max_k,
        request_timeout=timeout,
        body_timeout=client_timeout,
        header_timeout=client_timeout,
    )
    serve(
        store,
        host=host,
        port=port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        insecure_http=insecure_http,
        passphrase_file=passphrase_file,
        limits=limits,
        drain_seconds=drain_seconds,
        log_level=log_level,
        console=not no_console,
        search_threads=search_threads,
        workers=workers,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
