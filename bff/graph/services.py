"""A graph's services as a request sees them: typed clients and loaders, made on first use.

A graph declares its clients and loaders once, as attributes of two small classes:

    class ShopClients(Clients):
        users = client(UsersClient)                  # upstream "users", the attribute's name
        catalog = client(CatalogClient, upstream="products")

    class ShopLoaders(Loaders):
        users = loader(UserLoader)

Each request gets one `Clients` (over the gateway's pools, sending the caller's identity
headers) and one `Loaders` (over those clients, each loader given the engine's batch hook);
an attribute is built the first time a resolver reads it and then is a plain instance
attribute, so a query that touches two services builds two clients, not every one. The
declared upstreams are what the gateway requires in `upstreams` (`Clients.upstreams()`).
Generated sources, which have no class per service, use `Loaders.keyed` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar, overload

from bff.graph.loader import BatchHook, BatchLoader
from bff.upstream import UpstreamPool

C = TypeVar("C")
L = TypeVar("L", bound=BatchLoader[Any, Any, Any])


class client(Generic[C]):  # lower case: it reads as a declaration, like dataclasses.field
    """A client attribute of a `Clients` class: `cls(pool, identity_headers)` on first use."""

    def __init__(
        self, cls: Callable[[UpstreamPool, Mapping[str, str]], C], *, upstream: str = ""
    ) -> None:
        self.cls = cls
        self.upstream = upstream

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.upstream = self.upstream or name

    @overload
    def __get__(self, instance: None, owner: type) -> client[C]: ...

    @overload
    def __get__(self, instance: Clients, owner: type) -> C: ...

    def __get__(self, instance: Clients | None, owner: type) -> client[C] | C:
        if instance is None:
            return self
        made = self.cls(instance.pools[self.upstream], instance.headers)
        instance.__dict__[self.name] = made  # later reads find the instance attribute
        return made


class loader(Generic[L]):
    """A loader attribute of a `Loaders` class: `cls(clients)` on first use, observed."""

    def __init__(self, cls: Callable[[Any], L]) -> None:
        self.cls = cls

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> loader[L]: ...

    @overload
    def __get__(self, instance: Loaders, owner: type) -> L: ...

    def __get__(self, instance: Loaders | None, owner: type) -> loader[L] | L:
        if instance is None:
            return self
        made = instance.adopt(self.cls(instance.clients))
        instance.__dict__[self.name] = made
        return made


class Clients:
    """The clients of one request, bound to the caller's identity headers."""

    def __init__(self, pools: Mapping[str, UpstreamPool], headers: Mapping[str, str]) -> None:
        self.pools = pools
        self.headers = headers

    @classmethod
    def upstreams(cls) -> frozenset[str]:
        """The upstream names the declared clients call."""
        return frozenset(
            value.upstream
            for klass in cls.__mro__
            for value in vars(klass).values()
            if isinstance(value, client)
        )


class Loaders:
    """The dataloaders of one request: a cache never outlives its request, so one caller's
    data never reaches another's answer."""

    def __init__(self, clients: Any, observe: BatchHook | None = None) -> None:
        self.clients = clients
        self.observe = observe
        self.made: list[BatchLoader[Any, Any, Any]] = []
        self._keyed: dict[Hashable, Any] = {}

    def adopt(self, made: L) -> L:
        """Give a new loader the batch hook and remember it for `cancel_pending`."""
        made.observe = self.observe
        self.made.append(made)
        return made

    def keyed(self, key: Hashable, make: Callable[[Any], L]) -> L:
        """The loader kept under `key` for this request, made by `make(clients)` once."""
        found = self._keyed.get(key)
        if found is None:
            found = self._keyed[key] = self.adopt(make(self.clients))
        return found

    def cancel_pending(self) -> None:
        """Abandon every batch still loading: the request they are for is gone."""
        for made in self.made:
            made.cancel_pending()
