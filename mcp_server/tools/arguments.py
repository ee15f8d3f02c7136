"""Strict tool arguments: unknown names, wrong types and hostile input are refused, audited and named.

The SDK validates a tool's arguments against a model of its signature before the
tool runs, outside any request context, and drops names it does not know. Here
the SDK is handed a pass-through model instead, and each tool runs behind
`StrictArguments.call`, which checks the arguments itself with the request at
hand: a refusal goes through `call_core` like any failed call (one audit row),
and its message names the argument as the agent wrote it, `hyperparameters.epochs`
or `event 2, rating` (items count from 1, like the lines of a file).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp_types import ToolAnnotations
from pydantic import ConfigDict, ValidationError

from bot.commands import bounded, clip
from core.errors import InvalidInput
from core.platform import lone_surrogate
from mcp_server.tools import call_core

MAX_DEPTH = 32  # feedback events nest a few levels; nothing legitimate comes near this
MAX_LISTED_ITEMS = 20  # arguments summarised in the audit row of a refused call


class _PassThrough(ArgModelBase):
    """Hands every argument, unchecked, to `StrictArguments.call` (which checks them with the request at hand)."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.model_extra or {})}


def strict_tool(fn: Callable[..., Any], *, title: str, annotations: ToolAnnotations) -> Tool:
    """The SDK's tool for `fn` (schema, description, output model), its arguments checked by `StrictArguments`."""
    tool = Tool.from_function(
        fn, name=fn.__name__, title=title, description=" ".join((fn.__doc__ or "").split()), annotations=annotations
    )
    if tool.context_kwarg is None:
        raise TypeError(f"tool {tool.name} must take the request Context (ctx: Context)")
    strict = StrictArguments(tool)
    return tool.model_copy(
        update={
            "fn": strict.call,
            "fn_metadata": tool.fn_metadata.model_copy(update={"arg_model": _PassThrough}),
            "parameters": {**tool.parameters, "additionalProperties": False},
        }
    )


