"""RouteS: least-cost (and weight / quality / load / resource) routing over the live route
profiles."""

from core.routes.service import (
    ROUTE_SORTINGS,
    AccountMaxUsage,
    NoMetrics,
    RouteMetrics,
    RouteQuery,
    RouteSError,
    RouteService,
    SortedRoute,
    SortedRoutes,
)

__all__ = [
    "ROUTE_SORTINGS",
    "AccountMaxUsage",
    "NoMetrics",
    "RouteMetrics",
    "RouteQuery",
    "RouteSError",
    "RouteService",
    "SortedRoute",
    "SortedRoutes",
]
