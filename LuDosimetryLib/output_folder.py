"""Output folders: the input guard, the writer's lock, and whole-or-nothing replacement.

Every command that writes a folder goes through :func:`atomic_directory`:

1. :func:`check_output_path` refuses an output that is, contains or lies inside one of the
   command's inputs (paths resolved, symlinks followed), with or without ``--force``, so
   ``ludosimetry run P --out P --force`` cannot delete the patient's images.
2. :class:`OutputLock` takes an exclusive lock on ``.NAME.lock`` beside the target (``flock``;
   ``msvcrt.locking`` on Windows). A second writer fails at once with an :class:`OutputBusyError`
   naming the holder's pid, host and command.
3. Under the lock, stale ``.NAME.partial-*`` and ``.NAME.old-*`` siblings left by killed
   writers are removed.
4. The result is built in a hidden sibling ``.NAME.partial-HOST-PID-XXXX`` and renamed into
   place. An existing folder (``--force``) is swapped atomically with the complete sibling
   (``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two renames) and then removed.

Folders and files get the modes an ordinary ``mkdir``/``open`` would give (``0777``/``0666``
less the umask).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as _dt
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import InputError

__all__ = ["current_umask", "check_output_path", "check_output_folder", "OutputBusyError", "OutputLock",
           "atomic_directory",
           "remove_stale_siblings"]


def current_umask() -> int:
    """The process's file-creation mask (read without changing it where the system allows)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc (macOS, Windows): read by setting and restoring
    os.umask(mask)
    return mask


def _as_created(path: str | Path, *, folder: bool = False) -> None:
    """Give a ``mkstemp``/``mkdtemp`` path (0600/0700) the mode an ordinary ``open``/``mkdir`` would."""
    with contextlib.suppress(OSError):
        os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


class OutputBusyError(InputError):
    """Another process is writing the same output folder (its lock is held)."""


def check_output_path(out: str | Path, inputs: Iterable[str | Path | None], *, option: str = "--out") -> None:
    """Refuse an output path that is, contains or lies inside any input path.

    Paths are resolved (symlinks followed, ``..`` removed) before they are compared, so a link
    to the patient folder is the patient folder.

    Parameters
    ----------
    out : path
        The output folder or file the command would write (and, with ``--force``, replace).
    inputs : iterable of path or None
        Every file or folder the command reads; ``None`` entries are skipped.
    option : str
        The option named in the message.

    Raises
    ------
    InputError
        Naming both paths and how they overlap.
    """
    o = Path(out).expanduser().resolve()
    for item in inputs:
        if item is None or str(item) == "":
            continue
        i = Path(item).expanduser().resolve()
        if o == i:
            how = "is the input"
        elif o in i.parents:
            how = "contains the input"
        elif i in o.parents:
            how = "lies inside the input"
        else:
            continue
        raise InputError(f"{how} {item}; writing it (or replacing it with --force) would change or delete the "
                         f"input: choose an output folder outside every input", source=f"{option} {out}")


def check_output_folder(out: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path | None] = (),
                        option: str = "--out") -> Path:
    """Check, before any work, that ``out`` can be written as a results folder; return it.

    Refuses an overlap with an input (:func:`check_output_path`), an existing file, an existing
    non-empty folder without ``overwrite``, and a parent that cannot be created or written.
    :func:`atomic_directory` calls it; a command whose work comes before its output calls it
    first, so that a long computation does not end in an unwritable folder.
    """
    dst = Path(out)
    check_output_path(dst, inputs, option=option)
    if dst.exists() and not dst.is_dir():
        raise InputError("exists and is not a folder", source=f"{option} {dst}")
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise InputError("output folder exists and is not empty (use --force to replace it)", source=str(dst))
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder {exc.filename or dst.parent}: {exc.strerror or exc}",
                         source=f"{option} {dst}") from None
    if not os.access(dst.parent, os.W_OK | os.X_OK):
        raise InputError(f"the folder {dst.parent} is not writable", source=f"{option} {dst}")
    return dst


