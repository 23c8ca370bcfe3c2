"""Racers for the double-booking figure, each run as its own process:

    python -m tests.reliability.race clients config.json    # 64 concurrent clients
    python -m tests.reliability.race allocator config.json  # plan + apply, in a loop

Clients pick a random open line and a random unit (seeded) and either dispatch it directly or
offer it and accept the offer; the allocator plans the whole network and applies the plan as
dispatches. They print the statuses they got, as JSON, when their time is up.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx


async def clients(c: dict[str, Any]) -> Counter[str]:
    statuses: Counter[str] = Counter()
    rnd = random.Random(c["seed"])
    end = time.monotonic() + c["seconds"]
    start = asyncio.Event()

    async def client(n: int, http: httpx.AsyncClient) -> None:
        my = random.Random(rnd.random())
        await start.wait()
        while time.monotonic() < end:
            url = c["urls"][n % len(c["urls"])]
            body = {"request_item_id": my.choice(c["lines"]), "resource_id": my.choice(c["units"])}
            try:
                if my.random() < 0.5:
                    r = await http.post(url + "/api/v1/dispatches", json=body)
                    statuses[f"dispatch {r.status_code}"] += 1
                else:
                    r = await http.post(url + "/api/v1/offers", json=body)
                    statuses[f"offer {r.status_code}"] += 1
                    if r.status_code == 201:
                        await asyncio.sleep(my.uniform(0, 0.05))
                        a = await http.post(f"{url}/api/v1/offers/{r.json()['id']}/accept")
                        statuses[f"accept {a.status_code}"] += 1
            except httpx.TransportError:
                statuses["transport"] += 1
            await asyncio.sleep(my.uniform(0, 0.02))

    headers = {"Authorization": f"Bearer {c['token']}"}
    limits = httpx.Limits(max_connections=c["clients"] + 8)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as http:
        tasks = [asyncio.create_task(client(n, http)) for n in range(c["clients"])]
        start.set()
        await asyncio.gather(*tasks)
    return statuses


def allocator(c: dict[str, Any], n: int) -> Counter[str]:
    statuses: Counter[str] = Counter()
    end = time.monotonic() + c["seconds"]
    url = c["urls"][n % len(c["urls"])]
    with httpx.Client(headers={"Authorization": f"Bearer {c['token']}"}, timeout=30) as http:
        while time.monotonic() < end:
            plan = http.post(url + "/api/v1/allocations/plan", json={})
            statuses[f"plan {plan.status_code}"] += 1
            if plan.status_code != 200:
                continue
            applied = http.post(
                f"{url}/api/v1/allocations/{plan.json()['id']}/apply", json={"mode": "dispatch"}
            )
            statuses[f"apply {applied.status_code}"] += 1
    return statuses


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    config = json.loads(Path(path).read_text())
    if mode == "clients":
        out = asyncio.run(clients(config))
    else:
        out = allocator(config, int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    print(json.dumps(dict(out)))


if __name__ == "__main__":
    main()
