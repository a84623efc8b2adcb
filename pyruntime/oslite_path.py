"""os.path for str paths without importing `os` (see oslite). Same results as posixpath;
anything else (bytes or path-like arguments, a name not here) is posixpath's own.

realpath asks the kernel: open the path with O_PATH and read the link /proc/self/fd
shows for it, three system calls where posixpath lstat()s every component. The kernel's
answer is the resolution that every later open of that path gets. A path that does not
resolve (a missing component, a loop, no /proc) is posixpath's, whose non-strict rules
for missing components are its own."""

from posix import (O_CLOEXEC, O_PATH, _path_normpath, close, getcwd, lstat, open,
                   readlink, stat)

_S_IFMT, _S_IFDIR, _S_IFLNK, _S_IFREG = 0o170000, 0o040000, 0o120000, 0o100000


def __getattr__(name):
    import posixpath
    return getattr(posixpath, name)


def _posix():
    import posixpath
    return posixpath


def join(a, *p):
    if type(a) is not str:
        return _posix().join(a, *p)
    path = a
    for b in p:
        if type(b) is not str:
            return _posix().join(a, *p)
        if b.startswith("/"):
            path = b
        elif not path or path.endswith("/"):
            path += b
        else:
            path += "/" + b
    return path


def split(p):
    if type(p) is not str:
        return _posix().split(p)
    i = p.rfind("/") + 1
    head, tail = p[:i], p[i:]
    if head and head != "/" * len(head):
        head = head.rstrip("/")
    return head, tail


def dirname(p):
    return split(p)[0]


def basename(p):
    if type(p) is not str:
        return _posix().basename(p)
    return p[p.rfind("/") + 1:]


def isabs(p):
    if type(p) is not str:
        return _posix().isabs(p)
    return p.startswith("/")


def normpath(p):
    if type(p) is not str:
        return _posix().normpath(p)
    return _path_normpath(p) or "."


def abspath(p):
    if type(p) is not str:
        return _posix().abspath(p)
    if not p.startswith("/"):
        p = join(getcwd(), p)
    return normpath(p)


def _mode(p, follow=True):
    try:
        return (stat(p) if follow else lstat(p)).st_mode & _S_IFMT
    except (OSError, ValueError):
        return None


def exists(p):
    if type(p) is not str:
        return _posix().exists(p)
    return _mode(p) is not None


def isdir(p):
    if type(p) is not str:
        return _posix().isdir(p)
    return _mode(p) == _S_IFDIR


def isfile(p):
    if type(p) is not str:
        return _posix().isfile(p)
    return _mode(p) == _S_IFREG


def islink(p):
    if type(p) is not str:
        return _posix().islink(p)
    return _mode(p, follow=False) == _S_IFLNK


def lexists(p):
    if type(p) is not str:
        return _posix().lexists(p)
    return _mode(p, follow=False) is not None


def relpath(p, start=None):
    if type(p) is not str or (start is not None and type(start) is not str) or not p:
        return _posix().relpath(p, start)
    start_list = [x for x in abspath(start or ".").split("/") if x]
    path_list = [x for x in abspath(p).split("/") if x]
    i = 0
    while i < min(len(start_list), len(path_list)) and start_list[i] == path_list[i]:
        i += 1
    rel = [".."] * (len(start_list) - i) + path_list[i:]
    return join(*rel) if rel else "."


def realpath(p, *, strict=False):
    if type(p) is str and p and "\0" not in p:
        try:
            fd = open(p, O_PATH | O_CLOEXEC)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                r = readlink("/proc/self/fd/%d" % fd)
            except OSError:
                r = ""
            finally:
                close(fd)
            # what is not a path from our root ("pipe:[..]", a file deleted meanwhile)
            # is left to posixpath
            if r.startswith("/") and not r.endswith(" (deleted)"):
                return r
    return _posix().realpath(p, strict=strict)
