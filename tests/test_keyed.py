"""KeyedRateLimiter: a GCRA per key in a fixed table; keys, batches, a full table, threads."""

from __future__ import annotations

import array
import multiprocessing
import os
import pickle
import uuid
from collections.abc import Iterator
import subprocess
import sys
import threading
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import brace
from brace._config import NS_PER_SECOND
from brace._core import KEYED_PROBE, key_hash
from brace.testing import FakeClock

KEYS = {
    "str": ["alice", "bob", "user:42"],
    "non-ascii str": ["été", "日本", "ü"],
    "bytes": [b"alice", b"\x00\xff", b""],
    "small int": [0, 1, -1],
    "uint64 int": [2**63, 2**64 - 1, 2**63 + 5],
    "huge int": [2**64, -(2**63) - 1, 10**40],
}


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_each_key_has_its_own_bucket(clock: FakeClock, kind: str) -> None:
    lim = brace.KeyedRateLimiter(rate=10, burst=3, max_keys=10)
    first, second, third = KEYS[kind]
    assert [lim.try_acquire(first) for _ in range(4)] == [True, True, True, False]
    assert lim.try_acquire(second, 3) and not lim.try_acquire(second)
    assert lim.state(third) == brace.RateLimitState(limit=3, remaining=3, retry_after=0.0, reset_after=0.0)
    assert lim.state(first).remaining == 0
    clock.advance(0.1)
    assert lim.try_acquire(first) and not lim.try_acquire(first)
    assert lim.try_acquire(second) and not lim.try_acquire(second)
    assert lim.try_acquire(third, 3)


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_a_key_decides_as_a_rate_limiter_would(clock: FakeClock, kind: str) -> None:
    keyed = brace.KeyedRateLimiter(rate="5/s", burst=4, max_keys=4)
    single = brace.RateLimiter(rate="5/s", burst=4)
    key = KEYS[kind][0]
    for step in range(60):
        n = 1 + step % 3
        assert keyed.try_acquire(key, n) == single.try_acquire(n)
        assert keyed.state(key) == single.state()
        clock.advance(0.03 * (step % 5))


def test_keys_are_filed_under_a_stable_hash() -> None:
    # the C core's fixed values (tests/c/test_keyed.c): the same in every process
    assert key_hash("hello world") == 0x8C925819D6D546ED
    assert key_hash("été") == 0xB6BBEF4DD1510249
    assert key_hash(b"abc") == 0xAAB5B7D95F5C1184
    assert key_hash(0) == 0xE220A8397B1DCDAF
    assert key_hash(42) == 0xBDD732262FEB6E95
    # a str is its UTF-8 bytes; an int its 64-bit two's complement
    assert key_hash("été") == key_hash("été".encode())
    assert key_hash(-1) == key_hash(2**64 - 1)
    assert key_hash(2**64) != key_hash(0) and key_hash(-(2**63) - 1) != key_hash(2**63 - 1)
    code = "from brace._core import key_hash; print(key_hash('user:42'), key_hash(10**30))"
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}  # fmt: skip
    assert seen == {f"{key_hash('user:42')} {key_hash(10**30)}\n"}


def test_a_str_and_its_bytes_are_one_key(clock: FakeClock) -> None:
    lim = brace.KeyedRateLimiter(rate=1, burst=1, max_keys=4)
    assert lim.try_acquire("clé")
    assert not lim.try_acquire("clé".encode())
    assert lim.try_acquire(-1)
    assert not lim.try_acquire(2**64 - 1)


@pytest.mark.parametrize("key", [1.5, None, True, bytearray(b"x"), ("a",), object()])
def test_other_keys_are_refused(key: object) -> None:
    lim = brace.KeyedRateLimiter(rate=1, burst=1, max_keys=4)
    with pytest.raises(TypeError, match="key must be a str, bytes or int"):
        lim.try_acquire(key)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key must be a str, bytes or int"):
        lim.state(key)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "error", "match"),
    [
        ({"max_keys": 0}, ValueError, "max_keys must be an int from 1 to 2147483648"),
        ({"max_keys": 2**31 + 1}, ValueError, "max_keys must be an int from 1"),
        ({"max_keys": True}, TypeError, "max_keys must be an int"),
        ({"max_keys": 10.0}, TypeError, "max_keys must be an int"),
        ({"burst": 0}, ValueError, "burst must be an int >= 1"),
        ({"rate": 0}, ValueError, "rate must be a finite number of events > 0"),
        ({"rate": "10/s", "per": 2}, ValueError, "per must be None when rate is a string"),
        ({"rate": "fast"}, ValueError, "rate must look like"),
        ({"name": 3}, TypeError, "name must be a str or None"),
        ({"store": "http://limits"}, ValueError, "only the shm:// scheme is supported"),
        ({"store": {}}, TypeError, "store must be None or 'shm://REGION'"),
        ({"store": "shm://brace-unused"}, ValueError, "needs a name=: its slot in the region"),
    ],
)
def test_bad_configuration_names_the_parameter(config: dict[str, object], error: type[Exception], match: str) -> None:
    settings: dict[str, object] = {"rate": 10, "burst": 2, "max_keys": 100, **config}
    with pytest.raises(error, match=match):
        brace.KeyedRateLimiter(**settings)  # type: ignore[arg-type]


