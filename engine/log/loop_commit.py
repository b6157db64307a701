"""Group commit on the event loop, for a log in a local SQLite file.

The writer thread (:mod:`engine.log.writer`) seals and inserts each batch on its own thread.
Under load, its hand-overs of the interpreter lock to and from the event loop cost more CPU
than the sealing itself: every sqlite3 call and every SHA-256 of more than 2 KB releases the
lock, and the loop takes it each time (about 6 waits of the writer thread per record at 600
decisions/s; ``docs/benchmarks.md``, round 9). Here the decisions that await their record on
one event loop are sealed and inserted on that loop, one transaction per turn of the loop,
and only the COMMIT, where SQLite writes and syncs its write-ahead log, runs on a helper
thread, awaited: the loop never waits for the disk, and the lock changes hands about twice
per transaction.

One case commits on the loop itself: a batch of one record, with nothing queued behind it,
while the service says that its request is the only one in flight (:attr:`LoopGroupCommit.alone`,
set by the service). Then there is nothing for the loop to do while the disk syncs, and the
two hand-overs to the commit thread and back are what a lone decision waits for: round 15
measured 0.2 ms of p50 and 0.27 ms of CPU per admission at 100/s (``docs/benchmarks.md``).

The loop never waits for a lock either. When the writer lock is held (by the writer thread
for a synchronous append, or by another process of ``serve --workers``), when SQLite's own
lock is (a writer that does not take the writer lock), or when a transaction fails, the
batch goes to the writer thread, which waits for the locks, retries a failed batch draft by
draft, and reports each draft's error; the callers get the same answers either way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar

from engine.errors import StoreError
from engine.log.merkle import NodeKey
from engine.log.writer import Batch, GroupCommitWriter, Pending, RecordDraft, Sealer
from engine.one_thread import OneThread

Outcome = dict[str, Any] | BaseException
Due = tuple[Pending, "asyncio.Future[dict[str, Any]]"]


class OpenTransaction(Protocol):
    """A write transaction holding the writer lock, at the log head ``(size, last)``."""

    @property
    def size(self) -> int:
        """Records in the log."""
        ...

    @property
    def last(self) -> str:
        """The last record's hash."""
        ...

    def fetch(self, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        """Stored Merkle nodes, read inside the transaction."""
        ...


TxnT = TypeVar("TxnT", bound=OpenTransaction)


class Transactions(Protocol[TxnT]):
    """The store's side: open, fill, commit or abandon one write transaction."""

    def try_begin(self) -> TxnT | None:
        """Take the writer lock without waiting and begin; None when the lock is held."""
        ...

    def write_rows(self, txn: TxnT, batch: Batch) -> None:
        """Write the batch's rows and move the head (nothing is durable yet)."""
        ...

    def commit(self, txn: TxnT, batch: Batch) -> None:
        """Commit (on the commit thread); the writer lock is released whatever happens."""
        ...

    def abort(self, txn: TxnT) -> None:
        """Roll back and release the writer lock."""
        ...


class LoopGroupCommit(Generic[TxnT]):
    """Seals and inserts on the caller's event loop; commits on one helper thread."""

    def __init__(
        self, store: Transactions[TxnT], writer: GroupCommitWriter, *, max_batch: int = 512
    ) -> None:
        self._store = store
        self._writer = writer
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._due: list[Due] = []
        self._task: asyncio.Task[None] | None = None  # the drain; its loop owns ``_due``
        self._commits = OneThread("releasegate-log-commit")
        self.alone: Callable[[], bool] | None = None
        """True when the caller's request is the only one the process is serving: a batch of
        one record then commits on the loop (None: never)."""

    async def submit(self, draft: RecordDraft, seal: Sealer) -> dict[str, Any]:
        """Await the commit of ``draft`` (the sealed record). Raises :class:`StoreError`.

        A caller that is cancelled leaves the append queued: the record is still committed,
        as with the writer thread.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._commits.closed:
                raise StoreError("the decision log is closed")
            if self._task is not None and self._task.get_loop().is_closed():
                # That loop stopped before its transaction answered: its callers are gone.
                self._due, self._task = [], None
            mine = self._task is None or self._task.get_loop() is loop
            if mine:
                waiter: asyncio.Future[dict[str, Any]] = loop.create_future()
                self._due.append((Pending(draft, seal), waiter))
                if self._task is None:
                    self._task = loop.create_task(self._drain(), name="releasegate-log-commit")
        if not mine:  # another event loop's transactions are open: the writer thread
            return await self._writer.submit_async(draft, seal)
        return await waiter

    def close(self) -> None:
        """Refuse new appends and wait for a commit in progress."""
        self._commits.close()

    async def _drain(self) -> None:
        me = asyncio.current_task()
        due: list[Due] = []
        try:
            while True:
                with self._lock:
                    if self._task is not me:
                        return  # its loop closed and another loop took over
                    due = self._due[: self._max_batch]
                    del self._due[: len(due)]
                    if not due:
                        self._task = None
                        return
                await self._commit(due)
                due = []
        except BaseException:  # cancelled or collected with its loop: nobody is waiting
            with self._lock:
                if self._task is me:
                    due += self._due
                    self._due = []
                    self._task = None
            for _, waiter in due:
                if not waiter.get_loop().is_closed():
                    waiter.cancel()
            raise

    async def _commit(self, due: list[Due]) -> None:
        try:
            txn = self._store.try_begin()
        except Exception:  # noqa: BLE001 - e.g. SQLite locked by a writer without the lock
            txn = None
        if txn is None:
            await self._hand_over(due)
            return
        try:
            batch = self._writer.seal_batch([p for p, _ in due], txn.size, txn.last, txn.fetch)
            self._store.write_rows(txn, batch)
            inline = len(due) == 1 and not self._due and self.alone is not None and self.alone()
            if not inline:
                committed = asyncio.get_running_loop().run_in_executor(
                    self._commit_thread(), self._store.commit, txn, batch
                )
        except Exception:  # noqa: BLE001 - the writer thread retries and reports each draft
            self._store.abort(txn)
            await self._hand_over(due)
            return
        try:
            if inline:
                self._store.commit(txn, batch)
            else:
                await committed
        except Exception:  # noqa: BLE001 - rolled back and released by ``commit``
            await self._hand_over(due)
            return
        for (_, outcome), (_, waiter) in zip(batch.outcomes, due, strict=True):
            _settle(waiter, outcome)

    async def _hand_over(self, due: list[Due]) -> None:
        """The writer thread appends these drafts (it waits for the lock; retries one by one)."""
        results = await asyncio.gather(
            *(self._writer.submit_async(p.draft, p.seal) for p, _ in due), return_exceptions=True
        )
        for (_, waiter), result in zip(due, results, strict=True):
            _settle(waiter, result)

    def _commit_thread(self) -> ThreadPoolExecutor:
        pool = self._commits.executor()
        if pool is None:
            raise StoreError("the decision log is closed")
        return pool


def _settle(waiter: asyncio.Future[dict[str, Any]], outcome: Outcome) -> None:
    if waiter.done():  # its caller was cancelled; the record is committed all the same
        return
    if isinstance(outcome, asyncio.CancelledError):
        waiter.cancel()
    elif isinstance(outcome, BaseException):
        waiter.set_exception(outcome)
    else:
        waiter.set_result(outcome)