def _host() -> str:
    return socket.gethostname().replace("-", "_") or "localhost"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - no os.kill(pid, 0) semantics there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process its parent has not reaped yet (a zombie) still answers signal 0
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def remove_stale_siblings(final: str | Path) -> list[Path]:
    """Remove hidden partial/old siblings of ``final`` whose writer is gone; return what was removed.

    Call only while holding :class:`OutputLock` on ``final``: then no live writer of this
    process family owns them. A partial of a live process on this host is kept.
    """
    dst = Path(final)
    removed: list[Path] = []
    if not dst.parent.is_dir():
        return removed
    host = _host()
    for p in dst.parent.iterdir():
        name = p.name
        for marker in (f".{dst.name}.partial-", f".{dst.name}.old-"):
            if not name.startswith(marker):
                continue
            parts = name[len(marker):].rsplit("-", 2)
            if len(parts) == 3 and parts[0] == host and parts[1].isdigit() and _pid_alive(int(parts[1])) \
                    and int(parts[1]) != os.getpid():
                break
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    p.unlink()
            removed.append(p)
            break
        else:  # the older naming: .NAME.XXXX.partial
            if name.startswith(f".{dst.name}.") and name.endswith(".partial") and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


class OutputLock:
    """An exclusive, non-blocking lock on ``.NAME.lock`` beside an output path.

    The lock file holds the holder's pid, host, command and start time (JSON). It is removed
    on release; a holder that dies releases the lock with its file descriptor.

    Parameters
    ----------
    target : path
        The output folder or file to be written.
    """

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)
        self.path = self.target.with_name(f".{self.target.name}.lock")
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        """Take the lock or raise :class:`OutputBusyError` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            if not _try_lock(fd):
                holder = _read_holder(fd)
                os.close(fd)
                raise OutputBusyError(f"another process is writing this output (lock {self.path.name} held by "
                                      f"{holder}); wait for it to finish or choose another --out",
                                      source=str(self.target))
            try:  # the file may have been unlinked by the previous holder between open and lock
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:500],
                        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps(info).encode("utf-8"))
                return self
            os.close(fd)
        raise OutputBusyError(f"could not take the lock {self.path.name}", source=str(self.target))

    def release(self) -> None:
        """Remove the lock file and release the lock."""
        if self._fd is None:
            return
        if sys.platform != "win32":
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(self._fd)
        self._fd = None
        if sys.platform == "win32":  # pragma: no cover
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode("utf-8"))
        return f"pid {info.get('pid')} on {info.get('host')} since {info.get('started')}: {info.get('command')}"
    except (OSError, ValueError, AttributeError):
        return "an unknown process"


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


@contextlib.contextmanager
def atomic_directory(final: str | Path, *, overwrite: bool = False,
                     inputs: Iterable[str | Path | None] = ()) -> Iterator[Path]:
    """Build a folder under a hidden sibling name and move it into place whole, under a lock.

    On an exception (or a signal turned into one) the partial folder is removed and ``final``
    is untouched; after a SIGKILL the hidden partial is removed by the next writer.

    Parameters
    ----------
    final : path
        The folder to create or (with ``overwrite``) replace.
    overwrite : bool
        Replace an existing non-empty ``final``; otherwise that raises :class:`InputError`.
    inputs : iterable of path
        The command's inputs: ``final`` must not be, contain or lie inside one
        (:func:`check_output_path`), whatever ``overwrite`` says.

    Yields
    ------
    Path
        The partial folder to write into.
    """
    dst = Path(final)
    check_output_folder(dst, overwrite=overwrite, inputs=inputs)
    with OutputLock(dst):
        remove_stale_siblings(dst)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.partial-{_host()}-{os.getpid()}-", dir=dst.parent))
        _as_created(tmp, folder=True)
        try:
            yield tmp
            if dst.exists() and any(dst.iterdir()) and not overwrite:
                raise InputError("output folder appeared while writing (use --force to replace it)",
                                 source=str(dst))
            if dst.exists() and _exchange(tmp, dst):
                shutil.rmtree(tmp, ignore_errors=True)  # now holds the previous content
            elif dst.exists():
                old = dst.with_name(f".{dst.name}.old-{_host()}-{os.getpid()}-0")
                os.replace(dst, old)
                os.replace(tmp, dst)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, dst)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


