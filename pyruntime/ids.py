"""Container id validation, as strict as runc's."""
from .errors import RuntimeErr

# runc's [\w+-.]: ASCII letters, digits, underscore, plus, minus, dot (no regex: `re` is
# costly to import on every command)
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


class _IdMatcher:
    @staticmethod
    def match(s):
        return bool(s) and _ID_CHARS.issuperset(s)


_ID_RE = _IdMatcher()


def validate(cid):
    if cid == "":
        raise RuntimeErr("container id cannot be empty")  # runc's own message for it
    # runc rejects "." and ".." explicitly: they would resolve to the state root itself
    # (or its parent) and, through cgroup paths, to a hierarchy's root.
    if (not isinstance(cid, str) or not cid or cid in (".", "..")
            or len(cid) > 1024 or not _ID_RE.match(cid)):
        raise RuntimeErr("invalid container ID format")
    return cid
