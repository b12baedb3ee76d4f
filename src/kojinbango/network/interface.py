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

import asyncio
import logging
from typing import Any

from kojinbango.common.batching import MAX_BATCH, Coalescer, PerLoop, call_batched, only
from kojinbango.common.errors import BusinessError, Unauthorised
from kojinbango.common.linkage import LinkageSettings
from kojinbango.common.topology import TopologyError
from kojinbango.common.transport import RemoteError, SignedClient, Unreachable
from kojinbango.common.worker import BackgroundLoop, Every
from kojinbango.network.core import Asked, Delivery, NetworkCore

log = logging.getLogger(__name__)
PROVIDE_PATH = "/api/if/provide"
PROVIDE_BATCH_PATH = "/api/if/provide/batch"


class NetworkInterface:
    def __init__(self, core: NetworkCore, client: SignedClient, settings: LinkageSettings):
        self.core = core
        self.client = client
        self.settings = settings
        self._purge_due = Every(3600)  # hourly
        self._loop = BackgroundLoop("nws-if-retry", self._retry_pass, 0.5)
        self._providers: PerLoop[Delivery, Any] = PerLoop(self._provider_batches)

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
        return only(await self.asubmit_many(caller, [body]))

    async def asubmit_many(
        self, caller: str, bodies: list[dict[str, Any]]
    ) -> list[dict[str, Any] | BaseException]:
        """Queries that came together (``/api/if/queries/batch``), each with its own outcome: opened
        in one transaction, delivered to each provider's intermediate server in batches (those
        for a provider that is down are left pending and retried), their answers recorded together."""
        outcomes: list[dict[str, Any] | BaseException] = [BusinessError("not processed")] * len(bodies)
        asks: list[tuple[int, Asked]] = []
        for i, body in enumerate(bodies):
            try:
                self._check_tenant(caller, str(body["querier"]))
            except BusinessError as exc:
                outcomes[i] = exc
                continue
            asks.append((i, Asked(str(body["querier"]), body["request_id"], body["fugo"], body["provider"],
                                  body["affair"], body["info"])))  # fmt: skip
        deliveries: list[tuple[int, Delivery]] = []
        for (i, _), state in zip(asks, self.core.accept_many([ask for _, ask in asks]), strict=True):
            outcomes[i] = state
            if isinstance(state, BaseException):
                continue
            delivery = state.pop("_delivery", None)
            if state["status"] == "pending" and state["attempts"] == 0 and delivery is not None:
                if bodies[i].get("wait", True):
                    deliveries.append((i, delivery))
                else:
                    self.core.lease(state["exchange_id"], 0)
                    self._loop.wake()
        if not deliveries:
            return outcomes
        docs = await asyncio.gather(
            *(self._providers.get(d.receiver).submit(d) for _, d in deliveries), return_exceptions=True
        )
        answered: list[tuple[int, Delivery, Any]] = []
        for (i, d), doc in zip(deliveries, docs, strict=True):
            if isinstance(doc, (Unreachable, RemoteError)):
                self._failed(d, doc)
                outcomes[i] = self.core.result(d.payload["querier"], d.exchange_id)
            elif isinstance(doc, BaseException):
                log.error("delivering an exchange failed", exc_info=doc)
                outcomes[i] = self.core.result(d.payload["querier"], d.exchange_id)
            else:
                answered.append((i, d, doc))
        completed = self.core.complete_many([(d, doc) for _, d, doc in answered], collected=True)
        for (i, d, _), done in zip(answered, completed, strict=True):
            outcomes[i] = done if done is not None else self.core.result(d.payload["querier"], d.exchange_id)
        return outcomes

    def _provider_batches(self, receiver: str) -> Coalescer[Delivery, Any]:
        async def provide(deliveries: list[Delivery]) -> list[Any]:
            payloads = [d.payload for d in deliveries]
            return await call_batched(self.client.acall, receiver, PROVIDE_PATH, PROVIDE_BATCH_PATH, payloads)

        return Coalescer(provide, max_batch=MAX_BATCH, in_flight=self.settings.batches_in_flight)

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
        if self._purge_due.due():  # hourly: erase what is past its retention
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
