"""Every HTTP client of a process shares one TLS context, which still verifies certificates."""

from __future__ import annotations

import ssl

from kojinbango.common.transport import http_client, tls_context


def test_clients_share_one_verifying_tls_context() -> None:
    ctx = tls_context()
    assert ctx is tls_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname is True
    assert ctx.cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded
    with http_client(timeout=1.0) as a, http_client(timeout=1.0) as b:
        pools = [c._transport._pool._ssl_context for c in (a, b)]  # type: ignore[attr-defined]
    assert pools[0] is ctx and pools[1] is ctx
