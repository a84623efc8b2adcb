"""Builds the init stub (pyruntime/_pyrt_init): the executor linked statically with a
main(), exec'd from a sealed memfd copy by every spawn (see "the init stub" in
csrc/executor.c). setup.py runs it as part of build_ext, so wheels and editable installs
carry it next to the _executor module."""
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "_pyrt_init"


def build(out_path, cc=None):
    cc = cc or os.environ.get("CC") or "gcc"
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    tmp = out_path + ".tmp"
    cmd = [cc, "-static", "-Os", "-Wall", "-Wno-unused-result", "-I", HERE,
           "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections", "-s",
           "-o", tmp, os.path.join(HERE, "stub_main.c"), os.path.join(HERE, "executor.c")]
    subprocess.check_call(cmd)
    os.chmod(tmp, 0o755)
    os.replace(tmp, out_path)
    return out_path


def build_ext_class(base):
    class build_ext_with_stub(base):
        def run(self):
            super().run()
            out = build(os.path.join(self.build_lib, "pyruntime", NAME))
            if self.inplace or getattr(self, "editable_mode", False):
                src = os.path.join(os.path.dirname(HERE), "pyruntime", NAME)
                if os.path.abspath(src) != os.path.abspath(out):
                    build(src)

        def get_outputs(self):
            return super().get_outputs() + [os.path.join(self.build_lib, "pyruntime", NAME)]
    return build_ext_with_stub
