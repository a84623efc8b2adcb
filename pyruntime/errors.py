"""Exception types. The message of each is the single line a user (or engine) sees."""


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
