"""Exception types. The message of each is the single line a user (or engine) sees."""
from . import oslite as os


def strerror(err):
    """Go-style (lower-case) error text, as runc prints it, of an errno or an OSError."""
    if isinstance(err, BaseException):
        s = err.strerror or str(err)
    else:
        s = os.strerror(err)
    return s[:1].lower() + s[1:] if s else s


class RuntimeErr(Exception):
    """Any failure of a runtime operation; str() is the one-line message."""


class ConfigError(RuntimeErr):
    """config.json is missing, unreadable or invalid."""


class NotExist(RuntimeErr):
    def __init__(self, msg="container does not exist"):
        super().__init__(msg)


class InvalidState(RuntimeErr):
    """The container is not in a state that allows the operation."""


class CgroupError(RuntimeErr):
    pass


class SeccompError(RuntimeErr):
    pass


class HookError(RuntimeErr):
    pass
