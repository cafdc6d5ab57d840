"""A Redis (or Valkey) server as a primitive's `store=`: the connection, the scripts, and
what happens while the server is away.

`store=` takes "redis://[[user]:password@]host[:port][/db]", "rediss://..." (TLS),
"unix://[[user]:password@]/path/to/socket[?db=N]", or a client object: a redis.Redis,
redis.asyncio.Redis, valkey.Valkey or valkey.asyncio.Valkey (duck-typed: anything with
`execute_command` and `pipeline`). One RedisStore per URL (per client object) per
process holds:

- the clients: from a URL, a sync client made at once and an asyncio client made per
  event loop on first use (asyncio clients belong to one loop), with short socket
  timeouts (SOCKET_TIMEOUT, CONNECT_TIMEOUT; "?socket_timeout=..." in the URL overrides
  them) and no retries of their own, so a dead or hung server costs one bounded wait.
  A sync client given as the store serves async callers through a worker thread (the
  loop never waits on its socket); an asyncio client serves async callers only.
- the scripts: each sent by its SHA-1 (EVALSHA); a server that does not know it
  (NOSCRIPT: restarted, or SCRIPT FLUSH) gets it once (SCRIPT LOAD) and the call is
  made again.
- the outage state: a round trip that fails for an outage (refused or lost connection,
  timeout, a server still loading its data) marks the store down. While it is down no
  caller touches the socket (each primitive decides by its failure policy); one prober
  (a daemon thread, or a task on the caller's loop for an asyncio-only client) pings
  with backoff (BACKOFF_MIN doubling to BACKOFF_MAX, jittered to 50-100 %), so at most
  one round trip fails per backoff period, and marks the store up again when the server
  answers. The primitives watching the store hear "store_lost" and "store_back".

Errors that are not outages (a refused password, WRONGTYPE, a script error) are not
hidden: they reach the caller as brace.StoreError at once.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence
from urllib.parse import urlsplit, urlunsplit

from brace.errors import StoreError, StoreUnavailable

if TYPE_CHECKING:
    import asyncio

# asyncio and inspect are imported where used: `import brace` stays light.

__all__ = [
    "BACKOFF_MAX",
    "BACKOFF_MIN",
    "CONNECT_TIMEOUT",
    "SCHEMES",
    "SOCKET_TIMEOUT",
    "Outage",
    "RedisStore",
    "Script",
    "check_failure_policy",
    "is_redis",
    "key_part",
    "redact",
    "store_for",
]

SCHEMES = ("redis://", "rediss://", "unix://")
SOCKET_TIMEOUT = 0.25  # seconds a command may wait for its reply
CONNECT_TIMEOUT = 0.25  # seconds a connection may take
BACKOFF_MIN = 0.05  # the prober's first wait, seconds
BACKOFF_MAX = 5.0  # and its longest

OnStoreError = Literal["local", "open", "closed"]
POLICIES = ("local", "open", "closed")

# Exceptions (by class name anywhere in their MRO, so valkey's and redis-py's alike) that
# mean the server is away, and those that look like it but are not (a wrong password).
_OUTAGE_NAMES = frozenset({"ConnectionError", "TimeoutError", "BusyLoadingError", "ClusterDownError",
                           "TryAgainError", "MasterDownError", "ReadOnlyError"})  # fmt: skip
_NOT_OUTAGE_NAMES = frozenset({"AuthenticationError", "AuthenticationWrongNumberOfArgsError", "AuthorizationError"})


def is_redis(store: object) -> bool:
    """Whether `store=` names a Redis-protocol server (a URL or a client object)."""
    if isinstance(store, str):
        return store.startswith(SCHEMES)
    return store is not None and callable(getattr(store, "execute_command", None))


def redact(url: str) -> str:
    """The URL with its password (if any) replaced by ***."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return "<a malformed URL>"


def check_failure_policy(on_store_error: object, local_share: object, store: object,
                         kind: str) -> tuple[OnStoreError, float]:  # fmt: skip
    """(on_store_error, local_share) checked, with their defaults; ValueError when given
    for a store that is not a Redis server (they mean nothing there)."""
    if not is_redis(store):
        for value, parameter in ((on_store_error, "on_store_error"), (local_share, "local_share")):
            if value is not None:
                raise ValueError(f"{parameter} is only meaningful with a Redis store (store='redis://...' or a "
                                 f"client); this {kind}'s store is {store!r}")  # fmt: skip
        return "local", 1.0
    if on_store_error is None:
        on_store_error = "local"
    if on_store_error not in POLICIES:
        raise ValueError(f"on_store_error must be 'local', 'open' or 'closed', got {on_store_error!r}")
    if local_share is None:
        local_share = 1.0
    if isinstance(local_share, bool) or not isinstance(local_share, (int, float)):
        raise TypeError(f"local_share must be a number, 0 < local_share <= 1, got {type(local_share).__name__}")
    share = float(local_share)
    if not 0.0 < share <= 1.0:
        raise ValueError(f"local_share must be 0 < local_share <= 1 (1 / the number of hosts), got {local_share!r}")
    if on_store_error != "local" and local_share != 1.0:
        raise ValueError(f"local_share is only meaningful with on_store_error='local', got {on_store_error!r}")
    return on_store_error, share  # type: ignore[return-value]


