import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc"))
import stub_build  # noqa: E402

# The C executor and the libseccomp binding are separate extension modules so
# that commands which never load a filter do not pay for importing it. The init stub
# (the executor as a static program) is built with them.
setup(
    cffi_modules=[
        "csrc/executor_build.py:ffibuilder",
        "csrc/seccomp_build.py:ffibuilder",
    ],
    cmdclass={"build_ext": stub_build.build_ext_class(build_ext)},
)
