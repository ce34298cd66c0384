"""Process-wide settings the daemon makes once it serves."""

from __future__ import annotations

import gc

from spead2_gateway import app
from spead2_gateway.config import parse_config
from util.ports import free_tcp_port, free_udp_port


async def test_what_exists_at_start_is_frozen_out_of_the_cyclic_collector() -> None:
    text = (
        f'[server]\nlisten = "127.0.0.1:{free_tcp_port()}"\n'
        "[metrics]\nenabled = false\n"
        '[[receive.streams]]\nname = "s"\ntransport = "udp"\nhost = "127.0.0.1"\n'
        f"port = {free_udp_port()}\n"
    )
    gc.unfreeze()
    frozen: list[int] = []
    try:
        status = await app.run(
            parse_config(text, "t.toml"),
            exit_after=0.1,
            on_ready=lambda gateway: frozen.append(gc.get_freeze_count()),
        )
    finally:
        gc.unfreeze()
    assert status == 0
    # The streams, grpcio's server and every module loaded so far: many thousands.
    assert frozen and frozen[0] > 10_000, frozen
