"""A TensorRT logger that keeps what TensorRT said and shows the warnings and errors on stderr.

The builder's and parser's messages are the reason behind most failed builds, so they are kept:
the caller counts warnings (for instance the parser's duplicate-node-name warning) and quotes the
first error in its one-line message; ``--verbose`` shows every message.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    severity: str  # "internal error" | "error" | "warning" | "info" | "verbose"
    text: str


_LOGGERS: dict[str, object] = {}  # one logger per TensorRT module and process (see make_logger)


def make_logger(trt, *, echo: str = "warning"):
    """The ``trt.ILogger`` of runtime module ``trt``: it records every message from now on and prints those
    at ``echo`` severity or worse to stderr (``"warning"``, ``"info"``, ``"verbose"`` or ``"none"``).

    TensorRT keeps the first logger a process gives it for messages that do not come through a builder
    or runtime of their own (a plugin library's, through TensorRT's getLogger()), so there is one logger
    object per module: each call returns it, emptied, with ``echo`` set.
    """
    order = ["internal error", "error", "warning", "info", "verbose"]
    logger = _LOGGERS.get(trt.__name__)
    if logger is None:
        sev = trt.ILogger.Severity
        names = {sev.INTERNAL_ERROR: "internal error", sev.ERROR: "error", sev.WARNING: "warning", sev.INFO: "info",
                 sev.VERBOSE: "verbose"}

        class _Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.messages: list[Message] = []
                self.shown: set[str] = set()

            def log(self, severity, msg):
                name = names.get(severity, "info")
                self.messages.append(Message(name, str(msg)))
                if name in self.shown:
                    print(f"[TensorRT] {name}: {msg}", file=sys.stderr, flush=True)

            def of(self, *severities: str) -> list[str]:
                return [m.text for m in self.messages if m.severity in severities]

        logger = _LOGGERS[trt.__name__] = _Logger()
    logger.messages = []
    logger.shown = set(order[: order.index(echo) + 1]) if echo in order else set()
    return logger
