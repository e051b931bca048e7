"""One exception type for everything a user can fix.

Every message is one line that says what is wrong and what to do about it. The CLI prints it as
``error: <message>`` and exits with status 2; library callers catch :class:`TdeployError`.
"""


class TdeployError(Exception):
    """A problem the user can fix; the message says how."""

    def __init__(self, message: str):
        # Keep messages to one line: they are printed verbatim by the CLI.
        super().__init__(" ".join(str(message).split()))


class BackendUnavailable(TdeployError):
    """A backend (TensorRT, Triton, CUDA, ...) cannot run here; the message says why."""
