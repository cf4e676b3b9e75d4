"""Read a scenario file, apply command-line overrides, validate, and explain what is wrong.

Every problem is reported as ``dotted.path: what is wrong (got VALUE)`` so that a user can
find the line in the file, followed by the ``--set`` that gave the value if one did; unknown
keys come with the closest allowed names. Files are read with limits (size, UTF-8, unique
keys, bounded aliases) so that no input can stall or crash the reader.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sim.scenario.model import Scenario

#: keys that select a member of a discriminated union, per section
_DISCRIMINATORS = ("kind", "law", "model")


class ScenarioError(ValueError):
    """A scenario that cannot be run; `problems` lists one message per problem."""

    def __init__(self, source: str, problems: list[str], what: str = "scenario") -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: invalid {what}\n{lines}")


#: the largest scenario or sweep file read (a scenario is a few kB; tables are separate files)
MAX_FILE_BYTES = 1 << 20
#: the most values (scalars, lists, mappings) a YAML document may hold, aliases expanded
MAX_YAML_VALUES = 100_000


class YamlRefused(yaml.constructor.ConstructorError):
    """YAML that is valid but refused in scenario files: a duplicate key, or a document whose
    aliases expand it beyond MAX_YAML_VALUES."""


def expanded_size(root: yaml.Node, limit: int) -> int:
    """How many values the document `root` holds with every alias (``*name``) replaced by
    the node it names, counted up to ``limit + 1`` (also for an alias within its own anchor,
    which expands without end). Iterative, and each node is visited once: the count of
    "billion laughs" (nine levels of ten aliases) takes microseconds."""
    size: dict[int, int] = {}
    open_nodes: set[int] = set()  # the path from the root to the node being counted
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, counted_children = stack.pop()
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if counted_children:
            open_nodes.discard(id(node))
            size[id(node)] = min(1 + sum(size[id(c)] for c in children), limit + 1)
        elif id(node) in open_nodes:
            return limit + 1
        elif id(node) not in size:
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children)
    return size[id(root)]


class StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader (libyaml's parser when PyYAML has it: ten times faster, and sweeps
    load the base scenario once per point) that refuses duplicate keys, which PyYAML would
    silently resolve to the last one, and documents whose aliases (``*name``) expand them
    beyond MAX_YAML_VALUES ("billion laughs": PyYAML shares the aliased objects, but
    everything that walks them, such as validation, pays for every copy)."""

    def construct_document(self, node: yaml.Node) -> Any:
        """The document's data; YamlRefused if it holds more than MAX_YAML_VALUES values."""
        if expanded_size(node, MAX_YAML_VALUES) > MAX_YAML_VALUES:
            raise YamlRefused(
                None,
                None,
                f"the document holds more than {MAX_YAML_VALUES} values, counting each alias "
                "(*name) as the values it stands for; write the values out once",
            )
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping; YamlRefused naming the key and its lines if a key occurs twice."""
        first: dict[tuple[str, str], yaml.Mark] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = (key_node.tag, key_node.value)
            if key in first:
                raise YamlRefused(
                    None,
                    None,
                    f"duplicate key '{key_node.value}' (first at line {first[key].line + 1}); "
                    "each key may appear once in a mapping",
                    key_node.start_mark,
                )
            first[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


def _yaml(text: str) -> Any:
    """The YAML document in `text`, read by StrictLoader."""
    return yaml.load(text, Loader=StrictLoader)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A one-line description of a YAML error, with its line and column."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return f"not valid YAML: {exc}".replace("\n", " ")
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context = f"{exc.context}: " if exc.context else ""
    refused = isinstance(exc, YamlRefused)
    return f"{where}{'' if refused else 'not valid YAML: '}{context}{exc.problem}"


def _text(path: Path, what: str) -> str:
    """The text of a YAML file: at most MAX_FILE_BYTES, UTF-8 (ScenarioError otherwise)."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(str(path), [f"cannot be read: {exc.strerror}"], what) from None
    if len(raw) > MAX_FILE_BYTES:
        size = path.stat().st_size
        raise ScenarioError(
            str(path),
            [
                f"the file is {size} bytes, more than the {MAX_FILE_BYTES} bytes (1 MiB) a "
                f"{what} file may have; tables belong in their own files"
            ],
            what,
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ScenarioError(
            str(path),
            [
                f"not UTF-8 text: byte {exc.start} (line {line}) is 0x{raw[exc.start]:02x}; "
                "save the file as UTF-8"
            ],
            what,
        ) from None


def read_yaml(path: Path, what: str = "scenario") -> dict[str, Any]:
    """The mapping in a YAML file; ScenarioError if it cannot be read, is larger than
    MAX_FILE_BYTES, is not UTF-8, is not valid YAML, has a duplicate key or aliases that
    expand it beyond MAX_YAML_VALUES, or is not a mapping."""
    if not path.is_file():
        raise ScenarioError(str(path), ["file not found"], what)
    try:
        data = _yaml(_text(path, what))
    except yaml.YAMLError as exc:
        raise ScenarioError(str(path), [_yaml_problem(exc)], what) from None
    if not isinstance(data, dict):
        raise ScenarioError(str(path), ["the file must hold a mapping of sections"], what)
    return data


_SET_RE = re.compile(r"^(?P<key>[A-Za-z0-9_.]+)=(?P<value>.*)$")


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply ``dotted.key=value`` to the raw scenario mapping.

    The value is read as YAML (numbers, lists, mappings); text that is not YAML, such as
    ``[4, -6, 0] mm``, is passed on as a string for the field's own parser.
    """
    m = _SET_RE.match(assignment)
    if m is None:
        raise ScenarioError("--set", [f"{assignment!r}: write dotted.key=value"])
    keys = m.group("key").split(".")
    try:
        value = _yaml(m.group("value")) if m.group("value") else ""
    except YamlRefused as exc:
        raise ScenarioError("--set", [f"{assignment!r}: {exc.problem}"]) from None
    except yaml.YAMLError:
        value = m.group("value")  # e.g. "[4, -6, 0] mm": a string for the field to parse
    node: Any = data
    for depth, key in enumerate(keys[:-1]):
        where = ".".join(keys[: depth + 1])
        if isinstance(node, list):
            node = node[_list_index(node, key, where)]
        elif isinstance(node, dict):
            node = node.setdefault(key, {})
        else:
            raise ScenarioError("--set", [f"{where}: is a value, not a section"])
    last = keys[-1]
    if isinstance(node, list):
        node[_list_index(node, last, m.group("key"))] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ScenarioError("--set", [f"{m.group('key')}: parent is a value, not a section"])


def _list_index(node: list[Any], key: str, where: str) -> int:
    if not key.isdigit() or int(key) >= len(node):
        raise ScenarioError("--set", [f"{where}: index must be 0..{len(node) - 1}"])
    return int(key)


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Make file paths in the scenario relative to the scenario file's folder."""
    spots = [("geometry", "path"), ("cement", "curing", "file"), ("bone", "ct", "file")]
    for spot in spots:
        node: Any = data
        for key in spot[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(spot[-1]), str):
            p = Path(node[spot[-1]]).expanduser()
            node[spot[-1]] = str(p if p.is_absolute() else (base / p).resolve())


#: the cement presets shipped with the package
PRESET_DIR = Path(__file__).resolve().parents[1] / "data" / "cements"


def cement_presets() -> list[str]:
    """Names of the shipped cement presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge; a section whose discriminator (model/law/kind) changes is replaced."""
    out = dict(base)
    for key, value in override.items():
        old = out.get(key)
        if (
            isinstance(old, dict)
            and isinstance(value, dict)
            and not any(d in value and value[d] != old.get(d) for d in _DISCRIMINATORS)
        ):
            out[key] = _merge(old, value)
        else:
            out[key] = value
    return out


def _apply_preset(data: dict[str, Any], source: str) -> None:
    cement = data.get("cement")
    if not isinstance(cement, dict) or cement.get("preset") is None:
        return
    name = cement["preset"]
    path = PRESET_DIR / f"{name}.yaml"
    if not isinstance(name, str) or not path.is_file():
        raise ScenarioError(
            source,
            [
                f"cement.preset: {name!r} is not a shipped cement; known: "
                f"{', '.join(cement_presets()) or 'none'}"
            ],
        )
    preset = _yaml(path.read_text())["cement"]
    data["cement"] = _merge(preset, cement)


def load_scenario(path: Path | str, overrides: Iterable[str] = ()) -> Scenario:
    """Read, override and validate a scenario file. Raises ScenarioError listing every problem."""
    path = Path(path)
    data = read_yaml(path)
    overrides = list(overrides)
    for assignment in overrides:
        apply_override(data, assignment)
    data.setdefault("name", re.sub(r"[^A-Za-z0-9_]", "_", path.stem) or "scenario")
    _resolve_paths(data, path.parent.resolve())
    try:
        return validate_scenario(data, str(path))
    except ScenarioError as exc:
        problems = [_with_overrides(p, overrides) for p in exc.problems]
        raise ScenarioError(exc.source, problems) from None


def _with_overrides(problem: str, overrides: list[str]) -> str:
    """`problem` (``dotted.path: ...``) with the ``--set KEY=VALUE`` that set its field, a
    section holding it or a field within it appended."""
    field = re.match(r"^([\w.]+):", problem)
    if field is None:
        return problem
    path = field.group(1).split(".")
    blamed = []
    for assignment in overrides:
        key = assignment.partition("=")[0].split(".")
        if key[: len(path)] == path or path[: len(key)] == key:
            blamed.append(f"--set {assignment}")
    return f"{problem} (from {', '.join(blamed)})" if blamed else problem


def validate_scenario(data: Mapping[str, Any], source: str = "scenario") -> Scenario:
    """Validate a raw mapping into a Scenario (presets applied); ScenarioError with readable
    messages."""
    data = dict(data)
    _apply_preset(data, source)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, [describe_error(e, data) for e in exc.errors()]) from None


