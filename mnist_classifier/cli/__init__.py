"""The commands (``mnist-train``, ``mnist-evaluate``, ``mnist-predict``) and the edge they share:
one-line errors, exit status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ..errors import AgreedError, UserError


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage dump), still with exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run_cli(prog: str, action: Callable[[], object]) -> None:
    """Run ``action``; a ``UserError`` becomes one line on stderr and exit status 2, never a traceback."""
    try:
        action()
    except AgreedError:  # rank 0 of a distributed run printed it: once is enough
        sys.exit(2)
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # the file system refused something no check foresaw (a name too long, ...)
        where = f"{e.filename}: " if e.filename else ""
        print(f"{prog}: error: {where}{e.strerror or e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C outside training: files are written atomically, so nothing is half-done
        print(f"\n{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
