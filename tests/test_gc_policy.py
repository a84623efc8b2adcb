"""The CLI runs without the cyclic GC (cli.entry: a command lives milliseconds and exits
through os._exit); whatever waits as long as a container turns it back on."""
import gc
import os
import subprocess
import sys

from pyruntime import stdio


def test_cli_entry_runs_without_gc(tmp_path):
    # entry() exits through os._exit: main() is replaced to report what it sees
    code = ("import gc, sys\n"
            "import pyruntime.cli as cli\n"
            "cli.main = lambda: print('gc', gc.isenabled()) or 0\n"
            "cli.entry()\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=30, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert p.returncode == 0, p.stderr
    assert p.stdout == "gc False\n"


def test_relay_turns_gc_back_on():
    child = subprocess.Popen(["sleep", "0"])
    gc.disable()
    try:
        before = gc.get_freeze_count()
        fd = stdio.watch(child.pid)
        assert gc.isenabled()
        # what the command made is frozen, not walked by the first collection
        assert gc.get_freeze_count() > before
        if fd >= 0:
            os.close(fd)
    finally:
        gc.unfreeze()
        gc.enable()
        child.wait()


def test_relay_leaves_a_library_callers_gc_alone():
    child = subprocess.Popen(["sleep", "0"])
    assert gc.isenabled()
    try:
        fd = stdio.watch(child.pid)
        assert gc.isenabled() and gc.get_freeze_count() == 0
        if fd >= 0:
            os.close(fd)
    finally:
        child.wait()
