"""Run one measurement in its own process tree and read back its time, CPU and peak memory.

Why a process per measurement: ``ru_maxrss`` only ever grows, so a peak measured inside one long
benchmark process would be the largest of everything that ran before. Each measurement is a fresh
child; the parent reaps it with :func:`os.wait4`, whose resource usage covers the child and every
descendant it waited for (plaso's worker processes, inboxtrail's parse pool). ``ru_maxrss`` there
is the peak of the largest single process of that tree, not the sum of the tree.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def own_peak_rss_mib() -> int:
    """This process's own peak RSS in MiB.

    Linux carries ``ru_maxrss`` across ``execve``: a child forked from a 700 MiB test runner
    starts with a 700 MiB "peak". ``VmHWM`` in ``/proc/self/status`` belongs to the current
    address space only, so it is the honest number where it exists.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) >> 10
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10


@dataclass
class Measurement:
    """What one child process cost, and what it reported about its own work."""

    argv: list[str]
    returncode: int
    wall: float
    user: float
    system: float
    peak_mib: float
    load_before: float
    load_after: float
    #: The JSON object a workload child prints on its last stdout line ({} for external tools).
    report: dict[str, Any] = field(default_factory=dict)
    stderr_tail: str = ""

    @property
    def cpu(self) -> float:
        """User + system CPU seconds of the whole process tree."""
        return self.user + self.system

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cpu": self.cpu}


class MeasurementError(RuntimeError):
    """A measured command failed; the message carries the end of its stderr."""


def run(argv: list[str], cwd: str | Path | None = None, timeout: float = 3600,
        env: dict[str, str] | None = None, check: bool = True) -> Measurement:
    """Run ``argv`` to completion and measure it (wall, CPU of the tree, peak RSS, load average)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        # stdout/stderr go to files, not pipes: communicate() would reap the child itself and the
        # rusage that only wait4 returns would be lost.
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
        timer = threading.Timer(timeout, _kill_group, (proc.pid,))
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C or SIGTERM of the bench: the measured tree goes too
            _kill_group(proc.pid)
            os.waitpid(proc.pid, 0)
            proc.returncode = -1
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        load_after = os.getloadavg()[0]
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    report: dict[str, Any] = {}
    lines = stdout.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        try:
            report = json.loads(lines[-1])
        except json.JSONDecodeError:
            report = {}
    measurement = Measurement(argv=[str(a) for a in argv], returncode=proc.returncode, wall=wall,
                              user=usage.ru_utime, system=usage.ru_stime,
                              peak_mib=usage.ru_maxrss / 1024, load_before=load_before,
                              load_after=load_after, report=report, stderr_tail=stderr[-2000:])
    if check and proc.returncode != 0:
        raise MeasurementError(f"{' '.join(measurement.argv)} exited {proc.returncode}:\n"
                               f"{measurement.stderr_tail}")
    return measurement


def _kill_group(pid: int) -> None:
    """Timeout: end the measured process group (started by us, in its own session)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
