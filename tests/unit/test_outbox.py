"""The connector's outbox: records held until confirmed, and sent again for a new broker."""

from __future__ import annotations

from connectors.outbox import Outbox, Record


def put(box: Outbox, *keys: str, topic: str = "ticks.raw.binance") -> None:
    for key in keys:
        box.put("raw", topic, key.encode(), f"value of {key}".encode())


def take_all(box: Outbox) -> list[Record]:
    taken = []
    while (record := box.take()) is not None:
        taken.append(record)
    return taken


def deliver(box: Outbox, records: list[Record], offsets: list[int], now: float) -> list[bool]:
    return [box.delivered(r, 0, offset, now) for r, offset in zip(records, offsets, strict=True)]


def test_a_record_leaves_only_once_the_broker_confirmed_it() -> None:
    box = Outbox()
    put(box, "a", "b")
    first, second = take_all(box)
    assert not box.empty and box.waiting == 0 and len(box.inflight) == 2
    box.failed(first)  # the producer gave up on it: it goes again, before anything newer
    put(box, "c")
    assert [r.key for r in take_all(box)] == [b"a", b"c"]
    deliver(box, [first, second], [0, 1], now=0.0)
    assert len(box.inflight) == 1  # c is still unconfirmed
    assert not box.empty


def test_full_drops_the_oldest_waiting_record() -> None:
    box = Outbox(capacity=2)
    put(box, "a", "b")
    dropped = box.put("raw", "t", b"c", b"v")
    assert dropped is not None and dropped.key == b"a"
    assert [r.key for r in take_all(box)] == [b"b", b"c"]


def test_inflight_is_bounded() -> None:
    box = Outbox(max_inflight=2)
    put(box, "a", "b", "c")
    assert len(take_all(box)) == 2 and box.waiting == 1


def test_offsets_going_back_mean_a_new_broker_and_the_window_goes_again() -> None:
    box = Outbox(window_s=30.0)
    put(box, "old", "a", "b", "c")
    old, a, b, c = take_all(box)
    assert deliver(box, [old], [10], now=0.0) == [False]
    assert deliver(box, [a, b], [500, 501], now=100.0) == [False, False]
    # The broker dies with c in flight; the new one takes c at offset 0.
    assert deliver(box, [c], [0], now=101.0) == [True]
    assert box.again() == 4  # a and b (recent), c (just delivered), old (newest of its key)
    resent = take_all(box)
    assert [r.key for r in resent] == [b"old", b"a", b"b", b"c"]  # oldest first
    # The new broker's own offsets do not count as another replacement.
    assert deliver(box, resent, [1, 2, 3, 4], now=102.0) == [False] * 4


def test_the_window_keeps_recent_records_and_the_newest_of_each_key() -> None:
    box = Outbox(window_s=30.0)
    put(box, "cbr", topic="ticks.raw.cbr")
    (cbr,) = take_all(box)
    box.delivered(cbr, 0, 0, now=0.0)
    put(box, "btc", "btc", "eth")
    btc1, btc2, eth = take_all(box)
    deliver(box, [btc1, btc2, eth], [1, 2, 3], now=50.0)
    put(box, "btc")
    (btc3,) = take_all(box)
    box.delivered(btc3, 0, 4, now=90.0)
    # At 90 s the window (30 s) holds btc3 only; cbr and eth stay as their key's newest.
    assert [r.seq for r in box.recent_records()] == [btc3.seq]
    assert box.again() == 3
    assert {r.key for r in take_all(box)} == {b"cbr", b"eth", b"btc"}


def test_the_window_is_bounded_by_bytes() -> None:
    box = Outbox(window_s=3600.0, window_bytes=100)
    put(box, *(f"k{i}" for i in range(20)))
    records = take_all(box)
    deliver(box, records, list(range(20)), now=1.0)
    kept = box.recent_records()
    assert box.recent_bytes == sum(r.size for r in kept) <= 100
    assert kept == records[-len(kept) :] and len(kept) >= 6  # the newest ones


def test_records_in_flight_or_waiting_are_not_queued_twice() -> None:
    box = Outbox()
    put(box, "a", "b")
    a, b = take_all(box)
    box.delivered(a, 0, 5, now=0.0)
    box.delivered(b, 0, 6, now=0.0)
    assert box.again() == 2
    assert box.again() == 0  # both wait already


def test_offsets_going_back_again_soon_after_send_only_what_came_since() -> None:
    box = Outbox(window_s=30.0, settle_s=10.0)
    put(box, "k", "k", "k")
    k1, k2, k3 = take_all(box)
    deliver(box, [k1, k2], [100, 101], now=95.0)
    assert box.delivered(k3, 0, 0, now=100.0)  # a new broker
    assert box.again() == 3
    deliver(box, take_all(box), [1, 2, 3], now=100.5)
    put(box, "k")
    (k4,) = take_all(box)
    # The topic is created on the new broker after k1..k3 reached it: it starts over again.
    assert box.delivered(k4, 0, 0, now=101.0)
    assert box.again() == 2  # k3 and k4: what came since the first replacement
    assert [r.seq for r in take_all(box)] == [k3.seq, k4.seq]
