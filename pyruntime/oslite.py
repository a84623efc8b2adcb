"""The part of `os` the commands use, without importing `os`.

`import os` costs ~1 ms of CPU on every command (`python -IS -c 'import os'` 6.1 ms
against 5.2 ms for `import posix`: its `_collections_abc` and `posixpath`), ~6% of a
`run`, and the runtime needs little of it: the system calls are `posix`'s own, and the
path helpers are in oslite_path. Modules import this as `os`; a name that is not here is
taken from the real `os` on first use (a module __getattr__), so a rare path behaves as
before and only pays the import. tests/test_oslite.py compares every helper with `os`."""

import sys
from posix import *  # noqa: F401,F403  the system calls and their constants, as os has them
from posix import _exit, environ as _benviron, fspath  # noqa: F401

from . import oslite_path as path  # noqa: F401

SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
sep = "/"
curdir = "."
pardir = ".."
devnull = "/dev/null"
error = OSError

_ENC = sys.getfilesystemencoding()
_ERRS = sys.getfilesystemencodeerrors()


def __getattr__(name):
    import os
    return getattr(os, name)


def fsencode(filename):
    filename = fspath(filename)
    return filename.encode(_ENC, _ERRS) if isinstance(filename, str) else filename


def fsdecode(filename):
    filename = fspath(filename)
    return filename.decode(_ENC, _ERRS) if isinstance(filename, bytes) else filename


class _Environ:
    """os.environ's str view of the process environment, for the methods the runtime
    uses. A change is made with putenv/unsetenv and also in posix.environ, which the real
    `os` copies when it is imported; from then on the real os.environ is the one truth."""

    def __init__(self):
        self._d = {k.decode(_ENC, _ERRS): v.decode(_ENC, _ERRS) for k, v in _benviron.items()}

    def _real(self):
        os = sys.modules.get("os")
        return os.environ if os is not None else None

    def __getitem__(self, key):
        r = self._real()
        return r[key] if r is not None else self._d[key]

    def get(self, key, default=None):
        r = self._real()
        return r.get(key, default) if r is not None else self._d.get(key, default)

    def __contains__(self, key):
        r = self._real()
        return key in (r if r is not None else self._d)

    def __iter__(self):
        r = self._real()
        return iter(list(r if r is not None else self._d))

    def __len__(self):
        r = self._real()
        return len(r if r is not None else self._d)

    def keys(self):
        return list(self)

    def items(self):
        r = self._real()
        return list((r if r is not None else self._d).items())

    def values(self):
        return [v for _k, v in self.items()]

    def copy(self):
        return dict(self.items())

    def __setitem__(self, key, value):
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("str expected, not %s" % type(value if isinstance(key, str) else key).__name__)
        r = self._real()
        if r is not None:
            r[key] = value
            return
        k, v = fsencode(key), fsencode(value)
        putenv(k, v)  # noqa: F405
        _benviron[k] = v
        self._d[key] = value

    def __delitem__(self, key):
        r = self._real()
        if r is not None:
            del r[key]
            return
        value = self._d[key]  # KeyError first, as os.environ
        k = fsencode(key)
        unsetenv(k)  # noqa: F405
        _benviron.pop(k, None)
        del self._d[key]
        return value

    _MISSING = object()

    def pop(self, key, default=_MISSING):
        try:
            value = self[key]
        except KeyError:
            if default is self._MISSING:
                raise
            return default
        del self[key]
        return value

    def setdefault(self, key, value):
        if key not in self:
            self[key] = value
        return self[key]

    def update(self, other=(), **kw):
        for k, v in (other.items() if hasattr(other, "items") else other):
            self[k] = v
        for k, v in kw.items():
            self[k] = v

    def __repr__(self):
        return "environ(%r)" % (dict(self.items()),)


environ = _Environ()


def makedirs(name, mode=0o777, exist_ok=False):
    """os.makedirs: the dirs above name are made with the default mode, as os does."""
    head, tail = path.split(name)
    if not tail:
        head, tail = path.split(head)
    if head and tail and not path.exists(head):
        try:
            makedirs(head, exist_ok=exist_ok)
        except FileExistsError:
            pass  # made meanwhile by someone else
        if tail == curdir:
            return
    try:
        mkdir(name, mode)  # noqa: F405
    except OSError:
        if not exist_ok or not path.isdir(name):
            raise


def walk(top, topdown=True, onerror=None, followlinks=False):
    """os.walk: (dirpath, dirnames, filenames) for top and every dir below it."""
    top = fspath(top)
    stack = [top]
    while stack:
        top = stack.pop()
        if isinstance(top, tuple):  # a dir's own entry, after its children (bottom-up)
            yield top
            continue
        dirs, nondirs, walk_into = [], [], []
        try:
            entries = list(scandir(top))  # noqa: F405
        except OSError as e:
            if onerror is not None:
                onerror(e)
            continue
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            (dirs if is_dir else nondirs).append(entry.name)
            if is_dir and not topdown:
                try:
                    if followlinks or not entry.is_symlink():
                        walk_into.append(entry.path)
                except OSError:
                    pass
        if topdown:
            yield top, dirs, nondirs
            # the caller may prune dirs; a symlink to a dir is listed, never entered
            for d in reversed(dirs):
                p = path.join(top, d)
                if followlinks or not path.islink(p):
                    stack.append(p)
        else:
            stack.append((top, dirs, nondirs))
            for p in reversed(walk_into):
                stack.append(p)