def key_part(name: object, kind: str) -> str:
    """A primitive's name as its Redis keys use it: required, 1 to 200 characters, no braces
    (the name is the keys' hash tag, {name})."""
    if name is None:
        raise ValueError(f"a {kind} on a Redis store needs a name=: its key in the store")
    if not isinstance(name, str) or not 1 <= len(name) <= 200 or "{" in name or "}" in name:
        raise ValueError(f"the name of a {kind} on a Redis store is 1 to 200 characters without {{ or }}, "
                         f"got {name!r}")  # fmt: skip
    return name


class Script:
    """A Lua script sent by its SHA-1."""

    __slots__ = ("source", "sha")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class Outage(Exception):
    """Internal: the round trip failed because the server is away (or the store is down
    already and no round trip was made). `cause`: the error, or None."""

    def __init__(self, cause: BaseException | None) -> None:
        super().__init__(cause)
        self.cause = cause


def _names(error: BaseException) -> set[str]:
    return {klass.__name__ for klass in type(error).__mro__}


def _is_outage(error: BaseException) -> bool:
    names = _names(error)
    if names & _NOT_OUTAGE_NAMES:
        return False
    return bool(names & _OUTAGE_NAMES) or isinstance(error, OSError)


def _is_noscript(error: BaseException) -> bool:
    return "NoScriptError" in _names(error) or str(error).startswith("NOSCRIPT")


def _check_url(url: str, shown: str) -> None:
    """What redis-py would accept but cannot mean a server: a unix:// URL with no socket path,
    a database that is not a number."""
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise ValueError(f"store {shown!r}: {error}") from None
    if parts.scheme == "unix":
        if not parts.path or parts.path == "/":
            raise ValueError(f"store {shown!r}: a unix:// URL names the server's socket: "
                             "'unix://[[user]:password@]/path/to/redis.sock[?db=N]'")  # fmt: skip
        return
    database = parts.path.lstrip("/")
    if database and not (database.isascii() and database.isdigit()):
        raise ValueError(f"store {shown!r}: the database (after the host) must be a number, got {database!r}")


def _missing(replies: list[Any]) -> list[int]:
    """The places of a pipeline's replies that failed for NOSCRIPT (any other error is raised)."""
    missing = [index for index, reply in enumerate(replies) if isinstance(reply, Exception)]
    for index in missing:
        if not _is_noscript(replies[index]):
            raise replies[index]
    return missing


def _fill(replies: list[Any], missing: list[int], again: list[Any]) -> None:
    """Puts the replies of the calls made again (after SCRIPT LOAD) in their places."""
    for index, reply in zip(missing, again):
        if isinstance(reply, Exception):
            raise reply
        replies[index] = reply


Watcher = Callable[[str], None]


