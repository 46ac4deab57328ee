"""Client of the users service."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from bff.graph.client import ServiceClient, id_list
from upstream_clients.records import Items, User

USER = msgspec.json.Decoder(User)
USERS = msgspec.json.Decoder(Items[User])


class UsersClient(ServiceClient):
    async def get_user(self, user_id: int) -> User:
        """Raises `NotFound` when the user does not exist."""
        return await self.get_decoded(USER, f"/users/{user_id}")

    async def get_users(self, ids: Iterable[int]) -> tuple[User, ...]:
        """The users that exist among `ids`, in any order."""
        return (await self.get_decoded(USERS, "/users", {"ids": id_list(ids)})).items
