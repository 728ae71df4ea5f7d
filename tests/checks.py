"""checks.py: what the Python end-to-end tests share: running the trainer binary their
command line names (argv[1]) and counting checks, one line per check (ok or FAIL)."""
import os
import shutil
import subprocess
import sys

TRAINER = os.path.abspath(sys.argv[1])
failures = 0
# mpirun as root, and more ranks than this machine's cores
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")


def launch(np_):
    """The command that starts the trainer on np_ ranks: itself alone for one, else under
    mpirun, oversubscribed and unbound."""
    return [TRAINER] if np_ == 1 else ["mpirun", "-np", str(np_), "--oversubscribe", "--bind-to", "none", TRAINER]


def trainer(*args, env=None, timeout=600):
    """The trainer with these arguments (and extra environment), its output captured."""
    return subprocess.run([TRAINER] + list(args), capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def check(name, ok, detail=""):
    """Prints and counts one check; detail is shown when it fails. Returns ok."""
    global failures
    print(("ok   " if ok else "FAIL ") + name + (f" ({detail})" if detail and not ok else ""), flush=True)
    failures += 0 if ok else 1
    return ok


def finish(work=None):
    """The test's last line and exit status; `work` (a directory) is removed when every check
    passed, and kept and named when one failed."""
    if work:
        if failures == 0:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"files kept in {work}")
    print("all passed" if not failures else f"{failures} FAILED")
    sys.exit(1 if failures else 0)
