"""SQL on FHIR v2 ViewDefinitions: checked and compiled once, then run on
one resource at a time to give its rows.

Implements the ViewDefinition's processing algorithm
(https://build.fhir.org/ig/FHIR/sql-on-fhir-v2/StructureDefinition-ViewDefinition.html#processing-algorithm):
``select`` (nested), ``column`` (``collection``, ``type``, the ``ansi/type``
tag), ``forEach``, ``forEachOrNull``, ``repeat``, ``unionAll``, ``where``,
``constant`` and ``%rowIndex``, with the FHIRPath of ``fhirpath.py``.

A view's rows are tuples in its column order (``View.columns``): a
selection's own columns, then its nested selects' in order, then its
``unionAll``'s, as the specification orders them. Nothing here reads files
or knows a database: ``export.py`` reads, ``output.py`` writes.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from conformance.fhirpath import FhirPathError
from conformance.fhirpath._values import DateTime, Primitive, Quantity, Time, plain
from gateway.analytics.fhirpath import Path, compile_path, variables_used


class ViewDefinitionError(ValueError):
    """A ViewDefinition that cannot be run: malformed, a path that is not
    FHIRPath this runner has, a column defined twice, unionAll branches
    whose columns differ, an unknown or ill-defined constant."""


class ViewEvaluationError(ValueError):
    """A resource the view cannot turn into rows: several values for a
    column that is not a collection, a ``where`` that is not a Boolean, an
    evaluation error in a path."""


# FHIR types to the SQL types the specification maps them to (its "Default
# Type Mappings"), written as DuckDB spells them. ``decimal``, dates and
# times stay text, in FHIR's own format, so that no precision is lost.
SQL_TYPES: dict[str, str] = {
    "base64Binary": "BLOB",
    "boolean": "BOOLEAN",
    "canonical": "VARCHAR",
    "code": "VARCHAR",
    "date": "VARCHAR",
    "dateTime": "VARCHAR",
    "decimal": "VARCHAR",
    "id": "VARCHAR",
    "instant": "TIMESTAMP WITH TIME ZONE",
    "integer": "INTEGER",
    "integer64": "BIGINT",
    "markdown": "VARCHAR",
    "oid": "VARCHAR",
    "positiveInt": "INTEGER",
    "string": "VARCHAR",
    "time": "VARCHAR",
    "unsignedInt": "INTEGER",
    "uri": "VARCHAR",
    "url": "VARCHAR",
    "uuid": "VARCHAR",
    # FHIRPath's own types.
    "Boolean": "BOOLEAN",
    "String": "VARCHAR",
    "Integer": "INTEGER",
    "Decimal": "VARCHAR",
    "Date": "VARCHAR",
    "DateTime": "VARCHAR",
    "Time": "VARCHAR",
}
ANSI_TYPE_TAG = "ansi/type"
# The SQL types a column's ``ansi/type`` tag may name: a closed list, since
# the name is written into SQL.
_ANSI_TYPE = re.compile(
    r"(BOOLEAN|INT|INTEGER|BIGINT|SMALLINT|DOUBLE|REAL|FLOAT|DATE|TIME|TIMESTAMP"
    r"|TIMESTAMP WITH TIME ZONE|CHARACTER VARYING|VARCHAR|TEXT|BINARY|BLOB"
    r"|DECIMAL\(\d{1,2}, ?\d{1,2}\)|NUMERIC\(\d{1,2}, ?\d{1,2}\))",
    re.IGNORECASE,
)
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_CONSTANT_VALUE = re.compile(r"value[A-Z][A-Za-z0-9]*")
# The environment variables FHIRPath and FHIR define, and SQL on FHIR's.
_BUILT_IN = frozenset({"resource", "rootResource", "context", "ucum", "sct", "loinc", "rowIndex"})
ROW_INDEX = "%rowIndex"


@dataclass(frozen=True)
class Column:
    """One output column: its name, its path, whether it holds a list, its
    FHIR type (when declared) and the SQL type it is written as."""

    name: str
    path: Path
    collection: bool
    fhir_type: str | None
    sql_type: str
    description: str | None = None

    @property
    def is_row_index(self) -> bool:
        return self.path.text.strip() == ROW_INDEX


@dataclass(frozen=True)
class _Selection:
    columns: tuple[Column, ...]
    selects: tuple[_Selection, ...]
    union_all: tuple[_Selection, ...]
    for_each: Path | None
    or_null: bool
    repeat: tuple[Path, ...]
    width: int
    row_index_positions: tuple[int, ...]


@dataclass(frozen=True)
class View:
    """A checked, compiled ViewDefinition."""

    name: str
    resource: str
    columns: tuple[Column, ...]
    definition: Mapping[str, Any]
    _where: tuple[Path, ...]
    _select: _Selection
    _constants: Mapping[str, Any]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def rows(self, resource: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of one resource (none when it is of another type or the
        view's ``where`` leaves it out); ViewEvaluationError when it cannot
        be turned into rows."""
        if resource.get("resourceType") != self.resource:
            return []
        variables = dict(self._constants)
        variables["rowIndex"] = 0
        try:
            for where in self._where:
                if not _holds(where, resource, variables):
                    return []
            return list(_process(self._select, resource, resource, variables))
        except FhirPathError as exc:
            raise ViewEvaluationError(f"{resource.get('id')}: {exc}") from exc


