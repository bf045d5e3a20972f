"""``ludosimetry``: the command line of LuDosimetryLib.

Each subcommand lives in ``cli/cmd_<name>.py`` and defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. ``main`` parses, dispatches, and turns a
:class:`~LuDosimetryLib.errors.LuDosimetryError` or an :class:`OSError` (unwritable folder, full
disk) into one line on stderr and exit status 2, and an interrupt (SIGINT, or SIGTERM, which is
turned into an exception so that partial outputs are removed) into one line and exit status 130
(143 for SIGTERM); never a traceback. No science lives here: commands call library functions and
write results folders.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import LuDosimetryError

__all__ = ["main", "COMMANDS", "get_parser", "os_error_message", "Terminated"]

#: Subcommands, in the order ``--help`` lists them; each is ``cli/cmd_<name>.py``.
COMMANDS: tuple[str, ...] = (
    "demo", "phantom", "inspect", "calibrate", "run", "kernel", "predict", "concordance",
    "response", "plan", "ledger", "cohort", "trial", "report",
)


def get_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="ludosimetry",
                                     description="Patient-specific 177Lu-PSMA dosimetry (LuDosimetryLib).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = importlib.import_module(f"{__name__}.cmd_{name}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


class Terminated(BaseException):
    """SIGTERM received: unwinds like an interrupt, so ``finally`` blocks remove partial outputs."""


_MAIN_PID: list[int] = []


def _raise_terminated(signum, frame) -> None:
    if _MAIN_PID and os.getpid() != _MAIN_PID[-1]:  # a forked worker: die as it would have
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise Terminated()


def os_error_message(exc: OSError) -> str:
    """One line for an operating-system error: what failed, on which path (no traceback)."""
    what = exc.strerror or exc.__class__.__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {what}" if paths else f"{what}: {exc}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Exit status 0 on success, 2 on bad input or an operating-system error (both printed as one
    line naming the file or parameter), 130 on SIGINT and 143 on SIGTERM.
    """
    parser = get_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(levelname)s %(name)s: %(message)s")
    from ..results import OnceFilter

    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    once = OnceFilter()
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:  # each distinct warning printed once per command, for this command only
        handler.addFilter(once)
    previous = None
    _MAIN_PID.append(os.getpid())
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (an embedding application): keep its handler
        previous = None
    try:
        return int(args._run(args) or 0)
    except LuDosimetryError as exc:
        print(f"ludosimetry {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ludosimetry {args.command}: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ludosimetry {args.command}: interrupted; no partial result was kept", file=sys.stderr)
        return 130
    except Terminated:
        print(f"ludosimetry {args.command}: terminated; no partial result was kept", file=sys.stderr)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        _MAIN_PID.pop()
        for handler in handlers:
            handler.removeFilter(once)


def progress_printer(prefix: str = ""):
    """A ``progress(fraction, message)`` callback printing to stderr when the stage (the text before
    the first colon) changes or the fraction has advanced by 5 % since the last line."""
    last = {"stage": None, "fraction": -1.0}

    def _progress(fraction: float, message: str) -> None:
        stage = message.split(":")[0]
        if stage != last["stage"] or fraction - last["fraction"] >= 0.05 or fraction >= 1.0:
            last.update(stage=stage, fraction=fraction)
            print(f"{prefix}[{fraction * 100:5.1f} %] {message}", file=sys.stderr, flush=True)

    return _progress


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
