"""Client of the users service."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bff.graph.client import ServiceClient, id_list
from upstream_clients.records import User, make


def user_record(d: Any) -> User:
    return make(User, (int(d["id"]), str(d["name"]), str(d["email"]), str(d["createdAt"])))


class UsersClient(ServiceClient):
    async def get_user(self, user_id: int) -> User:
        """Raises `NotFound` when the user does not exist."""
        return self.parse(user_record, await self.get(f"/users/{user_id}"))

    async def get_users(self, ids: Iterable[int]) -> list[User]:
        """The users that exist among `ids`, in any order."""
        return self.parse_items(user_record, await self.get("/users", {"ids": id_list(ids)}))