class RedisStore:
    """One server as this process reaches it: clients, loaded scripts, outage state."""

    def __init__(self, store: object) -> None:
        self.given = store
        self._sync: Any = None
        self._async_given: Any = None
        self._async_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        if isinstance(store, str):
            self.shown = redact(store)
            _check_url(store, self.shown)
            self._sync = self._from_url(store, asynchronous=False)
        else:
            if not callable(getattr(store, "pipeline", None)):
                raise TypeError("store must be a 'redis://', 'rediss://' or 'unix://' URL or a Redis client "
                                "(redis.Redis, redis.asyncio.Redis, valkey.Valkey, ...), got "
                                f"{type(store).__name__}")  # fmt: skip
            self.shown = f"<{type(store).__module__}.{type(store).__qualname__} client>"
            import inspect

            if inspect.iscoroutinefunction(getattr(type(store), "execute_command", None)):
                self._async_given = store
            else:
                self._sync = store
        #: False while the server is away (callers do not touch the socket).
        self.up = True
        #: Round trips that failed for an outage, the probes' included.
        self.failed_round_trips = 0
        #: Times the store came back.
        self.recoveries = 0
        self.lost_error: BaseException | None = None
        self._lock = threading.Lock()
        self._loaded: set[str] = set()  # scripts this server was sent (forgotten when it is lost)
        self._prober: Any = None
        self._watchers: list[weakref.WeakMethod[Watcher]] = []

    # -- clients

    def _from_url(self, url: str, *, asynchronous: bool) -> Any:
        import importlib

        try:
            module = importlib.import_module("redis.asyncio" if asynchronous else "redis")
            kind, retry = module.Redis, importlib.import_module("redis.retry").Retry
            backoff = importlib.import_module("redis.backoff").NoBackoff
        except ImportError:
            try:  # valkey-py, redis-py's fork, alone
                module = importlib.import_module("valkey.asyncio" if asynchronous else "valkey")
                kind, retry = module.Valkey, importlib.import_module("valkey.retry").Retry
                backoff = importlib.import_module("valkey.backoff").NoBackoff
            except ImportError:
                raise ImportError(f"store={self.shown!r} needs redis-py: pip install 'brace[redis]'") from None
        try:
            return kind.from_url(url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT,
                                 retry=retry(backoff(), 0))  # fmt: skip
        except ValueError as error:
            raise ValueError(f"store {self.shown!r}: {error}") from None

    def sync_client(self, name: str | None) -> Any:
        if self._sync is None:
            raise StoreError(store=self.shown, name=name, reason="a sync call needs a sync client: this store is an "
                             "asyncio client, which serves the async entry points only (give a URL or a sync "
                             "client for both)")  # fmt: skip
        return self._sync

    def _async_client(self) -> Any:
        """This loop's asyncio client, or None (a sync client given: use a worker thread)."""
        if self._async_given is not None:
            return self._async_given
        if not isinstance(self.given, str):
            return None
        import asyncio

        loop = asyncio.get_running_loop()
        client = self._async_by_loop.get(loop)
        if client is None:
            client = self._async_by_loop[loop] = self._from_url(self.given, asynchronous=True)
        return client

    # -- round trips

    def evalsha(self, script: Script, keys: Sequence[str], args: Sequence[object], name: str | None) -> Any:
        """The script's reply; Outage when the server is away (or known to be); StoreError
        for any other error."""
        if not self.up:
            self.ensure_probing()
            raise Outage(None)
        client = self.sync_client(name)
        try:
            try:
                return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            except Exception as error:
                if not _is_noscript(error):
                    raise
                client.execute_command("SCRIPT", "LOAD", script.source)
                return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except Exception as error:
            raise self._failed(error, name) from error

    def evalsha_many(self, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[object]]],
                     name: str | None) -> list[Any]:  # fmt: skip
        """The script's replies to each (keys, args), in one pipeline round trip (two when the
        server must first be sent the script)."""
        if not self.up:
            self.ensure_probing()
            raise Outage(None)
        client = self.sync_client(name)
        try:
            if script.sha not in self._loaded:  # else a new server would answer NOSCRIPT to every call
                client.execute_command("SCRIPT", "LOAD", script.source)
                self._loaded.add(script.sha)
            replies = self._pipeline(client, script, calls)
            missing = _missing(replies)
            if missing:
                client.execute_command("SCRIPT", "LOAD", script.source)
                _fill(replies, missing, self._pipeline(client, script, [calls[index] for index in missing]))
            return replies
        except Exception as error:
            raise self._failed(error, name) from error

    @staticmethod
    def _pipeline(client: Any, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[object]]]) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return list(pipe.execute(raise_on_error=False))

    async def evalsha_async(self, script: Script, keys: Sequence[str], args: Sequence[object],
                            name: str | None) -> Any:  # fmt: skip
        """evalsha for coroutines: on this loop's asyncio client, or (a sync client given) in
        a worker thread; never on the loop's thread."""
        if not self.up:
            self.ensure_probing()
            raise Outage(None)
        client = self._async_client()
        if client is None:
            import asyncio

            return await asyncio.to_thread(self.evalsha, script, keys, args, name)
        try:
            try:
                return await client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            except Exception as error:
                if not _is_noscript(error):
                    raise
                await client.execute_command("SCRIPT", "LOAD", script.source)
                return await client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except Exception as error:
            raise self._failed(error, name) from error

    async def evalsha_many_async(self, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[object]]],
                                 name: str | None) -> list[Any]:  # fmt: skip
        if not self.up:
            self.ensure_probing()
            raise Outage(None)
        client = self._async_client()
        if client is None:
            import asyncio

            return await asyncio.to_thread(self.evalsha_many, script, calls, name)
        try:
            if script.sha not in self._loaded:
                await client.execute_command("SCRIPT", "LOAD", script.source)
                self._loaded.add(script.sha)
            replies = await self._pipeline_async(client, script, calls)
            missing = _missing(replies)
            if missing:
                await client.execute_command("SCRIPT", "LOAD", script.source)
                _fill(replies, missing, await self._pipeline_async(client, script, [calls[index] for index in missing]))
            return replies
        except Exception as error:
            raise self._failed(error, name) from error

    @staticmethod
    async def _pipeline_async(client: Any, script: Script,
                              calls: Sequence[tuple[Sequence[str], Sequence[object]]]) -> list[Any]:  # fmt: skip
        pipe = client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))

    def _failed(self, error: BaseException, name: str | None) -> Exception:
        """What a failed round trip raises: Outage (the store is marked down) or StoreError."""
        if isinstance(error, (Outage, StoreError)):
            return error
        if _is_outage(error):
            self.lost(error)
            return Outage(error)
        return StoreError(store=self.shown, name=name, reason=f"{type(error).__name__}: {error}")

    # -- outage state

    def watch(self, callback: Watcher) -> None:
        """Calls the bound method callback("store_lost") / callback("store_back") (held weakly)."""
        with self._lock:
            self._watchers = [ref for ref in self._watchers if ref() is not None]
            self._watchers.append(weakref.WeakMethod(callback))

    def _tell(self, kind: str) -> None:
        for ref in list(self._watchers):
            callback = ref()
            if callback is not None:
                callback(kind)

    def lost(self, error: BaseException) -> None:
        """A round trip failed for an outage: the store is down until a probe succeeds."""
        with self._lock:
            self.failed_round_trips += 1
            was_up, self.up = self.up, False
            if was_up:
                self.lost_error = error
                self._loaded = set()
        if was_up:
            self.ensure_probing()
            self._tell("store_lost")

    def ensure_probing(self) -> None:
        """Starts the prober unless one runs (a thread; for an asyncio-only client, a task on
        the running loop)."""
        import asyncio

        with self._lock:
            prober = self._prober
            if isinstance(prober, asyncio.Task):
                running = not prober.done()
            else:
                running = prober is not None and prober.is_alive()
            if self.up or running:
                return
            if self._sync is not None:
                thread = threading.Thread(target=self._probe, name=f"brace store prober {self.shown}", daemon=True)
                self._prober = thread
                thread.start()
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # the next async call starts it
            self._prober = loop.create_task(self._probe_async())

    def _back(self) -> None:
        with self._lock:
            self.up = True
            self.recoveries += 1
            self._prober = None
        self._tell("store_back")

    def watched(self) -> bool:
        """Whether some primitive still uses this store (a prober with none to serve stops)."""
        return any(ref() is not None for ref in self._watchers)

    def _probe(self) -> None:
        delay = BACKOFF_MIN
        while True:
            time.sleep(delay * random.uniform(0.5, 1.0))
            if self._probe_unwatched():
                return
            try:
                self._sync.execute_command("PING")
            except Exception as error:
                delay = self._probe_failed(error, delay)
                continue
            self._back()
            return

    async def _probe_async(self) -> None:
        import asyncio

        delay = BACKOFF_MIN
        while True:
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            if self._probe_unwatched():
                return
            try:
                await self._async_given.execute_command("PING")
            except Exception as error:
                delay = self._probe_failed(error, delay)
                continue
            self._back()
            return

    def _probe_unwatched(self) -> bool:
        """Whether no primitive uses the store any more: the prober then ends."""
        if self.watched():
            return False
        with self._lock:
            self._prober = None
        return True

    def _probe_failed(self, error: Exception, delay: float) -> float:
        """Counts a failed ping; the next backoff."""
        with self._lock:
            self.failed_round_trips += 1
            self.lost_error = error
        return min(delay * 2, BACKOFF_MAX)

    def unavailable(self, name: str | None, kind: str, cause: BaseException | None) -> StoreUnavailable:
        """The fail-closed refusal, its cause chained (the error that took the store down)."""
        error = StoreUnavailable(store=self.shown, name=name, kind=kind)
        error.__cause__ = cause if cause is not None else self.lost_error
        return error


_stores: weakref.WeakValueDictionary[object, RedisStore] = weakref.WeakValueDictionary()
_lock = threading.Lock()


def store_for(store: object) -> RedisStore:
    """This process's RedisStore for a URL or client object (one per URL, per client, while
    some primitive uses it; a store that is down with no primitive left is not reused)."""
    key: object = store if isinstance(store, str) else ("client", id(store))
    with _lock:
        found = _stores.get(key)
        if found is None or found.given is not store and not isinstance(store, str) \
                or not found.up and not found.watched():  # fmt: skip
            found = _stores[key] = RedisStore(store)
        return found


def _after_fork_in_child() -> None:
    """A forked child has no prober thread and no use for its parent's loops: its stores
    start up again (the clients' pools reconnect in a new process by themselves)."""
    global _lock
    _lock = threading.Lock()
    for found in list(_stores.values()):
        found._lock = threading.Lock()
        found._prober = None
        found.up = True
        found._async_by_loop = weakref.WeakKeyDictionary()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
