"""Version of this package: the spead2 release whose API it matches, plus our own suffix."""

__version__ = "4.5.1.post1"
