"""An ordered, case-insensitive header list kept as raw bytes (names lower-cased at parse)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class Headers:
    """Header fields in arrival order; names are lower-case bytes, values raw bytes.

    A list rather than a dict because HTTP allows repeated fields and order matters for
    some of them; lookups scan the list, which is faster than hashing for typical sizes.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self._items: list[tuple[bytes, bytes]] = list(items)

    @classmethod
    def adopt(cls, items: list[tuple[bytes, bytes]]) -> Headers:
        """Wrap `items` without copying; the caller gives the list up (parsers, per request)."""
        headers = cls.__new__(cls)
        headers._items = items
        return headers

    def get(self, name: bytes, default: bytes | None = None) -> bytes | None:
        """Return the first value of `name` (lower-case), or `default`."""
        for key, value in self._items:
            if key == name:
                return value
        return default

    def get_all(self, name: bytes) -> list[bytes]:
        """Return every value of `name` in order."""
        return [value for key, value in self._items if key == name]

    def __contains__(self, name: object) -> bool:
        for key, _ in self._items:  # noqa: SIM110 - a loop beats any() with a generator here
            if key == name:
                return True
        return False

    def add(self, name: bytes, value: bytes) -> None:
        """Append a field, keeping existing ones."""
        self._items.append((name, value))

    def set(self, name: bytes, value: bytes) -> None:
        """Replace every field `name` by a single one (in place of the first, if any)."""
        items = self._items
        for index, (key, _) in enumerate(items):
            if key == name:
                items[index] = (name, value)
                if len(items) > index + 1:
                    items[index + 1 :] = [item for item in items[index + 1 :] if item[0] != name]
                return
        items.append((name, value))

    def setdefault(self, name: bytes, value: bytes) -> None:
        """Add `name` only if it is absent."""
        for key, _ in self._items:
            if key == name:
                return
        self._items.append((name, value))

    def remove(self, name: bytes) -> None:
        """Drop every field `name`."""
        for key, _ in self._items:
            if key == name:
                self._items = [item for item in self._items if item[0] != name]
                return

    def remove_many(self, names: frozenset[bytes]) -> None:
        """Drop every field whose name is in `names`."""
        for key, _ in self._items:
            if key in names:
                self._items = [item for item in self._items if item[0] not in names]
                return

    def items(self) -> list[tuple[bytes, bytes]]:
        """The underlying list (mutating it mutates the headers)."""
        return self._items

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"
