"""collector/turnstile.py: batches observed in the order they were taken."""

from __future__ import annotations

import threading

from collector.turnstile import Turnstile


def test_tickets_follow_the_take_order_and_an_empty_take_gets_none() -> None:
    """Batches get 1, 2, 3 in take order; nothing taken, no ticket used."""
    turns = Turnstile(threading.Event())
    assert turns.take(lambda: ["a"]) == (["a"], 1)
    assert turns.take(lambda: []) == ([], 0)
    assert turns.take(lambda: ["b", "c"]) == (["b", "c"], 2)


def test_a_later_ticket_waits_for_the_earlier_one() -> None:
    """Ticket 2's writer finished first: its turn comes only once ticket 1 is done."""
    turns = Turnstile(threading.Event())
    turns.take(lambda: [1])
    turns.take(lambda: [2])
    order: list[int] = []
    waiting = threading.Event()

    def second() -> None:
        waiting.set()
        assert turns.wait_turn(2)
        order.append(2)
        turns.done(2)
    thread = threading.Thread(target=second)
    thread.start()
    assert waiting.wait(10)
    assert turns.wait_turn(1)  # the first ticket's turn is at once
    order.append(1)
    turns.done(1)
    thread.join(10)
    assert not thread.is_alive() and order == [1, 2]


def test_waiting_ends_when_stopping() -> None:
    """A turn that can never come (ticket 1 never done) gives up once the collector stops."""
    stop = threading.Event()
    turns = Turnstile(stop)
    turns.take(lambda: [1])
    turns.take(lambda: [2])
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(turns.wait_turn(2)))
    thread.start()
    stop.set()
    thread.join(10)
    assert result == [False]
