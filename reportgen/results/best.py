"""Keep the K best records: a bounded collection ranked by a key, the same whatever order the records come in.

The report keeps a fixed number of pictures however many images a run has: the top patches of each region,
the most and least confident examples, the image browser's sample (``reportgen.results.patches``). The order in
which records arrive depends on how the run was done (one process, shards merged in any order, a
checkpoint saved and reloaded), but the report must not: which records are kept may depend only on the
records. So records with equal keys (common: probabilities that round to 1.0) are ranked by an ``order``
that the caller derives from the record itself (``patches.tie_order``: the image's name), never by when
they arrived. The better of two records has the larger key, or on equal keys the smaller order.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

Record = TypeVar("Record")


class _Entry(Generic[Record]):
    """One kept record with its key and order; ``a < b`` means a is the worse (the heap's top is evicted first)."""

    __slots__ = ("key", "order", "record")

    def __init__(self, key: Any, order: Any, record: Record):
        self.key, self.order, self.record = key, order, record

    def __lt__(self, other: _Entry) -> bool:
        if self.key != other.key:
            return self.key < other.key
        return other.order < self.order


class Best(Generic[Record]):
    """The ``size`` best records offered so far: largest ``key`` first, equal keys by smallest ``order``.

    ``key`` and ``order``: any values that compare with those of the other records (floats, strings, tuples
    of them; no NaN). Records are kept as given (not copied), so one record may sit in several ``Best``s and
    a record that leaves every one of them leaves memory. For any set of offered records the kept ones are
    the same whatever their arrival order, however they were split into parts merged with ``merge``, and
    after a ``to_dict``/``from_dict`` round trip, as long as no two records share both key and order.
    """

    def __init__(self, size: int):
        self.size = size
        self._heap: list[_Entry[Record]] = []  # min-heap: the worst kept record on top

    def wants(self, key: Any, order: Any) -> bool:
        """Whether a record with this key and order would be kept now (so the caller can skip building it)."""
        if len(self._heap) < self.size:
            return True
        if self.size <= 0:
            return False
        worst = self._heap[0]  # (compared inline: this runs for every region of every image)
        return key > worst.key or (key == worst.key and order < worst.order)

    def offer(self, key: Any, record: Record, order: Any) -> bool:
        """Keep ``record`` if it is among the best so far (evicting the worst one kept); True when kept."""
        if not self.wants(key, order):
            return False
        entry = _Entry(key, order, record)
        if len(self._heap) < self.size:
            heapq.heappush(self._heap, entry)
        else:
            heapq.heapreplace(self._heap, entry)
        return True

    def merge(self, other: Best[Record]) -> None:
        """Add another part's kept records (a shard of the same run): the result is what one run would keep."""
        for entry in other._heap:
            self.offer(entry.key, entry.record, entry.order)

    def best_first(self) -> list[Record]:
        """The kept records, best first."""
        return [entry.record for entry in sorted(self._heap, reverse=True)]

    def __len__(self) -> int:
        return len(self._heap)

    def __iter__(self) -> Iterator[Record]:
        """The kept records in no particular order."""
        return (entry.record for entry in self._heap)

    def to_dict(self, record_to_json: Callable[[Record], Any] | None = None) -> list[list]:
        """[[key, record], ...] best first, JSON-safe when keys and (converted) records are; the order is not
        saved: ``from_dict`` derives it from each record again."""
        convert = record_to_json or (lambda record: record)
        return [[entry.key, convert(entry.record)] for entry in sorted(self._heap, reverse=True)]

    @classmethod
    def from_dict(cls, size: int, entries: Iterable, order_of: Callable[[Any], Any],
                  record_from_json: Callable[[Any], Record] | None = None) -> Best:
        """A ``Best`` of ``size`` holding what ``to_dict`` wrote; ``order_of(record)``: each record's order."""
        best: Best = cls(size)
        for key, data in entries:
            record = data if record_from_json is None else record_from_json(data)
            best.offer(key, record, order_of(record))
        return best
