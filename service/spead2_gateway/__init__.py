"""spead2 gateway: a daemon that owns SPEAD streams and republishes them over gRPC.

Run it with ``spead2-gateway`` (see ``spead2_gateway.cli``); talk to it with
``spead2_gateway.client``.
"""

__version__ = "0.1.0"
