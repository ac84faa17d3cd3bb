"""What oomlab trusts on disk, in one place. oomlab runs as root, so a directory another user can
write is never a place to import code from, follow a symlink in, or act on a lease found there:
that user could plant a file or swap one between our check and our use.

A directory is trusted when it and every directory above it belong to this user or root, and none
of them can be written by group or others (a sticky ancestor such as /tmp is allowed above it, since
nobody can rename what they do not own there; a sticky directory itself never is). Files in trusted
places are still opened with O_NOFOLLOW, and new ones created with O_EXCL and mode 0600.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from oomlab.errors import BadInput, NoPermission, ResultsUnwritable

PRIVATE_UMASK = 0o077  # results, leases and shares: 0700 directories, 0600 files
UMASK_ENV = "OOMLAB_UMASK"  # e.g. 022 to create results others may read (see docs/security.md)


def trusted_uids() -> set[int]:
    """Root, this user, and under sudo the user who ran sudo (who could run anything as root anyway)."""
    uids = {0, os.geteuid()}
    if os.environ.get("SUDO_UID", "").isdigit():
        uids.add(int(os.environ["SUDO_UID"]))
    return uids


def _owner_ok(st: os.stat_result) -> bool:
    return st.st_uid in trusted_uids()


def _others_can_write(st: os.stat_result) -> bool:
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def untrusted_reason(path: str) -> str | None:
    """Why `path` (a directory) is not trusted, or None when it is.

    Every component is looked at as the kernel will walk it, with lstat: a symlink on the way is
    followed only when it belongs to a trusted user (nobody else can swap it: the directory holding
    it was checked first), and then every directory of its target is checked in turn. A link in
    another user's world-writable folder therefore never makes a trusted directory pass."""
    pending = _components(path if os.path.isabs(path) else os.path.join(os.getcwd(), path))
    real, links = "/", 0
    if reason := _ancestor_reason(real):
        return reason
    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            real = os.path.dirname(real)
            continue
        here = os.path.join(real, name)
        try:
            st = os.lstat(here)
        except OSError as exc:
            return f"{here} cannot be read ({exc.strerror})" if pending else f"it cannot be read ({exc.strerror})"
        if stat.S_ISLNK(st.st_mode):
            if not pending:
                return "it is a symbolic link"
            links += 1
            if not _owner_ok(st) or links > 40:
                return f"the symbolic link {here} above it belongs to uid {st.st_uid}"
            target = os.readlink(here)
            real = "/" if os.path.isabs(target) else real
            pending = _components(target) + pending
            continue
        if not pending:
            return _reason(st, stat.S_ISDIR, "a directory")
        if reason := _ancestor_reason(here, st):
            return reason
        real = here
    return _reason(os.lstat(real), stat.S_ISDIR, "a directory")


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def _ancestor_reason(path: str, st: os.stat_result | None = None) -> str | None:
    """A directory above a trusted one: ours or root's, and nobody else may rename what is in it
    (not writable by others, or sticky)."""
    st = st or os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} above it is not a directory"
    if not _owner_ok(st):
        return f"{path} above it belongs to uid {st.st_uid}"
    if _others_can_write(st) and not st.st_mode & stat.S_ISVTX:
        return f"other users can write to {path} above it (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def untrusted_file_reason(st: os.stat_result) -> str | None:
    """Why a file (its lstat or fstat) is not trusted, or None when it is."""
    return _reason(st, stat.S_ISREG, "a regular file")


def _reason(st: os.stat_result, is_kind: Callable[[int], bool], kind: str) -> str | None:
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link"
    if not is_kind(st.st_mode):
        return f"it is not {kind}"
    if not _owner_ok(st):
        return f"it belongs to uid {st.st_uid}, not to this user or root"
    if _others_can_write(st):
        return f"other users can write to it (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _sticky_parent(path: str) -> bool:
    """A directory others may write to but whose entries only their owners can rename or remove
    (sticky, root's or ours), below trusted directories: a safe place to make a directory of ours."""
    st = os.lstat(path)
    return (
        stat.S_ISDIR(st.st_mode)
        and bool(st.st_mode & stat.S_ISVTX)
        and _ancestor_reason(path, st) is None
        and (path == "/" or untrusted_reason(os.path.dirname(path)) is None)
    )


def is_trusted_dir(path: str) -> bool:
    return untrusted_reason(path) is None


