"""Wake-up edges, each written to kill a mutant that ``./run mutate shared/runtime/buffer/wake.py``
found surviving (docs/testing.md).

- A waiter waits until its deadline, not less. The other wake-up tests write first and wait
  after, so a ``wait_async`` whose deadline was already past (``loop.time() - timeout``) still
  returned True. Here the write comes only after the waiting task has had the loop to itself
  for a while: a waiter that gave up early is done by then, a correct one can only end with the
  write (its deadline is 20 s away).
- The change counter wraps: a smaller value after a wrap is a change too.
"""

from __future__ import annotations

import asyncio
import uuid

from runtime.buffer import WAKE_CURRENT, BufferStore, Waiter

KOALA = str((13 << 72) | (1 << 64) | 42)


async def test_async_wait_waits_for_a_write_that_comes_later():
    with BufferStore(f"test-{uuid.uuid4().hex[:10]}") as store, Waiter() as waiter:
        device = store.create_device(KOALA, "KoalaBear")
        waiter.watch(device, WAKE_CURRENT)
        waiting = asyncio.ensure_future(waiter.wait_async(20))
        for _ in range(20):  # loop turns, not time: nothing but a write can end the wait
            await asyncio.sleep(0)
        assert not waiting.done()
        device.update({"enc_a": 2.0})
        assert await waiting is True


def test_a_wake_up_after_the_change_counter_wraps_is_not_lost():
    """The per-slot change counter is 16 bits: after 65,535 writes the next one wraps it to a
    smaller number, which is still a change (a waiter comparing with ``>`` would sleep on)."""
    with BufferStore(f"test-{uuid.uuid4().hex[:10]}") as store, Waiter() as waiter:
        device = store.create_device(KOALA, "KoalaBear")
        waiter.watch(device, WAKE_CURRENT)
        for value in range(65_535):
            device.update({"enc_a": float(value)})
        assert waiter.wait(0)  # seen: the counter just below its wrap
        device.update({"enc_a": -1.0})  # the counter wraps to a smaller value
        assert waiter.wait(20)
