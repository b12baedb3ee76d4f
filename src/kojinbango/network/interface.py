"""The IF system: the network's only door for intermediate servers, and its only caller of them.

* ``asubmit``: a query from an intermediate server for one of its tenants.  The core authorises and
  opens the exchange with a 処理通番; with ``wait`` the IF delivers it at once and returns the answer
  if the provider gives it in time (the synchronous convenience); otherwise the querier gets the
  処理通番 and the status ``pending``.
* ``collect``: 結果取得要求 — the querier's intermediate server collects the answer later.
* A retry worker delivers every pending exchange whose time has come, with backoff, so a provider
  that is down gets its queries when it is back; nothing is lost across restarts (the exchanges are
  in the database).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kojinbango.common.errors import Unauthorised
from kojinbango.common.linkage import LinkageSettings
from kojinbango.common.topology import TopologyError
from kojinbango.common.transport import RemoteError, SignedClient, Unreachable
from kojinbango.common.worker import BackgroundLoop
from kojinbango.network.core import Delivery, NetworkCore

log = logging.getLogger(__name__)
PROVIDE_PATH = "/api/if/provide"


class NetworkInterface:
    def __init__(self, core: NetworkCore, client: SignedClient, settings: LinkageSettings):
        self.core = core
        self.client = client
        self.settings = settings
        self._last_purge = 0.0
        self._loop = BackgroundLoop("nws-if-retry", self._retry_pass, 0.5)

    def _check_tenant(self, caller: str, tenant: str) -> None:
        try:
            receiver = self.settings.receiver(tenant)
        except TopologyError:
            raise Unauthorised("this organisation takes no part in information linkage") from None
        if receiver != caller:
            raise Unauthorised("this intermediate server does not serve that organisation")

    async def asubmit(self, caller: str, body: dict[str, Any]) -> dict[str, Any]:
        """A query from an intermediate server; with ``wait`` the provider is asked at once, on the
        event loop (no thread is held while it answers)."""
        state, delivery = self._open(caller, body)
        if delivery is None:
            return state
        try:
            doc = await self.client.acall(delivery.receiver, "POST", PROVIDE_PATH, delivery.payload)
        except (Unreachable, RemoteError) as exc:
            return self._undelivered(delivery, exc, state)
        return self._delivered(delivery, doc, state)

    def _open(self, caller: str, body: dict[str, Any]) -> tuple[dict[str, Any], Delivery | None]:
        """Authorise and open the exchange; the delivery to make now when the querier waits for it."""
        querier = str(body["querier"])
        self._check_tenant(caller, querier)
        state = self.core.accept(
            querier, body["request_id"], body["fugo"], body["provider"], body["affair"], body["info"]
        )
        delivery = state.pop("_delivery", None)
        if state["status"] == "pending" and state["attempts"] == 0 and delivery is not None:
            if body.get("wait", True):
                return state, delivery
            self.core.lease(state["exchange_id"], 0)
            self._loop.wake()
        return state, None

    def _delivered(self, d: Delivery, doc: Any, state: dict[str, Any]) -> dict[str, Any]:
        done = self.core.complete(d, doc, collected=True)
        return done if done is not None else self.core.result(d.payload["querier"], state["exchange_id"])

    def _undelivered(self, d: Delivery, exc: Exception, state: dict[str, Any]) -> dict[str, Any]:
        self._failed(d, exc)
        return self.core.result(d.payload["querier"], state["exchange_id"])

    def _failed(self, d: Delivery, exc: Exception) -> None:
        reason = f"{exc.status}: {exc.detail}" if isinstance(exc, RemoteError) else str(exc)
        self.core.attempt_failed(d.exchange_id, reason)

    def deliver_fugo(self, holder: str, items: list[dict[str, str]]) -> dict[str, Any]:
        """Deliver newly issued 符号 to the holder's intermediate server (the portal gets them back)."""
        kind = self.core.topology.org(holder).kind
        if kind == "portal":
            return {"delivered": len(items), "items": items}
        receiver = self.settings.receiver(holder)
        answer = self.client.call(receiver, "POST", "/api/if/fugo", {"tenant": holder, "items": items})
        return {"delivered": int(answer.get("stored", 0)), "unexpected": answer.get("unexpected", [])}

    def collect(self, caller: str, querier: str, exchange_id: str) -> dict[str, Any]:
        self._check_tenant(caller, querier)
        return self.core.result(querier, exchange_id)

    def deliver(self, exchange_id: str) -> bool:
        d = self.core.delivery(exchange_id)
        return d is not None and self._deliver(d) is not None

    def _deliver(self, d: Delivery) -> dict[str, Any] | None:
        try:
            doc = self.client.call(d.receiver, "POST", PROVIDE_PATH, d.payload)
        except (Unreachable, RemoteError) as exc:
            self._failed(d, exc)
            return None
        return self.core.complete(d, doc)

    # --- retry worker ----------------------------------------------------------------------
    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def _retry_pass(self) -> None:
        if time.monotonic() - self._last_purge > 3600:  # hourly: erase what is past its retention
            self._last_purge = time.monotonic()
            try:
                self.core.log.purge()
            except Exception:
                log.exception("purging expired provision records failed")
            try:
                self.core.purge_answers()
            except Exception:
                log.exception("erasing collected answers failed")
        self._loop.interval = 0.5  # idle; shortened below while deliveries are due
        for exchange_id in self.core.due():
            self._loop.interval = 0.2
            if self._loop.stopping:
                return
            self.deliver(exchange_id)
