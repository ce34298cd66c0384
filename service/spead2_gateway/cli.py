"""The ``spead2-gateway`` command: run the daemon.

``spead2-gateway`` with no arguments runs the embedded default configuration (one UDP receive
stream on 127.0.0.1:8888, gRPC on 127.0.0.1:50051, metrics on 127.0.0.1:9464). Exit status:
0 after a clean shutdown, 1 if the daemon could not start, 2 for a bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from spead2_gateway import __version__
from spead2_gateway.config import DEFAULT_CONFIG_TOML, ConfigError, load_config, to_plain
from spead2_gateway.errors import StartupError
from spead2_gateway.malloc import tune_malloc

__all__ = ["main"]

logger = logging.getLogger("spead2_gateway")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spead2-gateway",
        description="Own SPEAD receive and send streams and serve them over gRPC.",
    )
    parser.add_argument("--config", "-c", type=Path, help="TOML configuration (default: embedded)")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="also send synthetic heaps into the first UDP receive stream and print what a "
        "gRPC subscriber receives",
    )
    parser.add_argument(
        "--exit-after", type=float, metavar="SECONDS", help="shut down gracefully after SECONDS"
    )
    parser.add_argument(
        "--ready-file", type=Path, help="write the bound addresses here (JSON) once serving"
    )
    parser.add_argument(
        "--check-config", action="store_true", help="validate the configuration, print it, exit"
    )
    parser.add_argument(
        "--print-default-config", action="store_true", help="print the embedded default, exit"
    )
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="overrides log_level"
    )
    parser.add_argument(
        "--no-malloc-tuning", action="store_true", help="keep glibc's malloc thresholds"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``spead2-gateway``; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.print_default_config:
        print(DEFAULT_CONFIG_TOML, end="")
        return 0
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"spead2-gateway: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print(json.dumps(to_plain(config), indent=2))
        return 0
    logging.basicConfig(
        level=(args.log_level or config.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.no_malloc_tuning and tune_malloc():
        logger.debug("malloc thresholds tuned for large messages")
    from spead2_gateway import app  # grpc is imported only once we know we will serve

    try:
        return asyncio.run(
            app.run(config, demo=args.demo, exit_after=args.exit_after, ready_file=args.ready_file)
        )
    except StartupError as exc:
        print(f"spead2-gateway: {exc}", file=sys.stderr)
        return 1