def _holds(where: Path, resource: Mapping[str, Any], variables: dict[str, Any]) -> bool:
    result = where(resource, resource, variables)
    if not result:
        return False
    if len(result) == 1:
        value = plain(result[0])
        if type(value) is bool:
            return value
    raise ViewEvaluationError(
        f"where {where.text!r} is not a Boolean on {resource.get('resourceType')}/"
        f"{resource.get('id')}"
    )


def _process(
    selection: _Selection, node: Any, resource: Mapping[str, Any], variables: dict[str, Any]
) -> Iterator[tuple[Any, ...]]:
    """The rows of one selection on one node, as the specification's
    ``Process(S, N)``: each focus's parts (its columns, each nested select's
    rows, the unionAll's rows) multiplied out."""
    if selection.repeat:
        foci: list[Any] = []
        _traverse(selection.repeat, node, resource, variables, foci)
    elif selection.for_each is not None:
        foci = selection.for_each(node, resource, variables)
    else:
        foci = [node]
    if not foci:
        if selection.or_null:
            row: list[Any] = [None] * selection.width
            for position in selection.row_index_positions:
                row[position] = 0
            yield tuple(row)
        return
    iterating = selection.for_each is not None or bool(selection.repeat)
    outer_index = variables["rowIndex"]
    for index, focus in enumerate(foci):
        if iterating:
            variables["rowIndex"] = index
        own = tuple(_value(column, focus, resource, variables) for column in selection.columns)
        parts: list[list[tuple[Any, ...]]] = [[own]]
        for nested in selection.selects:
            parts.append(list(_process(nested, focus, resource, variables)))
        if selection.union_all:
            parts.append(
                [
                    row
                    for branch in selection.union_all
                    for row in _process(branch, focus, resource, variables)
                ]
            )
        for combination in itertools.product(*parts):
            yield tuple(itertools.chain.from_iterable(combination))
        if iterating:
            variables["rowIndex"] = outer_index
    if iterating:
        variables["rowIndex"] = outer_index


def _traverse(
    paths: tuple[Path, ...],
    node: Any,
    resource: Mapping[str, Any],
    variables: dict[str, Any],
    found: list[Any],
) -> None:
    for path in paths:
        for child in path(node, resource, variables):
            found.append(child)
            _traverse(paths, child, resource, variables, found)


