"""ChargerS: fork an event into one charging run per matching charger (``engine/chargers.go``).

Each matching profile (tenant, activation at the event's Time, filters; Weight descending) gives a
copy of the event with ``RunID`` set to the profile's RunID and ``APIOpts.*subsys`` =
``*chargers``, then altered by AttributeS in context ``*chargers`` (or the event's
``APIOpts.*context``) using the profile's AttributeIDs: ``*none`` skips AttributeS; no IDs lets
AttributeS match by context; inline ``*constant:*req.RequestType:*none`` IDs work as IDs do.
AttributeS finding nothing leaves the run as it is; any other AttributeS error fails the call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from core.attributes import OPTS_CONTEXT, AttributeSError, AttributeService, process_runs_of
from core.errors import CGRError
from core.filters.errors import FilterError, plan_error
from core.filters.event import CGREvent, EventView
from core.filters.index import CandidateIndex
from core.filters.service import FilterService, check_filter_ids
from core.tariffplan.kinds import KIND_CHARGERS, KIND_FILTERS
from core.tariffplan.loader import Commit
from core.tariffplan.models import META_NONE, ChargerProfile, TariffPlan

RUN_ID: Final = "RunID"
META_REQ_RUN_ID: Final = "*req.RunID"
META_CHARGERS: Final = "*chargers"
OPTS_SUBSYS: Final = "*subsys"

ERR_NOT_FOUND: Final = "NOT_FOUND"
ERR_SERVER_ERROR: Final = "SERVER_ERROR"


class ChargerSError(CGRError):
    """A request ChargerS cannot answer; ``message`` is CGRateS's error text."""


@dataclass(slots=True)
class ChargerRun:
    """``ChrgSProcessEventReply``: one run of the event."""

    profile_id: str
    attribute_profiles: list[str] | None  # None when AttributeS was not asked (*none)
    altered_fields: list[str]
    event: CGREvent

    def __init__(
        self,
        profile_id: str,
        attribute_profiles: list[str] | None,
        altered_fields: list[str],
        event: CGREvent,
    ) -> None:
        # Written out: mypyc compiles it (a generated dataclass __init__ stays interpreted).
        self.profile_id = profile_id
        self.attribute_profiles = attribute_profiles
        self.altered_fields = altered_fields
        self.event = event

    def to_wire(self) -> dict[str, Any]:
        return {
            "ChargerSProfile": self.profile_id,
            "AttributeSProfiles": self.attribute_profiles,
            "AlteredFields": self.altered_fields,
            "CGREvent": self.event.to_wire(),
        }


@dataclass(slots=True)
class _Live:
    by_tenant: dict[str, CandidateIndex[ChargerProfile]] = field(default_factory=dict)


def _priority(profile: ChargerProfile) -> tuple[Decimal, str]:
    return (-profile.weight, profile.id)


class ChargerService:
    """The live charger profiles; a PlanListener of the loader."""

    def __init__(
        self, filters: FilterService, attributes: AttributeService, *, default_tenant: str
    ) -> None:
        self._filters = filters
        self._attributes = attributes
        self.default_tenant = default_tenant
        self._live = _Live()

    def prepare(self, plan: TariffPlan) -> Commit:
        problems: list[tuple[str, str]] = []
        grouped: dict[str, list[ChargerProfile]] = {}
        profile: ChargerProfile
        for key, profile in plan.others.get(KIND_CHARGERS, {}).items():
            try:
                check_filter_ids(profile.filter_ids)
            except FilterError as exc:
                problems.append((key, f"FilterIDs: {exc}"))
                continue
            grouped.setdefault(profile.tenant, []).append(profile)
        if problems:
            raise plan_error(KIND_CHARGERS, problems)
        stored = plan.others.get(KIND_FILTERS, {})
        live = _Live()
        for tenant, profiles in grouped.items():
            profiles.sort(key=_priority)
            live.by_tenant[tenant] = CandidateIndex(
                [(p, p.tenant, p.filter_ids) for p in profiles], stored
            )

        def commit() -> None:
            self._live = live

        return commit

    def chargers_for_event(self, event: CGREvent) -> list[ChargerProfile]:
        """``V1GetChargersForEvent``: the matching profiles, Weight descending."""
        index = self._live.by_tenant.get(event.tenant)
        if index is None:
            raise ChargerSError(ERR_NOT_FOUND)
        view = EventView(event.event, event.opts)
        matching: list[ChargerProfile] = []
        try:
            for profile in index.candidates(view):
                if self._filters.profile_passes(
                    event.tenant, profile.activation_interval, profile.filter_ids, view, event.time
                ):
                    matching.append(profile)
        except FilterError as exc:
            raise ChargerSError(f"{ERR_SERVER_ERROR}: {exc}") from None
        if not matching:
            raise ChargerSError(ERR_NOT_FOUND)
        return matching

    def process(self, event: CGREvent) -> list[ChargerRun]:
        """``V1ProcessEvent``: one run per matching charger; ``event`` is left as it is."""
        process_runs = process_runs_of(event.opts)
        runs: list[ChargerRun] = []
        for profile in self.chargers_for_event(event):
            run = ChargerRun(profile.id, None, [META_REQ_RUN_ID], _run_event(event, profile))
            runs.append(run)
            ids = profile.attribute_ids
            if len(ids) == 1 and ids[0] == META_NONE:
                continue  # AttributeS disabled for this run
            self._run_attributes(run, event, profile, process_runs)
        return runs

    def _run_attributes(
        self,
        run: ChargerRun,
        event: CGREvent,
        profile: ChargerProfile,
        process_runs: int | None,
    ) -> None:
        context = run.event.opts.get(OPTS_CONTEXT)
        try:
            # The run's event is this run's own copy: AttributeS alters it in place.
            reply = self._attributes.process_event(
                run.event,
                context=str(context) if context else META_CHARGERS,
                process_runs=process_runs,
                attribute_ids=profile.attribute_ids,
                owned=True,
            )
        except AttributeSError as exc:
            if exc.message == ERR_NOT_FOUND:
                # A first run that read a missing field may have altered part of it: anew.
                run.event = _run_event(event, profile)
                return
            # CGRateS wraps AttributeS's error again: "SERVER_ERROR: SERVER_ERROR: ...".
            raise ChargerSError(f"{ERR_SERVER_ERROR}: {exc.message}") from None
        run.attribute_profiles = reply.matched_profiles
        if reply.altered_fields:
            run.altered_fields.extend(reply.altered_fields)
            run.event = reply.event


def _run_event(event: CGREvent, profile: ChargerProfile) -> CGREvent:
    """The event of one charger's run: a copy with its RunID and ``*subsys`` set."""
    run_event = event.clone()
    run_event.event[RUN_ID] = profile.run_id
    run_event.opts[OPTS_SUBSYS] = META_CHARGERS
    return run_event
