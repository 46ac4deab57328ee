"""`INT_TEXT[n]`: an int's decimal text, remembered, for ids written into answers and URLs.

A Dashboard writes about 80 integer ids as GraphQL `ID` strings and as many again into its
batch URLs (`ids=1,2,3`), the same ids request after request; `str(n)` converts each anew
(a type call and a division loop, about 2 % of a Dashboard's instructions, counted). A hit
here is one dict lookup in C, and `map(INT_TEXT.__getitem__, ids)` stays in C. Only exact
`int`s belong here (`True` would be answered as `"1"`); the table is cleared whenever it
reaches `LIMIT` entries, so memory stays bounded whatever the ids.
"""

from __future__ import annotations

LIMIT = 65_536


class IntText(dict[int, str]):
    """`self[n]` is `str(n)`; a miss converts (raising `ValueError` past `str`'s digit
    limit, as `str` does) and remembers."""

    def __missing__(self, value: int) -> str:
        text = str(value)
        if len(self) >= LIMIT:
            self.clear()
        self[value] = text
        return text


INT_TEXT = IntText()
