"""YAML configuration → typed settings.

Defaults live in ``config/chargeflow.yaml``; a user file overrides only what it names (deep merge).
Relative paths are resolved against the directory of the file that names them. Unknown keys are
errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from core.rpc.connection import DEFAULT_CONNECT_TIMEOUT, DEFAULT_REPLY_TIMEOUT
from core.rpc.pool import DEFAULT_POOL_CONNECTIONS, STRATEGIES, STRATEGY_FAILOVER
from core.types import SECOND, InvalidValue, parse_duration

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH: Final = REPO_ROOT / "config" / "chargeflow.yaml"

STORAGE_TYPES: Final = ("sqlite", "memory")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and key."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class GeneralConfig:
    default_tenant: str = "cgrates.org"
    default_category: str = "call"
    default_timezone: str = "UTC"
    default_request_type: str = "*rated"
    rounding_decimals: int = 5


@dataclass(frozen=True, slots=True)
class EngineConfig:
    rpc_json_listen: Address | None = Address("127.0.0.1", 2012)
    http_listen: Address | None = Address("127.0.0.1", 2080)
    http_path: str = "/jsonrpc"


@dataclass(frozen=True, slots=True)
class StorageConfig:
    type: str = "sqlite"
    data_dir: Path = REPO_ROOT / "var" / "data"


@dataclass(frozen=True, slots=True)
class TariffPlansConfig:
    load_on_start: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class SessionsConfig:
    max_call_duration: str = "3h"  # usage authorized/debited when a request names none
    debit_interval: str = "0s"  # > 0: *prepaid sessions are debited this often by the engine
    session_ttl: str = "0s"  # > 0: a session with no update for this long is ended and billed
    reply_cache_ttl: str = "10s"  # a request retransmitted (same event ID) within this gets
    #                               the first answer and is never charged twice


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """One ``agents.<name>`` block: the keys every agent has, typed here; the agent's own keys
    are in ``options``, validated by the agent."""

    name: str
    enabled: bool = False
    engines: tuple[Address, ...] = ()  # resolved: the engine's rpc_json_listen when none given
    strategy: str = STRATEGY_FAILOVER  # failover | round_robin
    connections: int = DEFAULT_POOL_CONNECTIONS  # per engine
    reply_timeout: float = DEFAULT_REPLY_TIMEOUT  # seconds
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT  # seconds
    listen: Address | None = None  # where the agent serves its protocol
    templates: Path | None = None  # its request/reply templates
    factory: str | None = None  # "module:attribute" for an agent not in AGENT_FACTORIES
    options: dict[str, Any] = field(default_factory=dict)


AGENT_COMMON_KEYS: Final = frozenset(AgentConfig.__slots__) - {"name", "options"}


@dataclass(frozen=True, slots=True)
class Config:
    general: GeneralConfig = field(default_factory=GeneralConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    tariffplans: TariffPlansConfig = field(default_factory=TariffPlansConfig)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    agents: dict[str, AgentConfig] = field(default_factory=dict)
    source: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # the merged tree, for later subsystems


def parse_address(value: Any, where: str) -> Address | None:
    """``"127.0.0.1:2012"`` → Address; empty/None disables the listener."""
    if value in (None, "", False):
        return None
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{where}: expected HOST:PORT, got {value!r}")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{where}: port is not a number in {value!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{where}: port out of range in {value!r}")
    return Address(host, port)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return _resolve_paths(tree, path.parent)


# Keys whose values are paths, resolved against the directory of the file that sets them.
_PATH_KEYS: Final = {("storage", "data_dir"), ("tariffplans", "load_on_start")}


# ... and inside every agents.<name> block.
_AGENT_PATH_KEYS: Final = ("templates",)


def _resolve_paths(tree: dict[str, Any], base: Path) -> dict[str, Any]:
    blocks = [(tree.get(section), key) for section, key in _PATH_KEYS]
    agents = tree.get("agents")
    if isinstance(agents, dict):
        blocks += [(agent, key) for agent in agents.values() for key in _AGENT_PATH_KEYS]
    for block, key in blocks:
        if not isinstance(block, dict) or key not in block:
            continue
        value = block[key]
        if isinstance(value, str):
            block[key] = str((base / value).resolve())
        elif isinstance(value, list):
            block[key] = [str((base / item).resolve()) for item in value]
    return tree


def _section(tree: dict[str, Any], name: str, allowed: set[str], source: Path) -> dict[str, Any]:
    block = tree.get(name) or {}
    if not isinstance(block, dict):
        raise ConfigError(f"{source}: {name}: must be a mapping")
    unknown = set(block) - allowed
    if unknown:
        raise ConfigError(f"{source}: {name}: unknown key(s) {sorted(unknown)}")
    return block


# Sections that belong to subsystems arriving in later issues are kept raw, not rejected.
_OPEN_SECTIONS: Final = {"cdrs", "logging"}


def _seconds(value: Any, where: str) -> float:
    """A positive Go-style duration (``"2s"``, ``"500ms"``) in seconds; bare numbers are refused
    (they would be nanoseconds, as everywhere in CGRateS)."""
    if not isinstance(value, str):
        raise ConfigError(f'{where}: expected a duration such as "2s", got {value!r}')
    try:
        nanoseconds = parse_duration(value)
    except InvalidValue as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if nanoseconds <= 0:
        raise ConfigError(f"{where}: must be more than 0")
    return nanoseconds / SECOND


def _agent_config(name: str, block: Any, engine: EngineConfig, source: Path) -> AgentConfig:
    where = f"{source}: agents.{name}"
    if block is None:
        block = {}
    if not isinstance(block, dict):
        raise ConfigError(f"{where}: must be a mapping")
    enabled = block.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.enabled: must be true or false")
    raw_engines = block.get("engines") or []
    if isinstance(raw_engines, str):
        raw_engines = [raw_engines]
    if not isinstance(raw_engines, list):
        raise ConfigError(f"{where}.engines: must be a list of HOST:PORT")
    engines = tuple(
        address
        for item in raw_engines
        if (address := parse_address(item, f"{where}.engines")) is not None
    )
    if not engines and engine.rpc_json_listen is not None:
        engines = (engine.rpc_json_listen,)  # the engine `up` starts next to the agents
    if enabled and not engines:
        raise ConfigError(f"{where}.engines: none given and engine.rpc_json_listen is disabled")
    strategy = block.get("strategy", STRATEGY_FAILOVER)
    if strategy not in STRATEGIES:
        raise ConfigError(f"{where}.strategy: {strategy!r} is not one of {list(STRATEGIES)}")
    connections = block.get("connections", DEFAULT_POOL_CONNECTIONS)
    if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
        raise ConfigError(f"{where}.connections: must be a whole number of at least 1")
    templates = block.get("templates")
    factory = block.get("factory")
    if factory is not None and (not isinstance(factory, str) or ":" not in factory):
        raise ConfigError(f'{where}.factory: expected "module:attribute", got {factory!r}')
    return AgentConfig(
        name=name,
        enabled=enabled,
        engines=engines,
        strategy=strategy,
        connections=connections,
        reply_timeout=_seconds(block.get("reply_timeout", "2s"), f"{where}.reply_timeout"),
        connect_timeout=_seconds(block.get("connect_timeout", "1s"), f"{where}.connect_timeout"),
        listen=parse_address(block.get("listen"), f"{where}.listen"),
        templates=Path(templates) if templates else None,
        factory=factory,
        options={key: value for key, value in block.items() if key not in AGENT_COMMON_KEYS},
    )


def load_config(path: Path | None = None, data_dir: Path | None = None) -> Config:
    """Reads the default config, merges ``path`` over it, applies the ``--data-dir`` override."""
    tree = _read_yaml(DEFAULT_CONFIG_PATH)
    source = DEFAULT_CONFIG_PATH
    if path is not None and path.resolve() != DEFAULT_CONFIG_PATH:
        source = path
        tree = _deep_merge(tree, _read_yaml(path))
    known = {"general", "engine", "storage", "tariffplans", "sessions", "agents"} | _OPEN_SECTIONS
    unknown = set(tree) - known
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {sorted(unknown)}")

    general_block = _section(tree, "general", set(GeneralConfig.__slots__), source)
    engine_block = _section(tree, "engine", set(EngineConfig.__slots__), source)
    storage_block = _section(tree, "storage", set(StorageConfig.__slots__), source)
    tp_block = _section(tree, "tariffplans", set(TariffPlansConfig.__slots__), source)
    sessions_block = _section(tree, "sessions", set(SessionsConfig.__slots__), source)

    try:
        general = GeneralConfig(
            default_tenant=str(general_block.get("default_tenant", "cgrates.org")),
            default_category=str(general_block.get("default_category", "call")),
            default_timezone=str(general_block.get("default_timezone", "UTC")),
            default_request_type=str(general_block.get("default_request_type", "*rated")),
            rounding_decimals=int(general_block.get("rounding_decimals", 5)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: general: {exc}") from None
    engine = EngineConfig(
        rpc_json_listen=parse_address(
            engine_block.get("rpc_json_listen"), f"{source}: engine.rpc_json_listen"
        ),
        http_listen=parse_address(engine_block.get("http_listen"), f"{source}: engine.http_listen"),
        http_path=str(engine_block.get("http_path", "/jsonrpc")),
    )
    storage_type = str(storage_block.get("type", "sqlite"))
    if storage_type not in STORAGE_TYPES:
        raise ConfigError(
            f"{source}: storage.type: {storage_type!r} is not one of {list(STORAGE_TYPES)}"
        )
    storage = StorageConfig(
        type=storage_type,
        data_dir=data_dir.resolve() if data_dir else Path(storage_block["data_dir"]),
    )
    loads = tp_block.get("load_on_start") or []
    if not isinstance(loads, list):
        raise ConfigError(f"{source}: tariffplans.load_on_start: must be a list of folders")
    tariffplans = TariffPlansConfig(load_on_start=tuple(Path(item) for item in loads))
    sessions = SessionsConfig(**{key: str(value) for key, value in sessions_block.items()})
    for key in SessionsConfig.__slots__:
        try:
            parse_duration(getattr(sessions, key))
        except InvalidValue as exc:
            raise ConfigError(f"{source}: sessions.{key}: {exc}") from None
    agents_block = tree.get("agents") or {}
    if not isinstance(agents_block, dict):
        raise ConfigError(f"{source}: agents: must be a mapping of agent name to settings")
    agents = {
        str(name): _agent_config(str(name), block, engine, source)
        for name, block in agents_block.items()
    }
    return Config(
        general,
        engine,
        storage,
        tariffplans,
        sessions=sessions,
        agents=agents,
        source=source,
        raw=tree,
    )
