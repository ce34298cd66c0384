"""``python -m spead2_gateway``: the daemon (same as the ``spead2-gateway`` command)."""

from spead2_gateway.cli import main

raise SystemExit(main())
