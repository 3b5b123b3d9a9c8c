"""What the command writes besides its report: progress on stderr, and silencing what TVM's C++
side and the engines print there."""

import contextlib
import logging
import os
import sys


def progress(message):
    """One line of progress on stderr."""
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2: TVM's C++ logging and LiteRT's delegate notice write there."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w", encoding="utf-8") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class LogMessages(logging.Handler):
    """Keeps log records' messages (the frontends' warnings, TVM's notices) for the report."""

    def __init__(self, level):
        super().__init__(level)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())
