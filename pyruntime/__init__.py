"""pyruntime: an OCI container runtime, a drop-in replacement for runc.

The library API lives in :mod:`pyruntime.api`; it is imported lazily so that the
command-line entry point stays cheap::

    import pyruntime
    rt = pyruntime.Runtime("/run/pyruntime")
    rt.create("c1", "/path/to/bundle")
    rt.start("c1")
    print(rt.state("c1"))
    rt.kill("c1", "SIGKILL")
    rt.delete("c1")
"""

__version__ = "0.1.0"
OCI_VERSION = "1.3.0"
DEFAULT_ROOT = "/run/pyruntime"  # state root of Runtime() and of the CLI run by root


def default_root():
    """The CLI's state root without --root: $XDG_RUNTIME_DIR/pyruntime for a non-root user
    who has one (rootless engines), else DEFAULT_ROOT."""
    from . import oslite as os
    if os.geteuid() != 0 and os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "pyruntime")
    return DEFAULT_ROOT

__all__ = ["Runtime", "RuntimeErr", "__version__", "OCI_VERSION"]


def __getattr__(name):
    if name == "Runtime":
        from .api import Runtime
        return Runtime
    if name == "RuntimeErr":
        from .errors import RuntimeErr
        return RuntimeErr
    raise AttributeError(name)
