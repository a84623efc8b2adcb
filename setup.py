from setuptools import setup

# The C executor and the libseccomp binding are separate extension modules so
# that commands which never load a filter do not pay for importing it.
setup(
    cffi_modules=[
        "csrc/executor_build.py:ffibuilder",
        "csrc/seccomp_build.py:ffibuilder",
    ],
)
