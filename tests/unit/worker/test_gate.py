"""The claim gate without a database: closed until the paused queues are read, then open unless
the worker is paused or every queue of its own is; which queues a claim takes and skips."""

from __future__ import annotations

from jobserver.worker.gate import ClaimGate


class Bell:
    def __init__(self) -> None:
        self.rings = 0

    def ring(self) -> None:
        self.rings += 1


def test_closed_until_the_paused_queues_are_read() -> None:
    bell = Bell()
    gate = ClaimGate(None, bell.ring)
    assert not gate.open and not gate.loaded
    gate.set_paused_queues([])
    assert gate.open and bell.rings == 1
    assert (gate.claim_queues, gate.skip_queues) == (None, None)
    gate.set_paused_queues([])  # nothing changed: no ring
    assert bell.rings == 1


def test_a_worker_of_every_queue_skips_the_paused_ones() -> None:
    bell = Bell()
    gate = ClaimGate(None, bell.ring)
    gate.set_paused_queues(["sms", "emails"])
    assert gate.open
    assert (gate.claim_queues, gate.skip_queues) == (None, ["emails", "sms"])
    assert not gate.wanted("emails") and gate.wanted("default") and gate.wanted("*")
    gate.set_paused_queues(["sms"])
    assert gate.skip_queues == ["sms"] and bell.rings == 2


def test_a_worker_of_named_queues_leaves_the_paused_ones_out() -> None:
    gate = ClaimGate(["emails", "default"], Bell().ring)
    gate.set_paused_queues(["emails", "other"])
    assert gate.open
    assert (gate.claim_queues, gate.skip_queues) == (["default"], None)
    gate.set_paused_queues(["emails", "default"])
    assert not gate.open  # every queue of its own is paused
    gate.set_paused_queues([])
    assert gate.open and gate.claim_queues == ["emails", "default"]


def test_the_workers_own_pause_and_resume() -> None:
    bell = Bell()
    gate = ClaimGate(None, bell.ring)
    gate.set_paused_queues([])
    assert gate.pause() and not gate.open
    assert not gate.pause()  # already paused
    rings = bell.rings
    assert gate.resume() and gate.open and bell.rings == rings + 1
    assert not gate.resume()
