"""Core INSERTs for rows built as ORM objects, for write paths that run on every request."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert, Table, bindparam, insert, inspect, select, union_all
from sqlalchemy.orm import Session

from server.db.tables import Base


@functools.cache
def _insert_returning_key(table: Table, key: str) -> Insert:
    """Built once per table: a statement object keeps its cache key once computed."""
    return insert(table).returning(table.c[key], sort_by_parameter_order=True)


def insert_new(session: Session, rows: Sequence[Base]) -> None:
    """INSERT new rows of one mapped class in one statement and give each its id.

    The ORM's flush does the same with per-object bookkeeping that costs more than the SQL
    (posting a request paid about a millisecond for its two flushes). The objects stay
    transient: the session does not track them, so callers build their views from them and
    change them no further in this transaction. Only attributes the caller set are sent;
    column defaults fill the rest in the database, not on the object.
    """
    if not rows:
        return
    table = _table_of(rows[0])
    (key,) = table.primary_key.columns
    values = [_values(row) for row in rows]
    session.flush()  # what the use case added before goes first, as session.execute would
    ids = session.connection().execute(_insert_returning_key(table, key.key), values).scalars()
    attribute = _key_attribute(rows[0])
    for row, new_id in zip(rows, ids, strict=True):
        setattr(row, attribute, new_id)


def insert_with_children(
    session: Session, parent: Base, children: Sequence[Base], *, link: str, sentinel: str
) -> None:
    """INSERT a new row and its new children, whose `link` attribute takes the parent's id,
    and give each its id.

    PostgreSQL: one statement, the parent's INSERT in a data-modifying CTE that the children's
    INSERT ... SELECT reads its id from: a round trip fewer on posting a request. The children
    come back matched by `sentinel`, a column unique among them (RETURNING's row order is not
    promised for INSERT ... SELECT). SQLite has no such CTE: two statements, as insert_new.
    """
    if not children or session.connection().dialect.name != "postgresql":
        insert_new(session, [parent])
        for child in children:
            setattr(child, link, _id_of(parent))
        insert_new(session, children)
        return
    parent_table, child_table = _table_of(parent), _table_of(children[0])
    parent_values = _with_defaults(parent_table, _values(parent))
    child_values = [_with_defaults(child_table, _values(child)) for child in children]
    parent_columns = tuple(sorted(parent_values))
    child_columns = tuple(sorted(set().union(*child_values) - {link}))
    shape = (parent_columns, child_columns, len(children))
    statement = _parent_and_children(parent_table, child_table, link, sentinel, *shape)
    params = {f"p_{c}": v for c, v in parent_values.items()}
    for i, values in enumerate(child_values):
        params |= {f"c{i}_{c}": values[c] for c in child_columns}
    session.flush()  # what the use case added before goes first, as session.execute would
    returned = session.connection().execute(statement, params).all()
    by_sentinel = {getattr(child, sentinel): child for child in children}
    assert len(by_sentinel) == len(children) == len(returned), "sentinel must be unique"
    child_key = _key_attribute(children[0])
    for child_id, parent_id, mark in returned:
        child = by_sentinel[mark]
        setattr(child, child_key, child_id)
        setattr(child, link, parent_id)
    setattr(parent, _key_attribute(parent), returned[0][1])


@functools.cache
def _parent_and_children(
    parent: Table,
    child: Table,
    link: str,
    sentinel: str,
    parent_columns: tuple[str, ...],
    child_columns: tuple[str, ...],
    count: int,
) -> Insert:
    """Built once per shape (tables, columns set, number of children)."""
    (parent_key,) = parent.primary_key.columns
    (child_key,) = child.primary_key.columns
    new_parent = (
        insert(parent)
        .values({c: bindparam(f"p_{c}", type_=parent.c[c].type) for c in parent_columns})
        .returning(parent_key)
        .cte("new_parent")
    )
    rows = [
        select(
            new_parent.c[parent_key.key],
            *(bindparam(f"c{i}_{c}", type_=child.c[c].type) for c in child_columns),
        )
        for i in range(count)
    ]
    return (
        insert(child)
        .from_select(
            [link, *child_columns],
            rows[0] if count == 1 else union_all(*rows),
            include_defaults=False,  # _with_defaults has filled them in
        )
        .returning(child_key, child.c[link], child.c[sentinel])
        .add_cte(new_parent)
    )


def _values(row: Base) -> dict[str, Any]:
    """The columns the caller set on a new row (insert_new's rule: defaults fill the rest)."""
    state = vars(row)
    return {column: state[attr] for attr, column in _columns(type(row)) if attr in state}


def _with_defaults(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """`values` plus the Python-side defaults of the columns it leaves out (an INSERT ...
    SELECT does not apply them; the database would write NULL)."""
    for column in table.columns:
        default = column.default
        if column.key in values or column.primary_key or default is None:
            continue
        if default.is_scalar:
            values[column.key] = default.arg  # type: ignore[attr-defined]
        elif default.is_callable:
            values[column.key] = default.arg(None)  # type: ignore[attr-defined]
    return values


@functools.cache
def _columns(cls: type[Base]) -> tuple[tuple[str, str], ...]:
    return tuple((a.key, a.columns[0].key) for a in inspect(cls).column_attrs)


def _table_of(row: Base) -> Table:
    table = inspect(type(row)).local_table
    assert isinstance(table, Table)
    return table


def _key_attribute(row: Base) -> str:
    mapper = inspect(type(row))
    (key,) = mapper.primary_key
    return mapper.get_property_by_column(key).key


def _id_of(row: Base) -> Any:
    return getattr(row, _key_attribute(row))
