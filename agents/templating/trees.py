"""Trees the template engine reads and writes by path.

A path here is a tuple of plain element names (``("Subscription-Id", "Subscription-Id-Data")``);
indexes, selectors and ``Length`` are resolved by :mod:`agents.templating.paths` on top of
``get``, so a codec only has to list the values found at a plain path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, Final, Protocol

# One node of a ReplyTree: element name -> its instances (leaves, or nodes for groups).
Node = dict[str, list[Any]]
Indexes = tuple[int | None, ...] | None


class RequestTree(Protocol):
    """Read access to a decoded message.

    ``get(path)`` returns every value at ``path`` in message order, descending into every
    instance of repeated groups on the way (an empty list when there is none). A group
    element's value is something the tree can describe (a dict is fine); leaves are scalars.
    """

    def get(self, path: tuple[str, ...]) -> list[Any]: ...


class DictTree:
    """A RequestTree over nested dicts and lists (a list holds repeated instances)."""

    __slots__ = ("data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def get(self, path: tuple[str, ...]) -> list[Any]:
        current: list[Any] = [self.data]
        for name in path:
            found: list[Any] = []
            for item in current:
                if isinstance(item, Mapping) and name in item:
                    _extend(found, item[name])
            if not found:
                return []
            current = found
        return current

    def __repr__(self) -> str:
        return f"DictTree({self.data!r})"

    def __reduce__(self) -> tuple[type[DictTree], tuple[Mapping[str, Any]]]:
        # copy/pickle rebuild it through the constructor (a compiled class needs its args).
        return DictTree, (self.data,)


def _extend(out: list[Any], value: Any) -> None:
    if isinstance(value, list):
        out.extend(value)
    else:
        out.append(value)


class ReplyTree:
    """A writable tree built as nested dicts of instance lists; readable like a RequestTree.

    ``nodes`` is the raw form (``{"Result-Code": ["2001"], "MSCC": [{...}, {...}]}``): every
    element is a list of instances, which is what a codec encoding repeated AVPs needs.
    ``to_data`` gives the collapsed form (single instances unwrapped) used for CGREvents.
    """

    __slots__ = ("nodes",)

    def __init__(self, nodes: Node | None = None) -> None:
        self.nodes: Node = nodes if nodes is not None else {}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ReplyTree:
        """A tree holding ``data`` (e.g. an engine reply): dicts become groups, lists instances."""
        return cls(_node_of(data))

    # ------------------------------------------------------------------------------ reading
    def get(self, path: tuple[str, ...]) -> list[Any]:
        if len(path) == 1:  # the common case: a top-level element
            instances = self.nodes.get(path[0])
            if not instances:
                return []
            if len(instances) == 1:  # no comprehension (a call of its own) for one instance
                item = instances[0]
                return [_collapse(item) if isinstance(item, dict) else item]
            return [_collapse(item) if isinstance(item, dict) else item for item in instances]
        current = self.nodes.get(path[0])
        for name in path[1:]:
            if not current:
                return []
            if len(current) == 1:  # a single group instance (most are): no list to gather
                item = current[0]
                current = item.get(name) if isinstance(item, dict) else None
                continue
            found: list[Any] = []
            for item in current:
                if isinstance(item, dict):
                    instances = item.get(name)
                    if instances:
                        found.extend(instances)
            current = found
        if not current:
            return []
        return [_collapse(item) if isinstance(item, dict) else item for item in current]

    def __bool__(self) -> bool:
        return bool(self.nodes)

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    def to_data(self) -> dict[str, Any]:
        """The collapsed form: an element with one instance holds it, several give a list."""
        return _collapse(self.nodes)

    # ------------------------------------------------------------------------------ writing
    # ``indexes`` (one per path element, or None) address an instance: an existing one, or
    # the next one (index == count); a larger index raises IndexError.
    def set(
        self,
        path: tuple[str, ...],
        value: Any,
        *,
        new_branch: bool = False,
        indexes: Indexes = None,
    ) -> None:
        """Sets the leaf at ``path`` to the single instance ``value`` (a top-level leaf with
        ``new_branch`` gets a further instance instead, as a new AVP in CGRateS)."""
        parent, name = self._parent(path, new_branch, indexes)
        index = indexes[-1] if indexes else None
        if index is not None:
            _put(parent.setdefault(name, []), index, value)
        elif new_branch and len(path) == 1:
            parent.setdefault(name, []).append(value)
        else:
            parent[name] = [value]

    def append(
        self,
        path: tuple[str, ...],
        value: Any,
        *,
        new_branch: bool = False,
        indexes: Indexes = None,
    ) -> None:
        """Adds ``value`` as a further instance of the leaf at ``path`` (``*group``)."""
        parent, name = self._parent(path, new_branch, indexes)
        parent.setdefault(name, []).append(value)

    def compose(
        self,
        path: tuple[str, ...],
        value: str,
        *,
        new_branch: bool = False,
        indexes: Indexes = None,
    ) -> None:
        """Appends ``value`` to the text of the leaf's last instance (``*composed``)."""
        parent, name = self._parent(path, new_branch, indexes)
        instances = parent.get(name)
        if instances and not isinstance(instances[-1], dict):
            instances[-1] = _text(instances[-1]) + value
        else:
            parent[name] = [value]

    def remove(self, path: tuple[str, ...], *, indexes: Indexes = None) -> None:
        """Removes the element at ``path`` (every instance, or the indexed one)."""
        node: Node = self.nodes
        for position, name in enumerate(path[:-1]):
            instances = node.get(name)
            index = indexes[position] if indexes else None
            if not instances:
                return
            chosen = (
                instances[-1]
                if index is None
                else (instances[index] if index < len(instances) else None)
            )
            if not isinstance(chosen, dict):
                return
            node = chosen
        index = indexes[-1] if indexes else None
        if index is None:
            node.pop(path[-1], None)
        elif index < len(node.get(path[-1], [])):
            del node[path[-1]][index]
            if not node[path[-1]]:
                del node[path[-1]]

    def clear(self) -> None:
        self.nodes.clear()

    def _parent(
        self, path: tuple[str, ...], new_branch: bool, indexes: Indexes
    ) -> tuple[Node, str]:
        # As CGRateS: new_branch opens a new instance of the first element, later writes
        # go to the last instance of each group on the way (or the indexed one).
        node: Node = self.nodes
        for position, name in enumerate(path[:-1]):
            instances = node.setdefault(name, [])
            index = indexes[position] if indexes else None
            if index is not None:
                if index == len(instances) or not isinstance(instances[index], dict):
                    _put(instances, index, {})
            elif (
                not instances
                or not isinstance(instances[-1], dict)
                or (new_branch and position == 0)
            ):
                instances.append({})
            node = instances[-1 if index is None else index]
        return node, path[-1]

    def __repr__(self) -> str:
        return f"ReplyTree({self.nodes!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReplyTree) and other.nodes == self.nodes

    __hash__ = None  # type: ignore[assignment]