def temp_dir() -> str:
    """The temporary directory (TMPDIR, else /tmp) for the directories oomlab makes there, or
    NoPermission (exit 3): a sticky one like /tmp, where nobody can rename what is ours, or one only
    we or root can write. In one another user can write without the sticky bit, they could move a
    new directory of ours away and put theirs in its place (a worker would import from it)."""
    path = tempfile.gettempdir()
    if untrusted_reason(path) is not None and not _sticky_parent(path):
        check_trusted_dir(path, "temporary directory (TMPDIR)")
    return path


_IMPORT_WALK_LIMIT = 50_000  # files and folders of one package looked at before giving up


def app_top_name(app_ref: str) -> str:
    """The top-level module Python imports first for a Celery app reference ("proj.celery:app" → "proj")."""
    return app_ref.partition(":")[0].split(".")[0]


def untrusted_import_reason(folder: str, top: str) -> str | None:
    """Why importing the top-level name `top` with `folder` on sys.path could run what another user
    wrote, or None. `folder` itself is checked by the caller; a trusted folder can still hold another
    user's package (a checkout in /srv, a home in /home: `--app mallory` from /home imports
    /home/mallory/celery.py as a namespace package). So every entry named `top` or `top.*` there, and
    every file and folder inside a package, must be trusted too. An entry removed while it is looked at
    (a deploy at that moment) is passed over: only a trusted user could have removed it, and it is not
    there to import."""
    try:
        names = [n for n in os.listdir(folder) if n == top or n.startswith(f"{top}.")]
    except OSError:
        return None
    seen = 0
    for name in names:
        path = os.path.join(folder, name)
        if (st := _lstat(path)) is None:
            continue
        if not stat.S_ISDIR(st.st_mode):
            if reason := untrusted_file_reason(st):
                return f"{path}: {reason}"
            continue
        if reason := untrusted_reason(path):
            return f"{path}: {reason}"
        for directory, dirs, files in os.walk(path):
            for entry in dirs + files:
                seen += 1
                if seen > _IMPORT_WALK_LIMIT:
                    return f"{path} holds more than {_IMPORT_WALK_LIMIT:,} files and folders to check"
                inner = os.path.join(directory, entry)
                if (entry_st := _lstat(inner)) is None:
                    continue
                kind = (stat.S_ISDIR, "a directory") if entry in dirs else (stat.S_ISREG, "a regular file")
                if reason := _reason(entry_st, *kind):
                    return f"{inner}: {reason}"
    return None


def _lstat(path: str) -> os.stat_result | None:
    """lstat, or None for an entry gone since its folder was listed."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def check_importable(folder: str, app_ref: str, what: str) -> None:
    """NoPermission (exit 3) when importing the app `app_ref` names from `folder` could run another
    user's code."""
    if reason := untrusted_import_reason(folder, app_top_name(app_ref)):
        raise NoPermission(f"refusing to import {what} from {folder}: {reason}")


def check_trusted_dir(path: str, what: str) -> str:
    """`path` made absolute, or NoPermission (exit 3) naming `what` it is for and why it is refused."""
    reason = untrusted_reason(path)
    if reason is not None:
        raise NoPermission(
            f"refusing the {what} {path}: {reason}; use a directory only you (or root) can write, mode 0700"
        )
    return os.path.abspath(path)


def private_dir(path: str, what: str) -> str:
    """A directory of ours: made 0700 when missing (make_dirs), refused (NoPermission) when someone
    else could write to it. Returns its absolute path."""
    try:
        make_dirs(path, what, 0o700)
    except OSError as exc:
        raise NoPermission(f"cannot create the {what} {path}: {exc.strerror}") from None
    return check_trusted_dir(path, what)


