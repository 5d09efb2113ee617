"""Queues: limits that hold across every worker, changed at run time without a deploy.

An email provider takes at most 2 calls at once and one at a time per customer. The queue
``emails`` says so in code (``zart.Queue``); every worker enforces it, because the limits
are stored and each claim of the queue counts what runs under a lock of the queue's row. Two
workers (each with 8 slots) run 12 sends for 3 customers; the handler counts how many ran at
once. Then an operator raises the cap (``zart queues set emails --concurrency 4``, here
``scheduler.set_queue``) and a high-priority send jumps the backlog. Last, a burst of five
"profile changed" starts is debounced into one sync that runs with the last one's payload,
and a singleton key keeps a second export from starting while one is unfinished.

    python examples/queues.py
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import zart

DATABASE = Path("queues.db")

emails = zart.Queue("emails", concurrency=2, partition_concurrency=1)
running = {"now": 0, "most": 0}
per_customer: dict[str, int] = defaultdict(int)
most_per_customer: dict[str, int] = defaultdict(int)
order: list[str] = []


@zart.durable("send-email", queue=emails)
async def send_email(message: dict[str, str]) -> str:
    customer = message["customer"]
    running["now"] += 1
    running["most"] = max(running["most"], running["now"])
    per_customer[customer] += 1
    most_per_customer[customer] = max(most_per_customer[customer], per_customer[customer])
    order.append(message["subject"])
    await asyncio.sleep(0.02)  # the provider's call
    per_customer[customer] -= 1
    running["now"] -= 1
    return f"sent {message['subject']!r} to {customer}"


profiles = zart.Queue("profiles", concurrency=1)


@zart.durable("sync-profile", queue=profiles)
async def sync_profile(change: dict[str, str]) -> str:
    return f"synced {change['field']}"


async def main() -> None:
    url = f"sqlite+aiosqlite:///{DATABASE}"
    async with zart.DurableScheduler(url) as one, zart.DurableScheduler(url) as two:
        await one.migrate()
        workers = {"concurrency": 8, "poll_interval": 0.05}
        async with one.run_worker(**workers), two.run_worker(**workers):
            ids = [
                await one.start(
                    send_email,
                    {"customer": f"customer-{i % 3}", "subject": f"digest {i}"},
                    partition_key=f"customer-{i % 3}",
                )
                for i in range(12)
            ]
            for execution_id in ids:
                await one.wait(execution_id, timeout=60)
            print(f"12 sends on two workers: at most {running['most']} at once (cap 2)")
            print(f"at most {max(most_per_customer.values())} at once per customer (cap 1)")

            queue = await one.set_queue("emails", concurrency=4, partition_concurrency=None)
            print(f"operator: emails now allows {queue.limits.concurrency} at once")
            await one.pause_queue("emails")  # hold the backlog while it builds up
            order.clear()
            ids = [
                await one.start(send_email, {"customer": "bulk", "subject": f"newsletter {i}"})
                for i in range(6)
            ]
            ids.append(
                await one.start(
                    send_email, {"customer": "vip", "subject": "password reset"}, priority=10
                )
            )
            # A claim that read its time before the last start does not see it (it waits one
            # claim at most): let the claims these starts woke finish before resuming.
            await asyncio.sleep(0.2)
            await one.resume_queue("emails")
            for execution_id in ids:
                await one.wait(execution_id, timeout=60)
            print(f"first sent after the pause: {order[0]!r} (priority 10)")
            for queue in await one.list_queues():
                if queue.name != "emails":
                    continue
                print(
                    f"queue {queue.name}: concurrency={queue.limits.concurrency}"
                    f" queued={queue.queued} running={queue.running}"
                )

            # Five changes within the window: one execution, run 200ms after the last.
            burst = [
                await one.start(
                    sync_profile,
                    {"customer": "customer-1", "field": field},
                    debounce="200ms",
                    debounce_key="customer-1",
                )
                for field in ("name", "email", "phone", "address", "avatar")
            ]
            result = await one.wait(burst[0], timeout=60)
            print(f"5 debounced starts: {len(set(burst))} execution, {result}")
            export = {"customer": "customer-2", "field": "export"}
            await one.pause_queue("profiles")  # the first is surely unfinished at the second
            first = await one.start(sync_profile, export, singleton_key="export-customer-2")
            again = await one.start(sync_profile, export, singleton_key="export-customer-2")
            print(f"singleton: the second start returned the first: {first == again}")
            await one.resume_queue("profiles")
            await one.wait(first, timeout=60)


if __name__ == "__main__":
    DATABASE.unlink(missing_ok=True)
    asyncio.run(main())