def _value(
    column: Column, focus: Any, resource: Mapping[str, Any], variables: dict[str, Any]
) -> Any:
    result = column.path(focus, resource, variables)
    if column.collection:
        return [output_value(item) for item in result]
    if not result:
        return None
    if len(result) == 1:
        return output_value(result[0])
    raise ViewEvaluationError(
        f"column {column.name!r} ({column.path.text!r}) has {len(result)} values on "
        f"{resource.get('resourceType')}/{resource.get('id')} and is not a collection"
    )


def output_value(item: Any) -> Any:
    """A FHIRPath result item as a row value: JSON's own values as they
    are; dates, times and quantities as FHIR writes them."""
    item = plain(item)
    if type(item) is DateTime or type(item) is Time:
        return str(item)
    if type(item) is Quantity:
        return f"{item.value} '{item.unit}'"
    if type(item) is Primitive:
        return None
    return item


# Checking and compiling.


def compile_view(definition: Any) -> View:
    """A ViewDefinition (JSON) checked and compiled; ViewDefinitionError
    naming what is wrong."""
    if not isinstance(definition, Mapping):
        raise ViewDefinitionError("a ViewDefinition is a JSON object")
    resource = definition.get("resource")
    if not isinstance(resource, str) or not re.fullmatch(r"[A-Z][A-Za-z]+", resource):
        raise ViewDefinitionError("resource: a FHIR resource type is required")
    select = definition.get("select")
    if not isinstance(select, list) or not select:
        raise ViewDefinitionError("select: at least one selection is required")
    constants = _constants(definition.get("constant", []))
    known = _BUILT_IN | set(constants)
    where = tuple(
        _path(_field(entry, "path", "where"), known, "where")
        for entry in _list(definition.get("where", []), "where")
    )
    root = _selection({"select": select}, known, "select")
    name = definition.get("name")
    if name is not None and (not isinstance(name, str) or not _NAME.fullmatch(name)):
        raise ViewDefinitionError(f"name: {name!r} is not a valid view name")
    return View(
        name=name or resource.lower(),
        resource=resource,
        columns=_columns_of(root),
        definition=definition,
        _where=where,
        _select=root,
        _constants=constants,
    )


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ViewDefinitionError(f"{where}: expected a list")
    for item in value:
        if not isinstance(item, Mapping):
            raise ViewDefinitionError(f"{where}: expected a list of objects")
    return value


