"""Polling Harbor's replication executions: ``GET /api/v2.0/replication/executions``.

A coroutine on the event loop, apart from any scrape: each poll has a deadline
(``registry.harbor_timeout``) and a scrape only ever reads the ledger. A robot account with
read access to replication (basic auth) is enough.

Harbor's API can report an execution as ``Failed`` and, on a later poll, as ``Succeed`` (its
status is refreshed from the tasks' after the fact), so an execution is counted only once its
final status and ``end_time`` have held for two polls in a row, and never twice (its id is a
de-duplication key in the state store). The executions carry a policy id, not a destination:
each policy is read once (``GET /api/v2.0/replication/policies/{id}``) for its destination.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx

from ...collectors.health import Health
from ...metrics import contract
from ...metrics.contract import Families
from ...state import Ledger, StateError
from .replication import Replication, destination_name, final_status, last_success
from .settings import RegistrySettings

log = logging.getLogger("cachewatch.registry.harbor")

PAGE_SIZE = 100  # the newest executions; a poll every minute sees every execution end
COLLECTOR = "registry"
REASONS = ("timeout", "connection", "auth", "protocol", "state")


class HarborPoller:
    """Counts Harbor's finished replication executions into the registry source's ledger."""

    def __init__(self, settings: RegistrySettings, replication: Replication, ledger: Ledger,
                 health: Health) -> None:
        assert settings.harbor_url is not None
        self.url = settings.harbor_url.rstrip("/")
        self.settings = settings
        self.replication = replication
        self.ledger = ledger
        self.health = health
        self.target = settings.harbor_name
        self._held: dict[int, tuple[str, str]] = {}  # execution id -> (status, end) last poll
        self._destinations: dict[int, str] = {}  # policy id -> destination label
        self._task: asyncio.Task[None] | None = None
        password = settings.harbor_password.get_secret_value() \
            if settings.harbor_password else ""
        self._auth = (settings.harbor_username, password) if settings.harbor_username else None
        # its errors at 0 from the start; a Harbor that is down never holds up /readyz
        health.expect(COLLECTOR, [self.target], REASONS, gates_readiness=False)

    def add_to(self, out: Families) -> None:
        """The polls' errors so far, to a scrape (``cachewatch_collector_errors_total``)."""
        for target, reason, count in self.health.errors(COLLECTOR, [self.target]):
            out.add(contract.COLLECTOR_ERRORS,
                    {"collector": COLLECTOR, "target": target, "reason": reason}, count)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def client(self) -> httpx.AsyncClient:
        """The HTTP client of the polls: the robot account's basic auth, the poll's deadline."""
        return httpx.AsyncClient(auth=self._auth, timeout=self.settings.harbor_timeout,
                                 follow_redirects=False)

    async def _run(self) -> None:
        async with self.client() as client:
            while True:
                await self.poll(client)
                await asyncio.sleep(self.settings.harbor_poll_interval)

    async def poll(self, client: httpx.AsyncClient) -> int:
        """One poll under its deadline; returns the executions counted. A failed poll is
        counted (``cachewatch_collector_errors_total``) and logged, never raised."""
        try:
            return await asyncio.wait_for(self._poll(client), self.settings.harbor_timeout)
        except (TimeoutError, httpx.TimeoutException):
            reason = "timeout"
        except httpx.HTTPStatusError as exc:
            reason = "auth" if exc.response.status_code in (401, 403) else "protocol"
        except httpx.TransportError:
            reason = "connection"
        except (ValueError, TypeError, KeyError, AttributeError):
            reason = "protocol"
        except StateError:  # nothing stored: the same executions count on the next poll
            reason = "state"
        self.health.count_error(COLLECTOR, self.target, reason)
        log.warning("Harbor replication poll failed", extra={"reason": reason,
                                                              "harbor": self.url})
        return 0

    async def _poll(self, client: httpx.AsyncClient) -> int:
        response = await client.get(f"{self.url}/api/v2.0/replication/executions",
                                    params={"page": 1, "page_size": PAGE_SIZE, "sort": "-id"})
        response.raise_for_status()
        executions = [e for e in response.json() if isinstance(e, dict)
                      and isinstance(e.get("id"), int)]
        held, self._held = self._held, {}
        changes, successes = [], {}
        for execution in executions:
            state = (str(execution.get("status")), str(execution.get("end_time") or ""))
            if final_status(state[0]) is None or not _ended(state[1]):
                continue  # InProgress: not finished, whatever came before
            self._held[execution["id"]] = state
            if held.get(execution["id"]) != state:
                continue  # first seen so, or changed since: wait for the next poll
            destination = await self._destination(client, execution.get("policy_id"))
            change, ended = self.replication.from_api(execution, destination, self.target)
            changes.append(change)
            if ended is not None:
                pair = self.replication.labels(self.target, destination)
                successes[pair] = max(successes.get(pair, 0.0), ended)
        if not changes:
            return 0
        outcome = await self.ledger.record(changes, last_success(successes)
                                           if successes else None)
        return sum(outcome.applied)

    async def _destination(self, client: httpx.AsyncClient, policy_id: Any) -> str:
        """The destination of a policy's executions, read once per policy."""
        if not isinstance(policy_id, int):
            return "unknown"
        if policy_id not in self._destinations:
            response = await client.get(f"{self.url}/api/v2.0/replication/policies/{policy_id}")
            response.raise_for_status()
            dest = response.json().get("dest_registry") or {}
            self._destinations[policy_id] = (
                destination_name({"registry_name": dest.get("name"), "endpoint": dest.get("url")})
                if dest.get("name") not in (None, "", "Local") else urlsplit(self.url).netloc)
        return self._destinations[policy_id]


def _ended(end_time: str) -> bool:
    return bool(end_time) and not end_time.startswith("0001-")
