"""The composition root: builds the engine's subsystems from config and wires them to the API."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from core.accounts import AccountService
from core.actions import ActionService
from core.api import register_all
from core.attributes import AttributeSError, AttributeService
from core.cdrs.service import CONTEXT_CDRS, CdrService, SessionCosts
from core.chargers import ChargerSError, ChargerService
from core.charging import ChargingError, cgrid
from core.config import Config
from core.filters import FilterError, FilterService, destination_ids_from
from core.filters.event import CGREvent
from core.rating.service import RatingService
from core.routes import RouteService
from core.rpc import MethodRegistry, PeerLink, RpcError, RpcServer
from core.sessions.backup import SessionBackup
from core.sessions.service import SessionsConfig, SessionService
from core.storage import DataDB, StorDB, open_storage
from core.storage.cdr import Cdr
from core.tariffplan.loader import TariffPlanLoader
from core.types import parse_duration, zone

log = logging.getLogger("chargeflow.engine")

VERSION = "0.1.0"


class Engine:
    """One engine process: storage, live tariff plan, subsystems, JSON-RPC listeners."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.registry = MethodRegistry()
        self.server = RpcServer(self.registry)
        self.rating = RatingService(config.general.rounding_decimals)
        general = config.general
        self.filters = FilterService(
            destination_ids_from(lambda: self.rating.rater.destinations),
            timezone=general.default_timezone,
        )
        self.attributes = AttributeService(
            self.filters,
            default_tenant=general.default_tenant,
            rounding_decimals=general.rounding_decimals,
            timezone=general.default_timezone,
        )
        self.chargers = ChargerService(
            self.filters, self.attributes, default_tenant=general.default_tenant
        )
        self.routes = RouteService(
            self.filters, lambda: self.rating.rater, default_tenant=general.default_tenant
        )
        self.started_at = time.time()
        self._datadb: DataDB | None = None
        self._stordb: StorDB | None = None
        self._loader: TariffPlanLoader | None = None
        self._listening: list[str] = []

    # The storage handles exist once open_storage() ran; API code runs only after that.
    @property
    def datadb(self) -> DataDB:
        assert self._datadb is not None, "storage not open"
        return self._datadb

    @property
    def stordb(self) -> StorDB:
        assert self._stordb is not None, "storage not open"
        return self._stordb

    @property
    def loader(self) -> TariffPlanLoader:
        assert self._loader is not None, "storage not open"
        return self._loader

    async def open_storage(self) -> None:
        """Opens storage and restores the stored tariff plan into memory."""
        storage = self.config.storage
        data_dir: Path | None = storage.data_dir if storage.type != "memory" else None
        self._datadb, self._stordb = await open_storage(storage.type, data_dir)
        self.accounts = AccountService(
            self._datadb, lambda: self.rating.rater, lambda: self.loader.current.timings
        )
        # Routes priced by accounts: what their balances cover, as far as they can be rated.
        self.routes.account_max_usage = partial(self.accounts.max_usage, stop_where_unrated=True)
        # Action plans read their times of day (Timings.csv, *daily's attach time) in the
        # configured zone, as CGRateS reads them in the server's.
        local = zone(self.config.general.default_timezone)
        self.actions = ActionService(
            self.accounts,
            datadb=self._datadb,
            cdr_sink=self._cdrlog,
            clock=lambda: datetime.now(local),
        )
        self._loader = TariffPlanLoader(
            self._datadb,
            [self.rating, self.filters, self.attributes, self.chargers, self.routes, self.actions],
        )
        general = self.config.general
        session_costs = SessionCosts(self._datadb)
        self.cdrs = CdrService(
            self._stordb,
            self.accounts,
            lambda: self.rating.rater,
            session_costs,
            self._runs_of,
            attributes_of=self._cdr_attributes,
            default_tenant=general.default_tenant,
            default_category=general.default_category,
            default_request_type=general.default_request_type,
            timezone=zone(general.default_timezone),
        )
        sessions = self.config.sessions
        self.sessions = SessionService(
            SessionsConfig(
                max_call_duration=parse_duration(sessions.max_call_duration),
                debit_interval=parse_duration(sessions.debit_interval),
                session_ttl=parse_duration(sessions.session_ttl),
                reply_cache_ttl=parse_duration(sessions.reply_cache_ttl),
                default_request_type=general.default_request_type,
            ),
            self.accounts,
            lambda: self.rating.rater,
            self.cdrs,
            session_costs,
            self._runs_of,
            default_category=general.default_category,
            backup=SessionBackup(self._datadb),
            timezone=zone(general.default_timezone),
        )
        self.sessions.successors = self._successors
        await self._loader.restore()
        await self.actions.settle()
        await self.actions.restore_schedule()

    def _successors(self, gone: PeerLink) -> list[PeerLink]:
        """Open TCP connections from the host a closed agent connection came from: a
        restarted agent reconnects from there (SessionS asks them to cut its old calls)."""
        host = gone.peer.rpartition(":")[0]
        if not host:
            return []
        return [
            link
            for link in self.server.connections
            if not link.closed and link.peer.rpartition(":")[0] == host
        ]

    async def _runs_of(self, event: CGREvent) -> list[CGREvent]:
        """The charger runs of an event (ChargerS); the event itself when it names its run."""
        if event.event.get("RunID"):
            return [event]
        try:
            return [run.event for run in self.chargers.process(event)]
        except ChargerSError as exc:
            raise ChargingError(f"CHARGERS_ERROR:{exc.message}") from None

    async def attributes_of(self, event: CGREvent, context: str) -> tuple[CGREvent, dict[str, Any]]:
        """AttributeS for SessionS's GetAttributes: the altered event and the reply."""
        try:
            reply = self.attributes.process_event(event, context=context)
        except AttributeSError as exc:
            raise RpcError(exc.message) from None
        return reply.event, reply.to_wire()

    def event_passes(self, tenant: str, filter_ids: list[str], event: CGREvent) -> bool:
        """FilterS over an event, for the session queries (GetActiveSessions Filters)."""
        try:
            return self.filters.passes(tenant, filter_ids, event.view())
        except FilterError as exc:
            raise RpcError(f"FILTERS_ERROR:{exc}") from None

    async def _cdr_attributes(self, event: CGREvent) -> CGREvent:
        """AttributeS for CDRs (context *cdrs); no matching profile leaves the event as it is."""
        try:
            return self.attributes.process_event(event, context=CONTEXT_CDRS).event
        except AttributeSError as exc:
            if exc.message == "NOT_FOUND":
                return event
            raise ChargingError(f"ATTRIBUTES_ERROR:{exc.message}") from None

    async def _cdrlog(self, fields: dict[str, Any]) -> None:
        """*cdrlog actions: a pre-rated CDR of what the action did."""
        cdr = Cdr.from_dict(fields)
        cdr.origin_id = cdr.origin_id or uuid.uuid4().hex
        cdr.cgrid = cgrid(cdr.origin_id, cdr.origin_host)
        cdr.pre_rated = True
        await self.cdrs.store_prerated(cdr)

    async def start(self) -> None:
        await self.open_storage()
        for folder in self.config.tariffplans.load_on_start:
            report = await self.loader.load_folder(folder)
            await self.actions.settle()
            log.info("loaded %s: %s", folder, report.counts)
        self.actions.start()
        await self.sessions.restore()
        register_all(self.registry, self)
        engine = self.config.engine
        if engine.rpc_json_listen is not None:
            host, port = await self.server.start_tcp(
                engine.rpc_json_listen.host, engine.rpc_json_listen.port
            )
            self._listening.append(f"json-rpc tcp {host}:{port}")
        if engine.http_listen is not None:
            host, port = await self.server.start_http(
                engine.http_listen.host, engine.http_listen.port, engine.http_path
            )
            self._listening.append(f"http {host}:{port}{engine.http_path}")

    def listening(self) -> list[str]:
        return list(self._listening)

    async def stop(self) -> None:
        await self.server.close()
        if self._loader is not None:
            await self.sessions.close()
            await self.cdrs.session_costs.drain()
            await self.actions.close()
        if self._datadb is not None:
            await self._datadb.close()
        if self._stordb is not None:
            await self._stordb.close()
