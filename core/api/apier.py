"""APIerSv1/APIerSv2 (and their ApierV1/ApierV2 aliases): costs, tariff-plan loads and staging."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from core.api._params import (
    ERR_EXISTS,
    ERR_NOT_FOUND,
    OK,
    as_object,
    flag,
    require,
    server_error,
    text,
)
from core.rating import RatingError
from core.rating.rater import common_line_writer
from core.rpc import TRANSPORT_INTERNAL, CallContext, MethodRegistry, RpcError
from core.tariffplan import (
    KIND_DESTINATION_RATES,
    KIND_DESTINATIONS,
    KIND_RATES,
    KIND_RATING_PLANS,
    KIND_RATING_PROFILES,
    KIND_TIMINGS,
    RATING_KINDS,
    TariffPlanError,
    from_tp_json,
    model_key,
    to_tp_json,
)
from core.tariffplan.loader import items_of
from core.tariffplan.models import (
    Destination,
    RatingActivation,
    RatingProfile,
    TariffPlan,
    rating_profile_key,
)
from core.types import InvalidValue, JsonParts, format_time, parse_duration, parse_time, zone

if TYPE_CHECKING:
    from core.engine import Engine

TPID: Final = "TPid"
NOW: Final = "*now"

# Staging method families: the method-name stem, the kind, and how the id is read from a Get call.
_STAGED: Final = (
    ("Timing", KIND_TIMINGS, "ID"),
    ("Destination", KIND_DESTINATIONS, "ID"),
    ("Rate", KIND_RATES, "ID"),
    ("DestinationRate", KIND_DESTINATION_RATES, "ID"),
    ("RatingPlan", KIND_RATING_PLANS, "ID"),
    ("RatingProfile", KIND_RATING_PROFILES, "RatingProfileID"),
)


def _staged_id(kind: str, doc: Mapping[str, Any]) -> str:
    """The id a staged item is kept under: CGRateS keys TP rating profiles by
    ``LoadId:Tenant:Category:Subject`` and everything else by ``ID``."""
    if kind == KIND_RATING_PROFILES:
        return ":".join(
            str(doc.get(name) or "") for name in ("LoadId", "Tenant", "Category", "Subject")
        )
    return str(doc.get("ID") or "")


def register(registry: MethodRegistry, engine: Engine) -> None:
    general = engine.config.general
    default_zone = zone(general.default_timezone)

    # ------------------------------------------------------------------------------ rating
    default_tenant = general.default_tenant
    default_category = general.default_category

    # GetCost's reply writer: the common call answered from the rater's caches without
    # checking the arguments first (they only hit for values a checked call resolved before),
    # or None: then the handler answers (a new subject or usage, a bad argument).
    get_cost_reply = common_line_writer(
        engine.rating, default_tenant, default_category, default_zone
    )

    def get_cost(params: Any, ctx: CallContext) -> Any:
        if ctx.transport != TRANSPORT_INTERNAL:  # pre-encoded for the JSON writer
            parts = get_cost_reply(params, ctx)
            if parts is not None:
                return JsonParts(parts)
        return checked_get_cost(params, ctx)

    def checked_get_cost(params: Any, ctx: CallContext) -> Any:
        args = params if type(params) is dict else as_object(params)
        subject = args.get("Subject")
        destination = args.get("Destination")
        tenant = args.get("Tenant") or default_tenant
        category = args.get("Category") or default_category
        if not (
            type(subject) is str
            and type(destination) is str
            and type(tenant) is str
            and type(category) is str
            and subject
            and destination
        ):
            subject, destination, tenant, category = get_cost_args(args)
        try:
            answer_time = parse_time(args.get("AnswerTime") or NOW, default_zone)
            usage = parse_duration(args.get("Usage") or 0)
        except InvalidValue as exc:
            raise server_error(exc) from None
        try:
            # tor "": APIerSv1.GetCost rates as *voice without naming a ToR
            call_cost = engine.rating.rater.cost_of(
                tenant, category, subject, destination, answer_time, usage, ""
            )
        except RatingError as exc:
            raise RpcError(exc.server_error) from None
        if ctx.transport != TRANSPORT_INTERNAL:  # pre-encoded for the JSON writer
            return call_cost.to_event_cost_wire()
        return call_cost.to_event_cost()  # plain objects for in-process callers

    def get_cost_args(args: Mapping[str, Any]) -> tuple[str, str, str, str]:
        """Subject, Destination, Tenant and Category, checked (CGRateS's errors)."""
        require(args, "Subject", "Destination")
        return (
            text(args, "Subject"),
            text(args, "Destination"),
            text(args, "Tenant", default_tenant),
            text(args, "Category", default_category),
        )

    # ------------------------------------------------------------------------------ loads
    async def load_from_folder(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        require(args, "FolderPath")
        folder = Path(text(args, "FolderPath"))
        if not folder.is_dir():
            raise server_error(f"{folder}: not a folder")
        try:
            await engine.loader.load_folder(folder, dry_run=flag(args, "DryRun"))
        except TariffPlanError as exc:
            raise server_error(exc) from None
        await engine.actions.settle()  # the plan's account actions are done when we answer
        return OK

    async def load_from_stordb(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        require(args, TPID)
        tpid = text(args, TPID)
        staged = await engine.stordb.get_tp_all(tpid)
        if not staged:
            raise RpcError(ERR_NOT_FOUND)
        plan = TariffPlan()
        for kind, docs in staged.items():
            if kind not in RATING_KINDS:
                continue
            items = items_of(plan, kind)
            for staged_id, doc in docs.items():
                try:
                    model = from_tp_json(kind, doc, timezone=general.default_timezone)
                except (InvalidValue, TariffPlanError) as exc:
                    raise server_error(f"{tpid}/{kind}/{staged_id}: {exc}") from None
                items[model_key(kind, model)] = model
        try:
            await engine.loader.load_plan(plan, dry_run=flag(args, "DryRun"))
        except TariffPlanError as exc:
            raise server_error(exc) from None
        await engine.actions.settle()  # the plan's account actions are done when we answer
        return OK

    registry.register("APIerSv1.LoadTariffPlanFromFolder", load_from_folder)
    registry.register("APIerSv2.LoadTariffPlanFromFolder", load_from_folder)
    registry.register("APIerSv1.LoadTariffPlanFromStorDb", load_from_stordb)
    registry.register("APIerSv2.LoadTariffPlanFromStorDb", load_from_stordb)
    registry.register("APIerSv1.GetCost", get_cost, writer=get_cost_reply)

    # ------------------------------------------------------------------------------ staging
    for stem, kind, id_field in _STAGED:
        _register_staging(registry, engine, stem, kind, id_field)

    # ------------------------------------------------------------------ direct setters/getters
    async def set_destination(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        dest_id = text(args, "Id") or text(args, "ID")
        prefixes = args.get("Prefixes")
        if not dest_id or not prefixes:
            missing = [
                name for name, value in (("Id", dest_id), ("Prefixes", prefixes)) if not value
            ]
            require({}, *missing)
        if not isinstance(prefixes, list) or not all(isinstance(p, str) and p for p in prefixes):
            raise server_error("invalid params: Prefixes must be a list of strings")
        exists = dest_id in engine.loader.current.destinations
        if exists and not flag(args, "Overwrite"):
            raise RpcError(ERR_EXISTS)
        plan = TariffPlan(destinations={dest_id: Destination(dest_id, tuple(prefixes))})
        await _load(engine, plan)
        return OK

    def get_destination(params: Any, ctx: CallContext) -> dict[str, Any]:
        dest_id = params if isinstance(params, str) else text(as_object(params), "ID")
        destination = engine.loader.current.destinations.get(dest_id)
        if destination is None:
            raise RpcError(ERR_NOT_FOUND)
        return {"Id": destination.id, "Prefixes": list(destination.prefixes)}

    async def remove_destination(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        ids = args.get("DestinationIDs") or []
        if not isinstance(ids, list):
            raise server_error("invalid params: DestinationIDs must be a list")
        if not await engine.loader.remove(KIND_DESTINATIONS, [str(i) for i in ids]):
            raise RpcError(ERR_NOT_FOUND)
        return OK

    async def set_rating_profile(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        require(args, "Subject", "RatingPlanActivations")
        tenant = text(args, "Tenant", general.default_tenant)
        category = text(args, "Category", general.default_category)
        subject = text(args, "Subject")
        key = rating_profile_key(tenant, category, subject)
        existing = engine.loader.current.rating_profiles.get(key)
        if existing is not None and not flag(args, "Overwrite"):
            raise RpcError(ERR_EXISTS)
        activations = {a.activation_time: a for a in (existing.activations if existing else ())}
        raw_activations = args["RatingPlanActivations"]
        if not isinstance(raw_activations, list):
            raise server_error("invalid params: RatingPlanActivations must be a list")
        for position, raw in enumerate(raw_activations):
            if not isinstance(raw, Mapping):
                raise server_error(f"invalid params: RatingPlanActivations[{position}]")
            plan_id = text(raw, "RatingPlanId")
            if plan_id not in engine.loader.current.rating_plans:
                raise server_error(
                    f"RatingPlanActivations[{position}].RatingPlanId: {ERR_NOT_FOUND}"
                )
            try:
                moment = parse_time(raw.get("ActivationTime") or "*now", default_zone)
            except InvalidValue as exc:
                raise server_error(
                    f"RatingPlanActivations[{position}].ActivationTime: {exc}"
                ) from None
            fallbacks = tuple(s for s in text(raw, "FallbackSubjects").split(";") if s)
            activations[moment] = RatingActivation(moment, plan_id, fallbacks)
        profile = RatingProfile(
            tenant, category, subject, tuple(activations[t] for t in sorted(activations))
        )
        await _load(engine, TariffPlan(rating_profiles={key: profile}))
        return OK

    def get_rating_profile(params: Any, ctx: CallContext) -> dict[str, Any]:
        args = as_object(params)
        require(args, "Subject")
        key = rating_profile_key(
            text(args, "Tenant", general.default_tenant),
            text(args, "Category", general.default_category),
            text(args, "Subject"),
        )
        profile = engine.loader.current.rating_profiles.get(key)
        if profile is None:
            raise RpcError(ERR_NOT_FOUND)
        return {
            "Id": key,
            "RatingPlanActivations": [
                {
                    "ActivationTime": format_time(a.activation_time),
                    "RatingPlanId": a.rating_plan_id,
                    "FallbackKeys": [
                        rating_profile_key(profile.tenant, profile.category, s)
                        for s in a.fallback_subjects
                    ],
                }
                for a in profile.activations
            ],
        }

    async def remove_rating_profile(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        require(args, "Subject")
        key = rating_profile_key(
            text(args, "Tenant", general.default_tenant),
            text(args, "Category", general.default_category),
            text(args, "Subject"),
        )
        if not await engine.loader.remove(KIND_RATING_PROFILES, [key]):
            raise RpcError(ERR_NOT_FOUND)
        return OK

    def get_rating_plan(params: Any, ctx: CallContext) -> dict[str, Any]:
        plan_id = params if isinstance(params, str) else text(as_object(params), "ID")
        rating_plan = engine.loader.current.rating_plans.get(plan_id)
        if rating_plan is None:
            raise RpcError(ERR_NOT_FOUND)
        return to_tp_json(KIND_RATING_PLANS, rating_plan, "")

    for version in ("APIerSv1", "APIerSv2"):
        registry.register(f"{version}.SetDestination", set_destination)
        registry.register(f"{version}.GetDestination", get_destination)
        registry.register(f"{version}.RemoveDestination", remove_destination)
        registry.register(f"{version}.SetRatingProfile", set_rating_profile)
        registry.register(f"{version}.GetRatingProfile", get_rating_profile)
        registry.register(f"{version}.RemoveRatingProfile", remove_rating_profile)
        registry.register(f"{version}.GetRatingPlan", get_rating_plan)


async def _load(engine: Engine, plan: TariffPlan) -> None:
    try:
        await engine.loader.load_plan(plan)
    except TariffPlanError as exc:
        raise server_error(exc) from None


def _register_staging(
    registry: MethodRegistry, engine: Engine, stem: str, kind: str, id_field: str
) -> None:
    """SetTP<X>, GetTP<X>, GetTP<X>Ids/IDs, RemoveTP<X> for one rating kind, on both versions."""
    timezone = engine.config.general.default_timezone

    async def set_tp(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        required = (
            [TPID, "Tenant", "Category", "Subject"]
            if kind == KIND_RATING_PROFILES
            else [
                TPID,
                "ID",
            ]
        )
        require(args, *required)
        try:
            model = from_tp_json(kind, args, timezone=timezone)
        except (InvalidValue, TariffPlanError) as exc:
            raise server_error(exc) from None
        tpid = text(args, TPID)
        doc = to_tp_json(kind, model, tpid, load_id=text(args, "LoadId"))
        await engine.stordb.set_tp(tpid, kind, _staged_id(kind, doc), doc)
        return OK

    async def get_tp(params: Any, ctx: CallContext) -> Any:
        args = as_object(params)
        require(args, TPID, id_field)
        doc = await engine.stordb.get_tp(text(args, TPID), kind, text(args, id_field))
        if doc is None:
            raise RpcError(ERR_NOT_FOUND)
        return doc

    async def get_tp_ids(params: Any, ctx: CallContext) -> list[str]:
        args = as_object(params)
        require(args, TPID)
        ids = await engine.stordb.get_tp_ids(text(args, TPID), kind)
        if not ids:
            raise RpcError(ERR_NOT_FOUND)
        return ids

    async def remove_tp(params: Any, ctx: CallContext) -> str:
        args = as_object(params)
        require(args, TPID, id_field)
        if not await engine.stordb.remove_tp(text(args, TPID), kind, text(args, id_field)):
            raise RpcError(ERR_NOT_FOUND)
        return OK

    handlers: dict[str, Callable[[Any, CallContext], Any]] = {
        f"SetTP{stem}": set_tp,
        f"GetTP{stem}": get_tp,
        f"GetTP{stem}Ids": get_tp_ids,
        f"GetTP{stem}IDs": get_tp_ids,
        f"RemoveTP{stem}": remove_tp,
    }
    for version in ("APIerSv1", "APIerSv2"):
        for name, handler in handlers.items():
            registry.register(f"{version}.{name}", handler)
