"""The pagination envelope `{items, total, page, page_size, has_next, has_prev}` of every list."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from tortoise.queryset import QuerySet

ItemT = TypeVar("ItemT")

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 25


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    page: int = Field(default=1, ge=1, le=1_000_000)
    page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    total: int
    page: int
    page_size: int
    has_next: bool
    has_prev: bool

    @classmethod
    def of(cls, items: Sequence[Any], total: int, query: PageQuery) -> Page[Any]:
        return cls(
            items=list(items),
            total=total,
            page=query.page,
            page_size=query.page_size,
            has_next=query.page * query.page_size < total,
            has_prev=query.page > 1,
        )


async def paginate(
    queryset: QuerySet, query: PageQuery, to_item: Callable[[Any], Any]
) -> Page[Any]:
    """One page of an ordered queryset, with its total, each row converted by `to_item`."""
    total = await queryset.count()
    rows = await queryset.offset((query.page - 1) * query.page_size).limit(query.page_size)
    return Page.of([to_item(row) for row in rows], total, query)
