"""The process a call in the outbox belongs to, and whether it still runs: what
`recover_interrupted` asks before it makes a dead letter of a call."""

from __future__ import annotations

import functools
import os
import socket
import sys

from brace.recovery.deadletters._letter import Owner


_process: Owner | None = None


def this_process() -> Owner:
    """This process as an Owner (made again in a forked child: its pid differs)."""
    global _process
    if _process is None or _process.pid != os.getpid():
        pid = os.getpid()
        _process = Owner(socket.gethostname(), pid, _started(pid) or "")  # no /proc: ""
    return _process


def _started(pid: int) -> str | None:
    """When process pid started, as "<boot id>/<ticks since boot>"; "" for a zombie
    (it has ended); None when /proc does not tell (not Linux, or the entry is hidden)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()  # after the command name, which may hold spaces
    except OSError:
        return None
    # fields[0] is the state (field 3 of the file), fields[19] the start time (field 22).
    if len(fields) < 20:
        return None
    return "" if fields[0] in ("Z", "X") else f"{_boot_id()}/{fields[19]}"


@functools.cache
def _boot_id() -> str:
    """This boot's id: start times count from the boot, so the pair names one process."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            return boot.read().strip()
    except OSError:
        return ""


def running(owner: Owner) -> bool | None:
    """Whether owner's process runs: True, False, or None when this process cannot tell."""
    if owner.host != socket.gethostname():
        return None  # another host (or container) may run it: only there can it be told
    if sys.platform == "win32":
        return None  # os.kill(pid, 0) would end the process there
    try:
        os.kill(owner.pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, run by another user
    if not owner.started:
        return True  # begun where start times are not known: the pid is all there is
    started = _started(owner.pid)
    if started is None:
        return None  # its /proc entry is hidden (hidepid), or it ended this instant: next time
    return started == owner.started  # else it ended (a zombie), and any process with its pid is another

