"""Progress bars that suit where they are shown: tqdm's redrawn bar on a terminal, and in a log
(a file or a pipe) one plain line per interval instead of carriage-return redraws."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm as _tqdm

LOG_INTERVAL = 30.0  # seconds between lines in a log


class LogBar(_tqdm):
    """A bar for logs: each refresh is its own line, at most every ``LOG_INTERVAL`` seconds."""

    def display(self, msg=None, pos=None):
        if self.disable or msg == "":  # closing a bar that is not kept: nothing to add or wipe
            return False
        self.fp.write((msg if msg is not None else self.__str__()) + "\n")
        self.fp.flush()
        self._shown = self.n
        return True

    def close(self):
        """The last state once (if not shown yet), then close without redraws."""
        if not self.disable and self.n != getattr(self, "_shown", None):
            self.display()
        self.leave = False
        super().close()

    def clear(self, *_, **__):  # nothing to wipe: lines are kept
        pass

    # a new postfix or description shows with the next interval's line, not as a line of its own
    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_postfix_str(self, s="", refresh=True):
        super().set_postfix_str(s, refresh=False)

    def set_description(self, desc=None, refresh=True):
        super().set_description(desc, refresh=False)

    def set_description_str(self, desc=None, refresh=True):
        super().set_description_str(desc, refresh=False)


def tqdm(*args, **kwargs):
    """``tqdm.auto.tqdm`` on a terminal; :class:`LogBar` when the output is not one."""
    fp = kwargs.get("file") or sys.stderr
    try:
        tty = fp.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        return _tqdm(*args, **kwargs)
    kwargs.setdefault("mininterval", LOG_INTERVAL)
    kwargs["mininterval"] = max(kwargs["mininterval"], LOG_INTERVAL)
    kwargs.pop("dynamic_ncols", None)
    return LogBar(*args, **kwargs)