def test_a_str_utf_8_cannot_encode_is_refused() -> None:
    lim = brace.KeyedRateLimiter(rate=1, burst=1, max_keys=4)
    with pytest.raises(ValueError, match="key must be a str that UTF-8 can encode"):
        lim.try_acquire("a\ud800")
    assert lim.try_acquire("a")


def test_keywords_only() -> None:
    with pytest.raises(TypeError, match="keyword arguments only"):
        brace.KeyedRateLimiter(10)  # type: ignore[misc]


@pytest.mark.parametrize(("max_keys", "capacity"), [(1, 64), (32, 64), (33, 128), (1000, 2048), (1024, 2048)])
def test_the_table_is_sized_for_max_keys(max_keys: int, capacity: int) -> None:
    lim = brace.KeyedRateLimiter(name="api", rate="100/min", burst=5, max_keys=max_keys)
    assert lim.capacity == capacity and lim.max_keys == max_keys
    assert lim.rate == pytest.approx(100 / 60) and lim.burst == 5 and lim.name == "api"
    assert repr(lim) == f"KeyedRateLimiter(name='api', rate=100, per=60, burst=5, max_keys={max_keys})"
    assert lim.metrics() == brace.KeyedRateLimiterMetrics(0, 0, 0, 0, capacity)


def test_n_outside_one_to_burst_is_refused() -> None:
    lim = brace.KeyedRateLimiter(rate=10, burst=3, max_keys=4)
    with pytest.raises(ValueError, match="n=4 can never be admitted: n must be an int from 1 to burst=3"):
        lim.try_acquire("k", 4)
    with pytest.raises(ValueError, match="n must be an int from 1"):
        lim.try_acquire("k", 0)
    with pytest.raises(TypeError, match="n must be an int"):
        lim.try_acquire("k", 1.0)  # type: ignore[arg-type]


def fill(lim: brace.KeyedRateLimiter) -> tuple[list[int], brace.KeyTableFull]:
    """Keys 0, 1, ... each take their one token until one finds no room."""
    admitted = []
    for key in range(10 * lim.capacity):
        try:
            assert lim.try_acquire(key)
        except brace.KeyTableFull as full:
            return admitted, full
        admitted.append(key)
    raise AssertionError("the table never filled")


def test_a_full_table_raises_and_keeps_every_debt(clock: FakeClock) -> None:
    lim = brace.KeyedRateLimiter(name="login", rate="1/hour", burst=1, max_keys=1)
    admitted, full = fill(lim)
    # a key is refused only when its whole window holds keys with debt
    assert KEYED_PROBE <= len(admitted) <= lim.capacity
    assert (full.name, full.capacity, full.admitted) == ("login", 64, None)
    assert full.retry_after == pytest.approx(3600.0)
    assert isinstance(full, brace.Rejected) and "raise max_keys" in str(full)
    assert pickle.loads(pickle.dumps(full)).retry_after == full.retry_after
    refused = len(admitted)
    with pytest.raises(brace.KeyTableFull):
        lim.try_acquire(refused)
    # nothing was evicted: every key still owes its token
    assert not any(lim.try_acquire(key) for key in admitted)
    assert lim.metrics() == brace.KeyedRateLimiterMetrics(len(admitted), len(admitted), 2, 0, 64)
    # once buckets are full again, their entries go to new keys
    clock.advance(3600.0)
    assert lim.try_acquire(refused)
    assert lim.metrics().evictions == 1
    assert lim.state(refused).remaining == 0


def test_least_recently_used_full_buckets_go_first(clock: FakeClock) -> None:
    lim = brace.KeyedRateLimiter(rate=1, burst=1, max_keys=1)
    admitted, _ = fill(lim)
    clock.advance(1.0)
    first = admitted[0]
    assert lim.try_acquire(first)  # renewed: its entry is the most recently used
    newcomers = [key for key in range(10**6, 10**6 + 200) if _admitted(lim, key)]
    assert newcomers  # others were evicted to make room
    assert not lim.try_acquire(first)  # ... but not the renewed key


def _admitted(lim: brace.KeyedRateLimiter, key: int) -> bool:
    try:
        return lim.try_acquire(key)
    except brace.KeyTableFull:
        return False


MASK = 2**64 - 1


def canonical(key: object) -> object:
    """The key as the limiter files it: a str is its UTF-8, an int its 64-bit pattern."""
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, int) and -(2**63) <= key < 0:
        return key & MASK
    return key