def make_dirs(path: str, what: str, mode: int = 0o777) -> bool:
    """os.makedirs that never creates through another user's links: the nearest directory that
    exists is checked trusted first (NoPermission otherwise, nothing made), then each missing level
    is made with mkdir relative to its parent's fd, opened with O_NOFOLLOW, so a link planted
    between two steps is refused, not followed. Whether anything was made.

    The nearest directory may also be a sticky one of root's such as /tmp (a user's
    /tmp/oomlab-UID/...): nobody else can rename or remove an entry there, and each level opened is
    checked to be ours, so one another user made first is refused, not used."""
    path = os.path.abspath(path)
    missing: list[str] = []
    existing = path
    while not os.path.lexists(existing):
        missing.insert(0, os.path.basename(existing))
        existing = os.path.dirname(existing)
    if not (missing and _sticky_parent(existing)):
        check_trusted_dir(existing, what)
    fd = os.open(existing, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for name in missing:
            try:
                os.mkdir(name, mode, dir_fd=fd)
            except FileExistsError:  # made meanwhile: opened below only if it is a directory, not a link
                pass
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = child
            if reason := _ancestor_reason(os.path.join(existing, name), os.fstat(fd)):
                raise NoPermission(f"refusing the {what} {path}: {reason}")
            existing = os.path.join(existing, name)
    finally:
        os.close(fd)
    return bool(missing)


class RefusedLink(OSError):
    """A symbolic link where oomlab expected a file (O_NOFOLLOW's ELOOP)."""


def nofollow_opener(path: str, flags: int) -> int:
    """An `opener` for open(): RefusedLink when the file itself is a symlink; a file it creates is 0600."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RefusedLink(errno.ELOOP, "a symbolic link, not followed", path) from None
        raise


def open_nofollow(path: str, mode: str = "r", **kwargs):
    """open() that refuses a symlink as the file itself (RefusedLink)."""
    return open(path, mode, opener=nofollow_opener, **kwargs)


def create_private(path: str) -> int:
    """A new, empty 0600 file at `path` for this process alone, as an fd: whatever was there (a file
    or a planted symlink) is unlinked first, never written through."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def open_in_dir(path: str, mode: str = "r", **kwargs):
    """open() for a file in a directory oomlab writes (a run directory): the directory opened with
    O_DIRECTORY | O_NOFOLLOW, the file relative to that fd with O_NOFOLLOW (RefusedLink when either is
    a symlink); a file it creates gets 0666 less the umask (private unless OOMLAB_UMASK says so)."""
    directory = os.path.dirname(path) or "."
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(directory):
            raise RefusedLink(errno.ELOOP, "a symbolic link, not followed", directory) from None
        raise

    def opener(name: str, flags: int) -> int:
        try:
            return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RefusedLink(errno.ELOOP, "a symbolic link, not followed", path) from None
            raise

    try:
        return open(os.path.basename(path), mode, opener=opener, **kwargs)
    finally:
        os.close(dir_fd)


RESULTS_GITIGNORE = "*\n"


class RunDirectory:
    """The rule every writer of a run directory follows, in one place. Its results directory, and
    every directory above, is one nobody else can write (else they could swap the run directory for a
    tree of symlinks mid-run); the run directory is made new (mkdir fails on anything already there),
    0700 unless OOMLAB_UMASK opens it to reading; its files are opened relative to it with O_NOFOLLOW (open_in_dir) and replaced through
    new O_EXCL temporary files (write_private_atomic). A directory oomlab did not make this run (the
    one `oomlab report` or `gate --current` is given) is written to only when it passes the same check."""

    @staticmethod
    def create(path: str) -> str:
        """The run directory made new; a results directory oomlab makes for it gets a `.gitignore` of
        its own (`*`), so run records (the app's arguments and settings) are never committed by a
        `git add -A`. One the user made is left as it is."""
        results = os.path.dirname(os.path.abspath(path))
        made = make_dirs(results, "results directory")  # nothing made through another user's links
        check_trusted_dir(results, "results directory")
        if made:
            ignore = os.open(
                os.path.join(results, ".gitignore"), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644
            )
            with os.fdopen(ignore, "w") as handle:
                handle.write(RESULTS_GITIGNORE)
        os.mkdir(path, 0o777 & ~results_umask())
        return path

    @staticmethod
    def for_writing(path: str, what: str = "run directory") -> str:
        """`path` when oomlab may write into it (NoPermission, exit 3, otherwise)."""
        return check_trusted_dir(path, what)


def results_umask() -> int:
    """The umask runs work under: private unless OOMLAB_UMASK (octal) says otherwise."""
    configured = os.environ.get(UMASK_ENV)
    if not configured:
        return PRIVATE_UMASK
    try:
        value = int(configured, 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o777:
        raise BadInput(f"{UMASK_ENV}={configured!r} is not an octal umask such as 077 or 022")
    if value & 0o022 != 0o022:  # a group- or world-writable run directory is one another user can swap files in
        raise BadInput(
            f"{UMASK_ENV}={configured} would let other users write into run directories; "
            f"use 022 (others may read) or 027 (the group may read)"
        )
    return value


def apply_results_umask() -> None:
    """Everything this process and its workers create (run directories, records, logs) follows it."""
    os.umask(results_umask())


def write_private_atomic(path: str, text: str, mode: int = 0o600) -> None:
    """Write + rename through a new temporary file (O_EXCL, a random name: nothing planted beside
    `path` is written through; a symlink at `path` itself is replaced, not followed)."""
    with replaced_atomically(path, mode) as handle:
        handle.write(text.encode())


@contextmanager
def replaced_atomically(path: str, mode: int = 0o600) -> Iterator[BinaryIO]:
    """A new temporary file beside `path`, as a binary file object for the block to write (a library
    such as pyarrow is handed the object, never a name): made with a random name and O_EXCL, so
    nothing planted beside `path` (a `path.partial` symlink) is written through; renamed onto `path`
    when the block ends, removed when it raises."""
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            yield handle
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def open_append(path: str, what: str):
    """A text file oomlab appends to (`gate --markdown PATH`, $GITHUB_STEP_SUMMARY), opened with
    O_NOFOLLOW (a link is refused, never followed) and without blocking (a FIFO is refused), then
    checked on its fd: a regular file of this user's or root's, with no other hard link (one another
    user made to root's file), and not writable by others unless its directory is trusted.
    NoPermission (exit 3) otherwise; a file that cannot be opened is ResultsUnwritable (exit 10)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:  # a link is ELOOP, or EACCES when another user's sits in a sticky directory
        if (exc.errno in (errno.ELOOP, errno.EACCES) and os.path.islink(path)) or exc.errno == errno.ENXIO:
            kind = "it is not a regular file" if exc.errno == errno.ENXIO else "it is a symbolic link"
            raise NoPermission(f"refusing to append to the {what} {path}: {kind}") from None
        raise ResultsUnwritable(f"cannot write {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    reason: str | None = _reason(st, stat.S_ISREG, "a regular file")
    if reason and reason.startswith("other users can write") and is_trusted_dir(os.path.dirname(os.path.abspath(path))):
        reason = None  # a group-writable summary file in a directory nobody else can change
    if reason is None and st.st_nlink > 1:
        reason = f"it has {st.st_nlink} hard links"
    if reason:
        os.close(fd)
        raise NoPermission(f"refusing to append to the {what} {path}: {reason}")
    return os.fdopen(fd, "a")


def output_dir(path: str, what: str) -> str:
    """The directory a file a user names (`--parquet OUT`, `--junit PATH`) is written into, when oomlab
    may write there (NoPermission, exit 3, otherwise): in one another user can write, they could swap
    the file, or what is beside it, for a link to root's files between our check and our write. A
    directory that is not there is ResultsUnwritable (exit 10), as the write itself would be."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ResultsUnwritable(f"cannot write {path}: its directory {directory} does not exist")
    return check_trusted_dir(directory, what)


def import_env() -> dict[str, str]:
    """The environment a Python process oomlab starts (a worker, the janitor) imports by: nothing
    added to PYTHONPATH (oomlab is installed; a directory there would come before the standard
    library, and a generic top-level name in it would shadow one), and PYTHONSAFEPATH so `python -m`
    does not put the working directory first either. The user's own app module's directory is
    added by the worker itself, after the standard library (oomlab.worker.app)."""
    return {"PYTHONSAFEPATH": "1"}


def private_workdir(parent: str | None = None) -> str:
    """A new, empty 0700 directory a process oomlab starts works in: Celery's find_app puts the working
    directory first on sys.path whatever PYTHONSAFEPATH says, so it must be one nobody else can
    write and that holds nothing. The caller removes it at the end."""
    return tempfile.mkdtemp(prefix="oomlab-cwd-", dir=parent or temp_dir())


def python_argv(*args: str) -> list[str]:
    """The command line of every child Python oomlab starts (`-m module ...` or `-c code`): -P keeps
    the working directory (and a script's folder) off the front of its sys.path, so a `pip/` or
    `memray/` planted where oomlab was started never runs as root. The one use of sys.executable."""
    return [sys.executable, "-P", *args]


def run_python(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    """A child Python run to its end (subprocess.run's keywords) in a new, empty 0700 working
    directory, removed afterwards, with PYTHONSAFEPATH=1 for anything it starts in turn."""
    with tempfile.TemporaryDirectory(prefix="oomlab-cwd-", dir=temp_dir()) as cwd:
        return subprocess.run(python_argv(*args), cwd=cwd, env={**(env or os.environ), **import_env()}, **kwargs)


def start_python(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    """A child Python that outlives this call (the queue janitor): it works in `/`, which only root
    can write (a private directory would have nobody left to remove it), with PYTHONSAFEPATH=1."""
    return subprocess.Popen(python_argv(*args), cwd="/", env={**(env or os.environ), **import_env()}, **kwargs)
