"""Parsing of integer range lists such as ``"2,3-5"``, used for CPU affinity options."""


def parse_range_list(ranges: str | None) -> list[int]:
    """Split a string like ``"2,3-5,8,9-11"`` into a list of integers.

    Ranges are inclusive; a range whose end is before its start is empty. Whitespace
    around numbers is ignored. An empty string (or ``None``) gives an empty list.

    Raises
    ------
    ValueError
        If a part is not an integer or a range of two integers.
    """
    if not ranges:
        return []
    result: list[int] = []
    for part in ranges.split(","):
        if "-" in part:
            start, end = part.split("-", 1)
            result.extend(range(int(start), int(end) + 1))
        else:
            result.append(int(part))
    return result
