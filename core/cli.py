"""The ``chargeflow`` command: engine, up, tp load."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from core.config import Config, ConfigError, load_config, parse_address

log = logging.getLogger("chargeflow")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
PROGRESS_BAR_WIDTH = 40
PROGRESS_MIN_BYTES = 1 << 20  # below 1 MiB a bar is noise


def _install_event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but keep stdlib fallback
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML config (default: config/chargeflow.yaml)")
    parser.add_argument("--data-dir", type=Path, help="where the embedded storage keeps its files")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chargeflow", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    commands = parser.add_subparsers(dest="command", required=True)

    engine = commands.add_parser("engine", help="run the charging engine")
    _config_options(engine)
    engine.add_argument("--storage", choices=("sqlite", "memory"), help="override storage.type")

    up = commands.add_parser("up", help="run the engine and every enabled agent")
    _config_options(up)
    up.add_argument("--storage", choices=("sqlite", "memory"), help="override storage.type")

    tp = commands.add_parser("tp", help="tariff plans")
    tp_commands = tp.add_subparsers(dest="tp_command", required=True)
    tp_load = tp_commands.add_parser("load", help="validate and load a CGRateS CSV folder")
    tp_load.add_argument("folder", type=Path)
    tp_load.add_argument("--dry-run", action="store_true", help="read and validate only")
    tp_load.add_argument("--engine", help="HOST:PORT of a running engine (default: config)")
    _config_options(tp_load)
    return parser


def _with_storage(config: Config, storage: str | None) -> Config:
    if storage is None:
        return config
    from dataclasses import replace

    return replace(config, storage=replace(config.storage, type=storage))


async def _run_engine(config: Config) -> int:
    from core.engine import Engine

    engine = Engine(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await engine.start()
    log.info("engine ready: %s", ", ".join(engine.listening()))
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await engine.stop()
    return EXIT_OK


class _ProgressBar:
    def __init__(self, label: str) -> None:
        self._label = label
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        if total < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
            return
        filled = PROGRESS_BAR_WIDTH * done // max(total, 1)
        bar = "#" * filled + "-" * (PROGRESS_BAR_WIDTH - filled)
        sys.stderr.write(f"\r{self._label} [{bar}] {100 * done // max(total, 1):3d}%")
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\n")


async def _tp_load(config: Config, folder: Path, dry_run: bool, engine_address: str | None) -> int:
    from core.tariffplan import TariffPlanError, read_folder, validate

    folder = folder.resolve()
    bar = _ProgressBar(f"reading {folder.name}")
    try:
        plan = await asyncio.to_thread(read_folder, folder, bar)
    except TariffPlanError as exc:
        bar.close()
        print(exc, file=sys.stderr)
        return EXIT_FAILURE
    bar.close()
    if dry_run:
        issues = validate(plan, None)
        if issues:
            print(TariffPlanError(issues), file=sys.stderr)
            return EXIT_FAILURE
        print(f"{folder}: valid (dry run, nothing loaded)")
        return EXIT_OK

    address = (
        parse_address(engine_address, "--engine")
        if engine_address
        else config.engine.rpc_json_listen
    )
    if address is not None:
        from core.rpc import RpcClient, RpcError

        client = None
        with contextlib.suppress(OSError):
            client = await RpcClient.connect(address.host, address.port)
        if client is not None:
            try:
                await client.call("APIerSv1.LoadTariffPlanFromFolder", {"FolderPath": str(folder)})
            except RpcError as exc:
                print(str(exc), file=sys.stderr)
                return EXIT_FAILURE
            finally:
                await client.close()
            print(f"{folder}: loaded by the engine at {address}")
            return EXIT_OK

    # No engine running: load straight into the configured storage.
    from core.engine import Engine

    engine = Engine(config)
    await engine.open_storage()
    try:
        await engine.loader.load_plan(plan)
    except TariffPlanError as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILURE
    finally:
        await engine.stop()
    print(f"{folder}: loaded into {config.storage.data_dir} (no engine was running)")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config, getattr(args, "data_dir", None))
    except ConfigError as exc:
        print(f"chargeflow: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _install_event_loop_policy()
    if args.command in ("engine", "up"):
        return asyncio.run(_run_engine(_with_storage(config, args.storage)))
    if args.command == "tp" and args.tp_command == "load":
        return asyncio.run(_tp_load(config, args.folder, args.dry_run, args.engine))
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
