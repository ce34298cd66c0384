"""Command-line tools built on the spead2 API."""
