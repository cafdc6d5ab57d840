"""brace.shm: the shared-memory regions behind `store="shm://REGION"`.

A region is a POSIX shared-memory object (on Linux, the file /dev/shm/REGION),
created by the first process that opens it, readable and writable by its
owner only (mode 0600). It holds one slot per shared primitive, named by the
primitive's `name`. It outlives the processes that use it, until `unlink`.
"""

from __future__ import annotations

from brace import _stores

__all__ = ["unlink"]


def unlink(region: str) -> bool:
    """Removes the shared-memory region `region` (as in "shm://REGION").

    Processes that use it keep their mapping and go on deciding on it; the next
    primitive created with that store creates a fresh, empty region. Unlink a
    region when the processes that share it are gone (or to start afresh after
    a change of configuration).

    Returns:
        True when it removed the region, False when there was none.

    Raises:
        ValueError: `region` is not a region name.
        PermissionError: The region belongs to another user.
    """
    return _stores.unlink(region)
