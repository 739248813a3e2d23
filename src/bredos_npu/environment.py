"""Numbers read from environment variables (deadlines, rates), checked the same way everywhere."""

from __future__ import annotations

import os

from bredos_npu.errors import Reason, UsageError


def env_number(name: str, default: float, positive: bool = True, limit: float = 1e9) -> float:
    """$``name`` as a float, ``default`` when unset or empty.

    positive: the value must be above 0 (else at least 0). limit: the value must stay below it.
    Raises UsageError (BAD_VALUE, data: option, value) for anything else, NaN included.
    """
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value < limit if positive else 0 <= value < limit):
        raise UsageError(f"{name}={text!r} is not a number {'above' if positive else 'of at least'} 0",
                         reason=Reason.BAD_VALUE, option=name, value=text)
    return value
