"""Container id validation, as strict as runc's."""
import re

from .errors import RuntimeErr

_ID_RE = re.compile(r"[\w+\-.]+\Z", re.ASCII)


def validate(cid):
    # runc rejects "." and ".." explicitly: they would resolve to the state root itself
    # (or its parent) and, through cgroup paths, to a hierarchy's root.
    if (not isinstance(cid, str) or not cid or cid in (".", "..")
            or len(cid) > 1024 or not _ID_RE.match(cid)):
        raise RuntimeErr("invalid container ID format")
    return cid