class StrictArguments:
    """One tool's arguments checked against its signature; the tool called with them, or the call refused."""

    def __init__(self, tool: Tool) -> None:
        self.name = tool.name
        self.fn = tool.fn
        self.context_kwarg = tool.context_kwarg or "ctx"
        self.metadata = tool.fn_metadata
        self.fields = tool.fn_metadata.arg_model.model_fields
        self.schema = tool.parameters

    def call(self, ctx: Context, arguments: dict[str, Any]) -> Any:
        try:
            try:
                kwargs = self.check(arguments)
            except InvalidInput as problem:
                self.refuse(ctx, arguments, problem)
            return self.fn(**{self.context_kwarg: ctx}, **kwargs)
        except ToolError as exc:  # a message may echo a huge argument whole
            raise ToolError(bounded(str(exc), echoed=long_strings(arguments))) from exc

    def refuse(self, ctx: Context, arguments: dict[str, Any], problem: InvalidInput) -> NoReturn:
        """Audited like any failed call; the agent reads the problem and its fix."""

        def fail(*_: object) -> NoReturn:
            raise problem

        call_core(ctx, self.name, summary(arguments), fail)
        raise AssertionError("call_core raises for a failed call")  # pragma: no cover

    def check(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The validated keyword arguments, or InvalidInput naming the first problem and its fix."""
        check_text_and_depth(arguments)
        self.check_names(arguments)
        try:
            parsed = self.metadata.arg_model.model_validate(self.metadata.pre_parse_json(arguments))
        except ValidationError as exc:
            raise self.invalid(exc) from None
        return parsed.model_dump_one_level()

    def check_names(self, arguments: dict[str, Any]) -> None:
        unknown = [name for name in arguments if name not in self.fields]
        if not unknown:
            return
        names = ", ".join(f"`{clip(name, 40)}`" for name in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        hint = f"Valid arguments: {', '.join(self.fields)}."
        for name in unknown:
            if (parent := nested_home(self.schema, name)) is not None:
                hint += f' `{name}` goes inside `{parent}`: {{"{parent}": {{"{name}": ...}}}}.'
        plural = "s" if len(unknown) > 1 else ""
        raise InvalidInput(f"unknown argument{plural} {names} for {self.name}.", hint=hint)

    def invalid(self, exc: ValidationError) -> InvalidInput:
        errors = exc.errors(include_url=False)
        first = errors[0]
        loc, kind = tuple(first["loc"]), first["type"]
        where = location(loc)
        if kind == "missing":
            message = f"missing argument `{where}` for {self.name}." if len(loc) == 1 else f"`{where}` is missing."
        elif kind == "extra_forbidden":
            message = f"unknown key `{location(loc[-1:])}` in argument `{location(loc[:-1])}` of {self.name}."
        else:
            reason = str(first["msg"]).removeprefix("Value error, ")
            message = f"argument `{where}` of {self.name}: {reason} (got {shown(first.get('input'))})."
        if len(errors) > 1:
            message += f" {len(errors) - 1} more problem(s) after this one."
        return InvalidInput(message, hint=self.described(str(loc[0]) if loc else ""))

    def described(self, name: str) -> str:
        field = self.fields.get(name)
        if field is None or not field.description:
            return f"See the input schema of {self.name}."
        keys = nested_keys(self.schema, name)
        return f"`{name}`: {field.description}" + (f" Keys: {', '.join(keys)}." if keys else "")


# Hostile input ------------------------------------------------------------------------------------


def check_text_and_depth(arguments: dict[str, Any]) -> None:
    """Refuse what no core call can take: nesting deeper than MAX_DEPTH, and lone surrogates (not text)."""
    for loc, value in walk(arguments):
        if len(loc) > MAX_DEPTH:
            raise InvalidInput(
                f"argument `{location(loc[:1])}` is nested more than {MAX_DEPTH} levels deep.",
                hint="Send the plain values, lists and objects the tool's input schema describes.",
            )
        if isinstance(value, str) and (found := lone_surrogate(value)) is not None:
            raise InvalidInput(
                f"argument `{location(loc)}` contains U+{ord(found.group()):04X} at position {found.start() + 1}, "
                "a lone surrogate, which is not text.",
                hint="Send valid Unicode text (escape binary data, e.g. as base64).",
            )


def walk(value: Any) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """(location, value) of every key and value inside `value`, depth first, without recursion."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        loc, item = stack.pop()
        yield loc, item
        if len(loc) > MAX_DEPTH:
            continue
        if isinstance(item, dict):
            for key, child in item.items():
                yield (*loc, str(key)), str(key)
                stack.append(((*loc, str(key)), child))
        elif isinstance(item, list | tuple):
            stack.extend(((*loc, i), child) for i, child in enumerate(item))


def long_strings(arguments: dict[str, Any], *, limit: int = 200) -> list[str]:
    """Strings in the arguments long enough to need clipping where a message echoes them."""
    found: list[str] = []
    for _, value in walk(arguments):
        if isinstance(value, str) and len(value) > 80:
            found.append(value)
            if len(found) >= limit:
                break
    return found


# Naming arguments ---------------------------------------------------------------------------------

_TAG = re.compile(r"[\[\](),]")  # pydantic's union-branch tags (`list[str]`, `function-after[...]`), not names


def location(loc: tuple[str | int, ...] | list[str | int]) -> str:
    """`hyperparameters.epochs`, `event 2, rating`, `split item 1`: items count from 1."""
    pieces: list[str] = []
    counted = True  # the next name starts a new piece
    for part in loc:
        if isinstance(part, int):
            head, dot, last = pieces[-1].rpartition(".") if pieces else ("", "", "item")
            noun = last[:-1] if last.endswith("s") and len(last) > 1 else f"{last} item"
            counted_piece = f"{noun} {part + 1}"
            if pieces:
                pieces[-1] = f"{head}{dot}{counted_piece}"
            else:
                pieces.append(counted_piece)
            counted = True
        elif not _TAG.search(str(part)):
            name = clip(str(part), 40)
            if counted:
                pieces.append(name)
            else:
                pieces[-1] += f".{name}"
            counted = False
    return ", ".join(pieces)


def nested_home(schema: dict[str, Any], name: str) -> str | None:
    """The argument whose object takes `name` as a key (`epochs` -> `hyperparameters`), if any."""
    return next((str(parent) for parent in schema.get("properties", {}) if name in nested_keys(schema, parent)), None)


def nested_keys(schema: dict[str, Any], argument: str) -> list[str]:
    """The keys an object argument takes, as its schema lists them (properties, or an enum of names)."""
    keys: list[str] = []
    for option in _options(schema, schema.get("properties", {}).get(argument, {})):
        keys += [*option.get("properties", {}), *option.get("propertyNames", {}).get("enum", [])]
    return keys


def _options(schema: dict[str, Any], prop: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for option in [prop, *prop.get("anyOf", [])]:
        ref = option.get("$ref", "")
        yield schema.get("$defs", {}).get(ref.rpartition("/")[2], option) if ref else option


def shown(value: Any) -> str:
    """A value as an error message may show it: short, whatever its size."""
    if isinstance(value, dict):
        return f"an object with {len(value)} key(s)"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, str):
        return clip(repr(value[:200]))
    return clip(repr(value))


def summary(arguments: dict[str, Any]) -> dict[str, Any]:
    """What the audit keeps of a refused call's arguments: names, scalars, and the size of anything bigger."""
    kept: dict[str, Any] = {}
    for name, value in list(arguments.items())[:MAX_LISTED_ITEMS]:
        is_scalar = value is None or isinstance(value, str | int | float | bool)
        kept[clip(str(name), 80)] = value if is_scalar else shown(value)
    if len(arguments) > MAX_LISTED_ITEMS:
        kept["..."] = f"{len(arguments) - MAX_LISTED_ITEMS} more argument(s)"
    return kept
