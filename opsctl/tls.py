"""The one TLS context every HTTPS client of this process shares."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's own TLS context (certifi's CA bundle, SSL_CERT_FILE/SSL_CERT_DIR honoured), made
    once per process: loading the bundle costs 40-60 ms of CPU, which `verify` over twenty
    environments paid twenty times in its one event loop, and each Notion client once more."""
    return httpx.create_ssl_context()
