"""RouteS: least-cost (and weight / quality) routing over the live route profiles."""

from core.routes.service import (
    ROUTE_SORTINGS,
    RouteQuery,
    RouteSError,
    RouteService,
    SortedRoute,
    SortedRoutes,
)

__all__ = [
    "ROUTE_SORTINGS",
    "RouteQuery",
    "RouteSError",
    "RouteService",
    "SortedRoute",
    "SortedRoutes",
]