def _field(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ViewDefinitionError(f"{where}.{key}: a FHIRPath expression (text) is required")
    return value


def _path(text: str, known: frozenset[str] | set[str], where: str) -> Path:
    try:
        path, tree = compile_path(text)
    except FhirPathError as exc:
        raise ViewDefinitionError(
            f"{where}: {text!r} is not FHIRPath this runner has: {exc}"
        ) from exc
    for name in variables_used(tree):
        if name not in known and not name.startswith(("vs-", "ext-")):
            raise ViewDefinitionError(f"{where}: {text!r} uses %{name}, which is not defined")
    return path


def _constants(entries: Any) -> dict[str, Any]:
    constants: dict[str, Any] = {}
    for entry in _list(entries, "constant"):
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ViewDefinitionError(f"constant: {name!r} is not a valid name")
        values = [key for key in entry if _CONSTANT_VALUE.fullmatch(key)]
        if len(values) != 1:
            raise ViewDefinitionError(f"constant {name}: exactly one value[x] is required")
        if name in constants or name in _BUILT_IN:
            raise ViewDefinitionError(f"constant {name}: defined twice")
        value = entry[values[0]]
        if values[0] == "valueDecimal" and isinstance(value, float):
            value = Decimal(str(value))
        constants[name] = value
    return constants


def _selection(entry: Mapping[str, Any], known: set[str] | frozenset[str], at: str) -> _Selection:
    iterators = [key for key in ("forEach", "forEachOrNull", "repeat") if key in entry]
    if len(iterators) > 1:
        raise ViewDefinitionError(f"{at}: only one of forEach, forEachOrNull and repeat")
    for_each = None
    repeat: tuple[Path, ...] = ()
    if iterators and iterators[0] != "repeat":
        for_each = _path(_field(entry, iterators[0], at), known, f"{at}.{iterators[0]}")
    elif iterators:
        paths = entry["repeat"]
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise ViewDefinitionError(f"{at}.repeat: a list of FHIRPath expressions")
        repeat = tuple(_path(p, known, f"{at}.repeat") for p in paths)
    columns = []
    for number, column in enumerate(_list(entry.get("column", []), f"{at}.column")):
        columns.append(_column(column, known, f"{at}.column[{number}]"))
    selects = tuple(
        _selection(nested, known, f"{at}.select[{number}]")
        for number, nested in enumerate(_list(entry.get("select", []), f"{at}.select"))
    )
    union_all = tuple(
        _selection(branch, known, f"{at}.unionAll[{number}]")
        for number, branch in enumerate(_list(entry.get("unionAll", []), f"{at}.unionAll"))
    )
    if union_all:
        first = [c.name for c in _columns_of(union_all[0])]
        for number, branch in enumerate(union_all[1:], 1):
            if [c.name for c in _columns_of(branch)] != first:
                raise ViewDefinitionError(
                    f"{at}.unionAll[{number}]: its columns differ from unionAll[0]'s {first}"
                )
    names: list[str] = [c.name for c in columns]
    for nested in selects:
        names += [c.name for c in _columns_of(nested)]
    if union_all:
        names += [c.name for c in _columns_of(union_all[0])]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ViewDefinitionError(f"{at}: column {duplicates[0]!r} is defined twice")
    width = len(names)
    partial = _Selection(tuple(columns), selects, union_all, for_each, False, repeat, width, ())
    flat = _columns_of(partial)
    return _Selection(
        tuple(columns),
        selects,
        union_all,
        for_each,
        bool(iterators) and iterators[0] == "forEachOrNull",
        repeat,
        width,
        tuple(position for position, column in enumerate(flat) if column.is_row_index),
    )


def _column(entry: Mapping[str, Any], known: set[str] | frozenset[str], at: str) -> Column:
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ViewDefinitionError(f"{at}.name: {name!r} is not a valid column name")
    collection = entry.get("collection", False)
    if not isinstance(collection, bool):
        raise ViewDefinitionError(f"{at}.collection: true or false")
    fhir_type = entry.get("type")
    if fhir_type is not None and not isinstance(fhir_type, str):
        raise ViewDefinitionError(f"{at}.type: a FHIR type name")
    sql_type = SQL_TYPES.get(fhir_type or "string", "JSON")
    # The model names the element ``tag``; the specification's own example
    # writes ``tags``.
    for tag in _list(entry.get("tag", entry.get("tags", [])), f"{at}.tag"):
        if tag.get("name") == ANSI_TYPE_TAG:
            value = tag.get("value")
            if not isinstance(value, str) or not _ANSI_TYPE.fullmatch(value.strip()):
                raise ViewDefinitionError(f"{at}.tag: {value!r} is not an ANSI type written here")
            sql_type = value.strip().upper().replace("CHARACTER VARYING", "VARCHAR")
    if collection:
        sql_type = f"{sql_type}[]"
    description = entry.get("description")
    return Column(
        name=name,
        path=_path(_field(entry, "path", at), known, f"{at}.path"),
        collection=collection,
        fhir_type=fhir_type,
        sql_type=sql_type,
        description=description if isinstance(description, str) else None,
    )


def _columns_of(selection: _Selection) -> tuple[Column, ...]:
    found = list(selection.columns)
    for nested in selection.selects:
        found += _columns_of(nested)
    if selection.union_all:
        found += _columns_of(selection.union_all[0])
    return tuple(found)


def run_view(view: View, resources: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every row of ``resources`` as a dict by column name: for tests and
    small inputs (``export.py`` streams)."""
    names = view.column_names
    return [dict(zip(names, row, strict=True)) for r in resources for row in view.rows(r)]
