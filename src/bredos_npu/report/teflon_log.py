"""Teflon's own account of a model: the ``TEFLON_DEBUG=verbose`` lines it prints on stderr.

Mesa's ``tfl_device.c`` (PrepareDelegate) prints one line per node of the execution plan::

      3 CONV            v1  supported   in: 0(u8) 1(u8) 2(i32) out: 3(u8) ReLU6

then, per partition it compiles, ``teflon: compiled graph, took N ms`` and per invoke
``teflon: invoked graph, took N ms``. Lines of any other shape are ignored.
"""

from __future__ import annotations

import re
from typing import NamedTuple

NODE_LINE = re.compile(r"^\s*(\d+)\s+(\S+)\s+v(\d+)\s+(supported|unsupported)\s+in:")
COMPILED = re.compile(r"teflon: compiled graph, took (\d+) ms")
INVOKED = re.compile(r"teflon: invoked graph, took (\d+) ms")


class TeflonAccount(NamedTuple):
    """What Teflon said: node indices it supports / leaves, its op names, timings in ms."""

    supported: tuple[int, ...]
    unsupported: tuple[int, ...]
    op_names: dict[int, str]
    compile_ms: tuple[int, ...]
    invoke_ms: tuple[int, ...]

    def as_dict(self) -> dict[str, object]:
        return {"supported_ops": list(self.supported), "unsupported_ops": list(self.unsupported),
                "op_names": {str(k): v for k, v in self.op_names.items()},
                "compile_ms": list(self.compile_ms), "invoke_ms": list(self.invoke_ms)}


def parse_teflon_log(text: str) -> TeflonAccount | None:
    """The account in ``text``, or None when Teflon printed no node lines (not verbose, not Teflon)."""
    # Teflon prints the plan again for every interpreter it is applied to: keep each node once.
    supported, unsupported, names = set(), set(), {}
    for line in text.splitlines():
        match = NODE_LINE.match(line)
        if match:
            index = int(match.group(1))
            names[index] = match.group(2)
            (supported if match.group(4) == "supported" else unsupported).add(index)
    if not names:
        return None
    return TeflonAccount(tuple(sorted(supported)), tuple(sorted(unsupported - supported)), names,
                         tuple(int(m) for m in COMPILED.findall(text)),
                         tuple(int(m) for m in INVOKED.findall(text)))
