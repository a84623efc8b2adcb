"""cffi builder for pyruntime._executor (API mode). Run by setup.py's cffi_modules."""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

ffibuilder = FFI()

# The cdef is the header minus preprocessor lines cffi cannot parse.
with open(os.path.join(HERE, "executor.h")) as f:
    cdef = "\n".join(l for l in f.read().splitlines()
                     if not l.startswith("#") and "PYRT_STAGE_ERROR" not in l)
ffibuilder.cdef(cdef + "\n#define PYRT_STAGE_ERROR -1000000\n")
ffibuilder.set_source(
    "pyruntime._executor",
    '#include "executor.h"',
    sources=[os.path.relpath(os.path.join(HERE, "executor.c"))],
    include_dirs=[HERE],
    extra_compile_args=["-O2", "-Wall", "-Wno-unused-result"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