@dataclass
class KeyedGcraModel:
    """The reference: a dict of per-key GCRA TATs in ns (absent = full bucket)."""

    interval: int
    burst: int
    tats: dict[object, int] = field(default_factory=dict)
    now: int = 0

    def acquire(self, key: object, n: int) -> bool:
        key = canonical(key)
        tat = max(self.tats.get(key, 0), self.now)
        if tat + n * self.interval - self.now > self.burst * self.interval:
            return False
        self.tats[key] = tat + n * self.interval
        return True

    def give_back(self, key: object, n: int) -> None:
        self.tats[canonical(key)] -= n * self.interval

    def remaining(self, key: object) -> int:
        debt = max(self.tats.get(canonical(key), 0) - self.now, 0)
        return (self.burst * self.interval - debt) // self.interval

    def owing(self) -> int:
        return sum(tat > self.now for tat in self.tats.values())


_model_key = st.one_of(st.integers(-3, 40), st.sampled_from(["a", "b", "été", 2**64 - 1]), st.binary(max_size=2))
_operation = st.one_of(
    st.tuples(st.just("advance"), st.integers(0, NS_PER_SECOND // 10) | st.integers(0, 2 * NS_PER_SECOND)),
    st.tuples(st.just("acquire"), st.tuples(_model_key, st.integers(1, 4))),
    st.tuples(st.just("state"), _model_key),
    st.tuples(st.just("many"), st.lists(st.integers(-5, 300), max_size=12)),
    # 64 keys at once: the smallest table (64 entries) has no room for all of them
    st.tuples(st.just("many"), st.integers(-5, 300).map(lambda first: list(range(first, first + 64)))),
)


@pytest.mark.slow  # many examples: the README's command runs it, the inner loop does not
@settings(max_examples=200, deadline=None)
@given(
    events=st.integers(1, 50),
    burst=st.integers(4, 8),
    max_keys=st.sampled_from([1, 16, 100]),
    ops=st.lists(_operation, max_size=80),
)
def test_matches_a_dict_of_gcra(events: int, burst: int, max_keys: int, ops: list[tuple[str, object]]) -> None:
    with brace.testing.fake_clock() as clock:
        lim = brace.KeyedRateLimiter(rate=events, burst=burst, max_keys=max_keys)
        model = KeyedGcraModel(round(NS_PER_SECOND / events), burst)
        for name, arg in ops:
            if name == "advance":
                assert isinstance(arg, int)
                clock.advance(arg / NS_PER_SECOND)
                model.now += arg
            elif name == "acquire":
                key, n = arg  # type: ignore[misc]
                try:
                    got = lim.try_acquire(key, n)
                except brace.KeyTableFull:
                    got = None
                _compare(model, key, n, got)
            elif name == "state":
                assert lim.state(arg).remaining == model.remaining(arg)  # type: ignore[arg-type]
            else:
                keys = np.array(arg, dtype=np.int64)
                try:
                    decisions, full = lim.try_acquire_many(keys).tolist(), False
                except brace.KeyTableFull as raised:
                    decisions, full = raised.admitted.tolist(), True  # type: ignore[attr-defined]
                for key, admitted in zip(keys.tolist(), decisions):
                    _compare(model, key, 1, admitted, batch_full=full)


def _compare(model: KeyedGcraModel, key: object, n: int, got: bool | None, batch_full: bool = False) -> None:
    """got: the limiter's decision, None when it found no room for the key; in a batch that
    raised KeyTableFull (batch_full), False is a refusal or no room."""
    wanted = model.acquire(key, n)
    if got is None or (batch_full and wanted and not got):
        # no room: a key not in the table has a full bucket (the model admits), and its
        # whole window holds keys that owe tokens; nothing was taken
        event("a key found no room")
        assert wanted and model.owing() >= KEYED_PROBE
        model.give_back(key, n)
    else:
        assert got == wanted


def test_threads_share_each_keys_burst(clock: FakeClock) -> None:
    lim = brace.KeyedRateLimiter(rate=1, burst=50, max_keys=100)
    counts = [[0] * 8 for _ in range(8)]

    def hammer(me: int) -> None:
        for i in range(2000):
            key = (i + me) % 8
            counts[me][key] += lim.try_acquire(f"key{key}")

    threads = [threading.Thread(target=hammer, args=(me,)) for me in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [sum(row[key] for row in counts) for key in range(8)] == [50] * 8


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_the_numpy_batch_equals_the_loop(clock: FakeClock, dtype: type) -> None:
    rng = np.random.default_rng(5)
    batch = brace.KeyedRateLimiter(rate=20, burst=3, max_keys=200)
    loop = brace.KeyedRateLimiter(rate=20, burst=3, max_keys=200)
    for _ in range(20):
        keys = rng.integers(-50, 150, size=300).astype(dtype)
        got = batch.try_acquire_many(keys)
        assert isinstance(got, np.ndarray) and got.dtype == np.bool_ and got.shape == keys.shape
        assert got.tolist() == [loop.try_acquire(int(key)) for key in keys]
        assert [batch.state(int(key)) for key in keys] == [loop.state(int(key)) for key in keys]
        clock.advance(0.07)
    assert batch.metrics() == loop.metrics()


def test_the_batch_takes_buffers_of_8_byte_ints(clock: FakeClock) -> None:
    lim = brace.KeyedRateLimiter(rate=1, burst=1, max_keys=10)
    assert lim.try_acquire_many(array.array("q", [1, 2, 1])).tolist() == [True, True, False]
    assert lim.try_acquire_many(np.array([], dtype=np.int64)).tolist() == []
    for bad in (np.array([1.0]), np.array([1], dtype=np.int32), array.array("d", [1.0])):
        with pytest.raises(TypeError, match="keys must be a contiguous buffer of 8-byte ints"):
            lim.try_acquire_many(bad)
    with pytest.raises(TypeError):
        lim.try_acquire_many([1, 2])  # type: ignore[arg-type]
    with pytest.raises((ValueError, BufferError)):
        lim.try_acquire_many(np.arange(10, dtype=np.int64)[::2])


def test_a_full_table_in_a_batch_raises_with_every_decision(clock: FakeClock) -> None:
    lim = brace.KeyedRateLimiter(rate="1/hour", burst=1, max_keys=1)
    admitted, _ = fill(lim)
    refused = len(admitted)  # the key fill() found no room for
    keys = np.array([admitted[0], refused, refused], dtype=np.int64)
    with pytest.raises(brace.KeyTableFull) as raised:
        lim.try_acquire_many(keys)
    assert raised.value.admitted.tolist() == [False, False, False]  # type: ignore[attr-defined]
    assert raised.value.retry_after == pytest.approx(3600.0)


def test_without_numpy_the_batch_gives_a_memoryview_of_bools() -> None:
    code = (
        "import sys, array; sys.modules['numpy'] = None\n"
        "import brace\n"
        "lim = brace.KeyedRateLimiter(rate=1, burst=1, max_keys=10)\n"
        "got = lim.try_acquire_many(array.array('q', [7, 7]))\n"
        "print(type(got).__name__, got.format, got.tolist())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "memoryview ? [True, False]\n"


@pytest.fixture
def region() -> Iterator[str]:
    name = f"brace-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    yield name
    brace.shm.unlink(name)


def _shared(region: str, **config: object) -> brace.KeyedRateLimiter:
    settings: dict[str, object] = {"rate": "1/hour", "burst": 3, "max_keys": 1000, "name": "per-user",
                                   "store": f"shm://{region}", **config}  # fmt: skip
    return brace.KeyedRateLimiter(**settings)  # type: ignore[arg-type]


def _take_alices_burst(region: str, results: object) -> None:
    """In another process: its own limiter on the same store and name."""
    limiter = _shared(region)
    results.put([limiter.try_acquire("alice", 3), limiter.try_acquire("alice")])  # type: ignore[attr-defined]


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_a_shared_table_is_one_table_for_every_process(region: str, start: str) -> None:
    limiter = _shared(region)
    assert limiter.store == f"shm://{region}" and "store='shm://" in repr(limiter)
    context = multiprocessing.get_context(start)
    results = context.Queue()
    child = context.Process(target=_take_alices_burst, args=(region, results))
    child.start()
    assert results.get(timeout=60) == [True, False]
    child.join(timeout=60)
    assert child.exitcode == 0
    assert not limiter.try_acquire("alice")  # the child took her burst from the same bucket
    assert limiter.state("alice").remaining == 0
    assert limiter.try_acquire("bob", 3)
    assert limiter.metrics()[:2] == (2, 2)  # the counters are the table's: both processes'


def test_a_shared_table_must_be_configured_alike(region: str) -> None:
    _shared(region)
    with pytest.raises(ValueError, match=r"max_keys \(table entries\): 2048 there, 16384 here"):
        _shared(region, max_keys=5000)
    with pytest.raises(ValueError, match="burst: 3 there, 4 here"):
        _shared(region, burst=4)
    brace.RateLimiter(rate=1, name="single", store=f"shm://{region}")
    with pytest.raises(ValueError, match="as another kind of primitive than a KeyedRateLimiter"):
        _shared(region, name="single")
    assert _shared(region, max_keys=1024).capacity == 2048  # the same table size is the same table


def test_a_shared_table_must_fit_its_region(region: str) -> None:
    with pytest.raises(OSError, match="the shared region is full"):
        _shared(region + "?size=1M", max_keys=2**16)  # 2 MiB of entries