class MemoTree:
    """A read-only request tree whose reads are remembered for one request: processors,
    filters and fields read the same few paths over and over (CC-Request-Type, MSCC ...).
    The lists handed out are shared, and nothing in the template engine changes them."""

    __slots__ = ("cache", "tree")

    def __init__(self, tree: RequestTree) -> None:
        self.tree = tree
        self.cache: dict[tuple[str, ...], list[Any]] = {}

    def get(self, path: tuple[str, ...]) -> list[Any]:
        found = self.cache.get(path)
        if found is None:
            found = self.cache[path] = self.tree.get(path)
        return found

    def __reduce__(self) -> tuple[type[MemoTree], tuple[RequestTree]]:
        return MemoTree, (self.tree,)  # as DictTree's (a remembered read is not kept)


# Values that are certainly no Mapping: checked by type first (a Mapping isinstance is slow).
_LEAF_TYPES: Final = frozenset({str, int, float, bool, bytes, Decimal, type(None)})


def _node_of(data: Mapping[str, Any]) -> Node:
    node: Node = {}
    for key, value in data.items():
        kind = type(value)
        if kind in _LEAF_TYPES:
            node[str(key)] = [value]
        elif kind is dict:  # before the Mapping check below, which is slow (an ABC)
            node[str(key)] = [_node_of(value)]
        elif isinstance(value, list):
            node[str(key)] = [
                item
                if type(item) in _LEAF_TYPES
                or (type(item) is not dict and not isinstance(item, Mapping))
                else _node_of(item)
                for item in value
            ]
        else:
            node[str(key)] = [_node_of(value) if isinstance(value, Mapping) else value]
    return node


def plain_item(item: Any) -> Any:
    """One instance as ``get`` gives it: a group collapsed, a leaf as it is."""
    return _collapse(item) if isinstance(item, dict) else item


def _collapse(node: Node) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, instances in node.items():
        if len(instances) == 1:
            item = instances[0]
            out[key] = _collapse(item) if isinstance(item, dict) else item
        else:
            out[key] = [_collapse(item) if isinstance(item, dict) else item for item in instances]
    return out


def _put(instances: list[Any], index: int, value: Any) -> None:
    if index < len(instances):
        instances[index] = value
    elif index == len(instances):
        instances.append(value)
    else:
        raise IndexError(f"index {index} beyond the {len(instances)} instances")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)