def describe_error(error: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    loc, raw = _clean_loc(error["loc"], data)
    where = ".".join(str(p) for p in loc) or "(top level)"
    kind = error["type"]
    msg = str(error["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        return f"{where}: required, but missing"
    if kind == "finite_number":
        return f"{where}: {error.get('input')!r} is not a finite number"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1], data)
        hint = ""
        if allowed:
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            hint += f"; allowed here: {', '.join(allowed)}"
        return f"{where}: unknown key{hint}"
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return (
            f"{where}.{ctx.get('discriminator', 'kind').strip(chr(39))}: {ctx.get('tag')!r} is "
            f"not known; allowed: {ctx.get('expected_tags')}"
        )
    named = re.match(r"^([A-Za-z_][\w.]*): ", msg)
    if where == "(top level)" and named:
        return msg  # a check across sections that names its own field
    if named and named.group(1).split(".")[0] in _allowed_keys(loc, data):
        return f"{where}.{msg}"  # a check of a section that names the field within it
    msg = msg.replace("Input should be ", "must be ")
    shown = raw if raw is not _MISSING else error.get("input")
    if isinstance(shown, str | int | float) and not isinstance(shown, bool):
        return f"{where}: {msg} (got {shown!r})"
    return f"{where}: {msg}"


_MISSING = object()


def _clean_loc(loc: tuple[Any, ...], data: Mapping[str, Any]) -> tuple[list[Any], Any]:
    """Drop union-member tags that pydantic puts in error locations; also return the raw value."""
    cleaned: list[Any] = []
    node: Any = data
    for part in loc:
        if (
            isinstance(node, dict)
            and part not in node
            and any(node.get(d) == part for d in _DISCRIMINATORS)
        ):
            continue
        if isinstance(part, str) and part.startswith(("function-", "tagged-union")):
            continue
        cleaned.append(part)
        if isinstance(node, dict):
            node = node.get(part, _MISSING)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = _MISSING
    return cleaned, node


def _allowed_keys(loc: list[Any], data: Mapping[str, Any]) -> list[str]:
    """Field names of the model found at `loc` (empty if it cannot be determined)."""
    annotation: Any = Scenario
    node: Any = data
    for part in loc:
        annotation = _pick(annotation, node)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return []
            annotation = field.annotation
        else:
            args = typing.get_args(annotation)
            annotation = args[-1] if args else None
        node = (
            node.get(part)
            if isinstance(node, dict)
            else (node[part] if isinstance(node, list) and isinstance(part, int) else None)
        )
    annotation = _pick(annotation, node)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _pick(annotation: Any, node: Any) -> Any:
    """Unwrap Annotated/Optional and choose the union member that matches the raw data."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
            chosen = _by_discriminator(models, node)
            annotation = chosen if chosen is not None else members[0]
        else:
            return annotation


def _by_discriminator(models: list[type[BaseModel]], node: Any) -> type[BaseModel] | None:
    if not isinstance(node, dict):
        return models[0] if len(models) == 1 else None
    for model in models:
        for key in _DISCRIMINATORS:
            field = model.model_fields.get(key)
            if field is not None and node.get(key) in typing.get_args(field.annotation):
                return model
    return models[0] if len(models) == 1 else None
