"""The dataloader contract, in one base class.

A concrete loader says which upstream call fetches a batch (`fetch`) and how a record maps
back to its key (`key_attribute`, the record's attribute holding it, read in C; or `key_of`,
a method of its own); the base does the rest: one upstream call per batch with
duplicates removed, results realigned to keys, `None` for a key the upstream does not know,
and the batch's error for every key when the call fails, so each field fed by it becomes null
with its own path. The batch span and metric attach through `observe`, a hook the engine gives
each loader when a request first asks for it (`bff.graph.services.Loaders`): telemetry's
batch span and metric; loaders and resolvers never import telemetry.

It offers aiodataloader's `DataLoader` interface (`load`, `load_many`, `prime`, `clear`,
`clear_all`: the `KeyLoader` protocol, checked by the type checker) and its timing (keys
requested within the same few loop turns share one batch), but batches lists of keys rather
than single keys: `load_settled` — the form a field of many
parents uses, one value or exception per key — costs one waiter per batch, where
aiodataloader's machinery costs a future, a queue entry and a callback per key (about a sixth
of a Dashboard's CPU before this). Settled values are kept per request, errors included, as
aiodataloader keeps its settled futures.

With the response cache on (`cache.enabled`), items outlive their request in the per-item
cache of the loader's upstream pool (`bff.upstream.item_cache`): a batch takes the items kept
there and calls its upstream for the missing keys only; the items it fetched are kept for as
long as their answers allow. A mutation's loaders never read it. With `cache.store: redis`
the items are shared by the replicas, written as msgpack of the loader's value type (its
second type argument, `BatchLoader[K, V, R]`); a loader whose `V` msgpack cannot decode
(`Any`, say) keeps its items in this process.
"""

from __future__ import annotations

import asyncio
import keyword
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from functools import partial
from itertools import filterfalse
from operator import attrgetter
from typing import (
    Any,
    ClassVar,
    Generic,
    Protocol,
    Self,
    TypeGuard,
    TypeVar,
    get_args,
    get_origin,
    runtime_checkable,
)

from bff.errors import BffError
from bff.graph.keys import Keys
from bff.upstream import UpstreamPool
from bff.upstream.header_policy import current_answers, used_answers
from bff.upstream.item_cache import SHARED, ItemCodec, principal_of
from bff.upstream.response_cache import HIT, ResponseCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
R = TypeVar("R")
K_in = TypeVar("K_in", bound=Hashable, contravariant=True)


@runtime_checkable
class KeyLoader(Protocol[K_in, V]):
    """What resolvers may use of a per-request dataloader."""

    def load(self, key: K_in) -> asyncio.Future[V | None]: ...

    def load_many(self, keys: Iterable[K_in]) -> asyncio.Future[list[V | None]]: ...

    async def load_settled(self, keys: Sequence[K_in]) -> list[V | Exception | None]: ...

    def prime(self, key: K_in, value: V | None) -> Self: ...

    def clear(self, key: K_in) -> Self: ...

    def clear_all(self) -> Self: ...

    def cancel_pending(self) -> None: ...


# Around each batch call: (loader class name, upstream, number of keys) -> a context manager,
# or None when there is nothing to wrap the call in (no span: entering a null context would
# cost two Python calls per batch).
BatchHook = Callable[[str, str, int], AbstractContextManager[object] | None]


