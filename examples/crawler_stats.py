"""Crawler statistics that survive a restart.

A tiny "crawler" counts requests, failures and the last URLs in a pydantic model
kept by a :class:`RecoverableState`. An :class:`EventManager` persists it every
50 ms (only when it changed) and once more on close. The script crawls twice,
closing and reopening the store in between as a restarted process would: the
second run starts from the first run's numbers.

Usage: ``python examples/crawler_stats.py [STORE_URL]`` (default: a temporary
SQLite file). Run it twice on the same URL and the counts keep growing.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, Field

from phaselog.adapters import open_store
from phaselog.runtime.recoverable import EventManager, RecoverableState

log = logging.getLogger("crawler")


class CrawlerStats(BaseModel):
    """What a crawler wants to keep across restarts."""

    requests_finished: int = 0
    requests_failed: int = 0
    runs: int = 0
    last_urls: list[str] = Field(default_factory=list)


async def crawl(url: str, pages: int) -> CrawlerStats:
    """Crawl ``pages`` fake pages, with the statistics persisted under one key."""
    with open_store(url) as store:
        async with EventManager(timedelta(milliseconds=50)) as events:
            state = RecoverableState(
                default_state=CrawlerStats(),
                persist_state_key="CRAWLER_STATISTICS",
                persistence_enabled=True,
                persist_state_kvs_name="crawler",
                logger=log,
                store=store,
                event_manager=events,
            )
            stats = await state.initialize()
            print(
                f"  recovered: {stats.requests_finished} finished, "
                f"{stats.requests_failed} failed, {stats.runs} earlier runs"
            )
            stats.runs += 1
            for page in range(pages):
                await asyncio.sleep(0.01)  # "fetching"
                if page % 4 == 3:
                    stats.requests_failed += 1
                else:
                    stats.requests_finished += 1
                stats.last_urls = [*stats.last_urls, f"https://shop.example/p/{page}"][-3:]
            await state.teardown()
        recorded = len(store.stream(state.stream_id))
    print(f"  after run: {stats.requests_finished} finished, {stats.requests_failed} failed")
    print(f"  events in {state.stream_id}: {recorded} (one per changed persist)")
    return stats


def main(argv: list[str] | None = None) -> None:
    """Crawl twice with a restart in between and show the statistics carried over."""
    args = sys.argv[1:] if argv is None else argv
    with tempfile.TemporaryDirectory() as tmp:
        url = args[0] if args else f"sqlite:///{Path(tmp) / 'crawler.db'}"
        print(f"store: {url}")
        print("run 1")
        first = asyncio.run(crawl(url, pages=8))
        print("run 2 (after a restart)")
        second = asyncio.run(crawl(url, pages=4))
    assert second.runs == first.runs + 1
    total = second.requests_finished + second.requests_failed
    assert total == first.requests_finished + first.requests_failed + 4
    print("the second run continued from the first run's statistics")


if __name__ == "__main__":
    main()
