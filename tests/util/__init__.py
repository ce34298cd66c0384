"""Test helpers: the real-spead2 peer, loopback ports, UDP recording and capture files."""