class _Batch:
    """Keys asked for within the same few loop turns; `done` settles when all have values."""

    __slots__ = ("_values", "done", "keys", "results", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.keys: Keys = Keys()  # distinct: each joins once
        self.results: list[Any] | None = None  # aligned to `keys`, once the call answered
        self._values: dict[Any, Any] | None = None
        self.done: asyncio.Future[None] = loop.create_future()
        self.task: asyncio.Task[None] | None = None  # once dispatched

    @property
    def values(self) -> dict[Any, Any]:
        """The results by key, made when first asked for (the common case never asks)."""
        if self.results is None:
            return {}
        if self._values is None:
            self._values = dict(zip(self.keys, self.results, strict=True))
        return self._values


class BatchLoader(Generic[K, V, R]):
    """Loads `V` by key through one batch call returning records `R`."""

    upstream: str = ""
    key_attribute: str = ""  # the records' attribute that is their key (or override `key_of`)
    observe: BatchHook | None = None  # set by the engine: the batch span and metric
    # per loader class: its per-item cache name and codec (None: V has no msgpack form)
    _item_forms: ClassVar[dict[type, tuple[str, ItemCodec | None]]] = {}

    def __init__(self, clients: Any) -> None:
        self.clients = clients
        self._settled: dict[K, Any] = {}  # value, None or exception, per key
        self._waiting: dict[K, _Batch] = {}  # keys of batches not settled yet
        # or, while one batch alone holds every waiting key, that batch (`_spread`)
        self._sole: _Batch | None = None
        self._open: _Batch | None = None  # the batch still taking keys
        self._pending = 0  # batches opened and not released (`_release`)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cancelled = False  # `cancel_pending` was called: no batch starts any more

    async def fetch(self, keys: list[K]) -> Iterable[R]:
        """One upstream call for all `keys`."""
        raise NotImplementedError

    def key_of(self, record: R) -> K:
        if self.key_attribute:
            key: K = getattr(record, self.key_attribute)
            return key
        raise NotImplementedError

    def collect(self, keys: Sequence[K], records: Iterable[R]) -> list[V | None]:
        """Realign `records` to `keys`; by default one record per key, `None` when missing.

        With `key_attribute` (and `key_of` not overridden) the records are indexed without a
        Python call per record (`_index_by`): a Dashboard realigns a hundred of them."""
        found: dict[Any, Any]
        if self.key_attribute and type(self).key_of is BatchLoader.key_of:
            found = _index_by(self.key_attribute)(records)
        else:
            found = {self.key_of(r): r for r in records}
        return list(map(found.get, keys))

    async def batch_load_fn(self, keys: list[K]) -> list[V | BffError | None]:
        cache = self._response_cache()
        answers = current_answers()
        if cache is None or (answers is not None and answers.mutation):
            try:
                records = await self.fetch(keys)
            except BffError as error:
                return [error] * len(keys)
            return list(self.collect(keys, records))
        return await self._load_through(cache, keys)

    async def _load_through(self, cache: ResponseCache, keys: list[K]) -> list[Any]:
        """The per-item cache: the kept items of `keys`, one batch call for the others, whose
        items are kept as long as the answers they came from allow."""
        name, codec = self._item_form()
        items = cache.items
        # the caller's scope, needed to read only once some item is private (or shared)
        principal = self._principal() if items.per_principal(codec) else SHARED
        request = current_answers()  # the client request's, for the header policy
        kept, count, fresh = await items.lookup(name, keys, principal, codec)
        if not keys:
            return []
        if fresh is not None:
            cache.count(self.upstream, HIT)  # an event on this batch's span, too
            if request is not None:
                request.reused(fresh)
            if count == len(keys):  # all kept: the warm batch, no call
                return kept
        missing = Keys(k for k, v in zip(keys, kept, strict=True) if v is None) if count else keys
        fetched: dict[Any, Any] = {}
        with used_answers() as used:  # this batch's answers, recorded apart
            try:
                records = await self.fetch(missing)
                fetched = dict(zip(missing, self.collect(missing, records), strict=True))
            except BffError as error:
                fetched = dict.fromkeys(missing, error)
        if request is not None:
            request.merge(used)
        fresh = used.freshness()
        if fresh.private and principal == SHARED:
            principal = self._principal()
        await items.put_many(name, fetched.items(), fresh, principal, codec)
        if not count:
            return list(map(fetched.__getitem__, keys))
        return [fetched[k] if v is None else v for k, v in zip(keys, kept, strict=True)]

    def _principal(self) -> str:
        return principal_of(getattr(self.clients, "headers", {}))

    @classmethod
    def _item_form(cls) -> tuple[str, ItemCodec | None]:
        """This loader's name in the per-item cache and the codec of its values, made once."""
        form = BatchLoader._item_forms.get(cls)
        if form is None:
            codec = None
            value_type = _value_type(cls)
            if value_type is not None:
                try:
                    codec = ItemCodec(value_type)
                except TypeError:
                    codec = None  # no msgpack form: its items stay in this process
            form = BatchLoader._item_forms[cls] = (f"{cls.__module__}.{cls.__qualname__}", codec)
        return form

    def _response_cache(self) -> ResponseCache | None:
        """The cache of this loader's upstream pool, when the gateway has one (`cache`)."""
        pools = getattr(self.clients, "pools", None)
        if not self.upstream or not _is_mapping(pools):
            return None
        pool = pools.get(self.upstream)
        return pool.cache if isinstance(pool, UpstreamPool) else None

    async def load_settled(self, keys: Sequence[K]) -> list[V | Exception | None]:
        """One value or exception per key (duplicates kept, realigned), from one batch."""
        settled = self._settled
        known = settled.__contains__
        batches = self._batches_for(keys) if not all(map(known, keys)) else ()
        for batch in batches:
            done = batch.done
            if not done.done():
                # a future of this waiter's own, as `asyncio.shield` gives (a cancelled waiter
                # must not cancel a batch others wait for), without shield's Python closures
                waiter = done.get_loop().create_future()
                done.add_done_callback(partial(_wake, waiter))
                await waiter
        if len(batches) == 1:  # one batch, which these keys opened: its results, as they are
            results = batches[0].results
            if results is not None and batches[0].keys[: len(keys)] == keys:
                return results[: len(keys)]
        try:  # remembered, as nearly always: realigned in C
            return list(map(settled.__getitem__, keys))
        except KeyError:  # cleared meanwhile, or a bug's error (never remembered)
            return [settled[k] if k in settled else _value_in(batches, k) for k in keys]

    def load(self, key: K) -> asyncio.Future[V | None]:
        """A future of the value for `key`: its exception when the batch failed for it."""
        if key is None:
            raise TypeError("load() needs a key, got None")
        future: asyncio.Future[V | None] = self._running_loop().create_future()
        if key in self._settled:
            _settle(future, self._settled[key])
        else:
            (batch,) = self._batches_for((key,))
            batch.done.add_done_callback(lambda done: _deliver(future, done, batch, key))
        return future

    def load_many(self, keys: Iterable[K]) -> asyncio.Future[list[V | None]]:
        return asyncio.gather(*(self.load(key) for key in keys))

    def prime(self, key: K, value: V | None) -> Self:
        """Remember `value` for `key` unless the key is already known."""
        if key not in self._settled and key not in self._spread():
            self._settled[key] = value
        return self

    def clear(self, key: K) -> Self:
        """Forget `key`: the next load asks the upstream again."""
        self._settled.pop(key, None)
        self._spread().pop(key, None)
        return self

    def clear_all(self) -> Self:
        self._settled.clear()
        self._waiting.clear()
        self._sole = None
        return self

    def cancel_pending(self) -> None:
        """Cancel the batches not settled yet, dispatched or not: their request is gone
        (its client hung up), so their upstream calls are abandoned."""
        self._cancelled = True
        for batch in {id(b): b for b in self._spread().values()}.values():
            if batch.task is not None:
                batch.task.cancel()
            batch.done.cancel()  # its waiters, if a task never ran to settle it

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _batches_for(self, keys: Iterable[K]) -> list[_Batch]:
        """The batches that will settle `keys`: queued or in flight, or the open one."""
        settled = self._settled
        if self._sole is None and not self._waiting:  # nothing in flight: all join, in C
            fresh = dict.fromkeys(filterfalse(settled.__contains__, keys) if settled else keys)
            if not fresh:
                return []
            joined = self._open or self._open_batch()
            if joined.keys:  # its own keys were cleared meanwhile: they are not waiting
                self._waiting = dict.fromkeys(fresh, joined)
            else:  # its keys are all that waits: no key -> batch map made unless asked
                self._sole = joined
            joined.keys.extend(fresh)
            return [joined]
        waiting = self._spread()
        batches: list[_Batch] = []
        for key in keys:
            if key in settled:
                continue
            batch = waiting.get(key)
            if batch is None:
                batch = self._open or self._open_batch()
                batch.keys.append(key)
                waiting[key] = batch
            if batch not in batches:
                batches.append(batch)
        return batches

    def _spread(self) -> dict[K, _Batch]:
        """The waiting keys by batch, the sole batch's keys included from now on."""
        sole = self._sole
        if sole is not None:  # `_waiting` is empty while a batch is the sole one
            self._waiting = dict.fromkeys(sole.keys, sole)
            self._sole = None
        return self._waiting

    def _open_batch(self) -> _Batch:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        batch = self._open = _Batch(loop)
        self._pending += 1
        # Two loop turns before the keys are taken, as aiodataloader's dispatch takes: loads
        # from tasks started in this turn (one per sibling field or list item) join this batch.
        loop.call_soon(loop.call_soon, self._dispatch, batch)
        return batch

    def _dispatch(self, batch: _Batch) -> None:
        if self._open is batch:
            self._open = None
        if self._cancelled:
            batch.done.cancel()
            return
        batch.task = (self._loop or self._running_loop()).create_task(self._run(batch))

    async def _run(self, batch: _Batch) -> None:
        keys, remember = batch.keys, True
        try:
            hook = self.observe  # inline, not a coroutine of its own: two Python calls a batch
            scope = None if hook is None else hook(type(self).__name__, self.upstream, len(keys))
            if scope is None:
                values = await self.batch_load_fn(keys)
            else:
                with scope:
                    values = await self.batch_load_fn(keys)
            if len(values) != len(keys):
                name = type(self).__name__
                raise TypeError(f"{name} returned {len(values)} values for {len(keys)} keys")
            batch.results = values if type(values) is list else list(values)
        except asyncio.CancelledError:
            batch.done.cancel()
            raise
        except Exception as error:  # a bug, not an upstream failure: not remembered
            batch.results, remember = [error] * len(keys), False
        finally:
            self._release(batch, remember)
        batch.done.set_result(None)

    def _release(self, batch: _Batch, remember: bool) -> None:
        """Keys stop waiting for `batch`; their values are remembered unless cleared since."""
        waiting, settled = self._waiting, self._settled
        self._pending -= 1
        if self._sole is batch:  # its keys alone were waiting, and none was cleared
            self._sole = None
            if remember and batch.results is not None:
                settled.update(zip(batch.keys, batch.results, strict=True))
            return
        if not self._pending and len(waiting) == len(batch.keys):
            waiting.clear()  # the only batch in flight, none of its keys cleared meanwhile
            if remember and batch.results is not None:
                settled.update(zip(batch.keys, batch.results, strict=True))
            return
        for key in batch.keys:
            if waiting.get(key) is batch:
                del waiting[key]
                if remember and key in batch.values:
                    settled[key] = batch.values[key]


Index = Callable[[Iterable[Any]], dict[Any, Any]]
_INDEXES: dict[str, Index] = {}


def _index_by(attribute: str) -> Index:
    """`{r.<attribute>: r for r in records}`, compiled once per attribute name: the
    comprehension's attribute loads are the interpreter's specialised ones, and it costs a
    third fewer instructions than `dict(zip(map(attrgetter(name), records), records))`
    (counted). Only an identifier reaches the source; another name (`a.b`) is read by
    `attrgetter`."""
    index = _INDEXES.get(attribute)
    if index is None:
        if attribute.isidentifier() and not keyword.iskeyword(attribute):
            source = f"lambda records: {{r.{attribute}: r for r in records}}"
            index = eval(source, {"__builtins__": {}})  # an identifier, checked
        else:
            read = attrgetter(attribute)
            index = _indexer(read)
        _INDEXES[attribute] = index
    return index


def _indexer(read: Callable[[Any], Any]) -> Index:
    return lambda records: {read(r): r for r in records}


_MAPPING_TYPES: set[type] = set()  # the `pools` classes seen (one: the app's registry)


def _is_mapping(value: object) -> TypeGuard[Mapping[Any, Any]]:
    """`isinstance(value, Mapping)` without the ABC's Python-level check for a known class."""
    if type(value) in _MAPPING_TYPES:
        return True
    if isinstance(value, Mapping):
        _MAPPING_TYPES.add(type(value))
        return True
    return False


def _value_type(cls: type) -> Any:
    """`V` of the `BatchLoader[K, V, R]` that `cls` derives from; `None` when it is not a
    concrete type (`Any`, a type variable)."""
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            origin = get_origin(base)
            if isinstance(origin, type) and issubclass(origin, BatchLoader):
                args = get_args(base)
                value = args[1] if len(args) == 3 else None
                if value is Any or isinstance(value, TypeVar):
                    return None
                return value
    return None


def _value_in(batches: Sequence[_Batch], key: Any) -> Any:
    for batch in batches:
        if key in batch.values:
            return batch.values[key]
    raise LookupError(key)  # unreachable: every waited key belongs to one of `batches`


def _deliver(
    future: asyncio.Future[Any], done: asyncio.Future[None], batch: _Batch, key: Any
) -> None:
    if done.cancelled():
        future.cancel()
    else:
        _settle(future, _value_in((batch,), key))


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if future.done():
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)


def _wake(waiter: asyncio.Future[None], done: asyncio.Future[None]) -> None:
    """A waiter of `load_settled` learns that its batch settled (or was cancelled)."""
    if waiter.done():  # its task was cancelled meanwhile: the batch goes on for the others
        return
    if done.cancelled():
        waiter.cancel()
    else:
        waiter.set_result(None)
