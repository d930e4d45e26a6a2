"""``python -m telex.django.migrate PATH [--check]``: move a Channels 1.x project onto telex.django.

It rewrites what a migration needs and nothing else: imports of ``channels``
(``import channels.routing``, ``from channels.generic.websockets import ...``,
and the names such imports bind) become ``telex.django``, and the
``"channels"`` / ``"channels.delay"`` entries of ``INSTALLED_APPS`` become
``"telex.django"`` / ``"telex.django.delay"``. It works on the syntax tree, so
comments, docstrings and other strings that mention channels, and names such
as ``channels_redis`` or ``mychannels``, are never touched; ``BACKEND`` strings
stay as they are (telex.django accepts the old names). Running it twice
changes nothing the second time. See ``docs/django.md``.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import io
import os
import sys
import tokenize
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

__all__ = ["Rewrite", "main", "rewrite_source"]

OLD = "channels"
NEW = "telex.django"

#: ``INSTALLED_APPS`` entries of Channels 1.x and what replaces each.
APP_NAMES = {
    "channels": "telex.django",
    "channels.apps.ChannelsConfig": "telex.django.apps.TelexDjangoConfig",
    "channels.delay": "telex.django.delay",
    "channels.delay.apps.DelayConfig": "telex.django.delay.apps.DelayConfig",
}

#: Directories never walked into: version control, caches, installed packages.
SKIPPED_DIRECTORIES = {"__pycache__", "node_modules", "site-packages", "dist-packages"}


@dataclass
class Rewrite:
    """The new text of one source file, and what could not be rewritten safely."""

    text: str
    warnings: list[str] = field(default_factory=list)


class _Source:
    """Turns the syntax tree's (line, UTF-8 byte column) positions into offsets in the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.line_starts = [0]
        for index, char in enumerate(text):
            if char == "\n":
                self.line_starts.append(index + 1)

    def offset(self, line: int, byte_column: int) -> int:
        start = self.line_starts[line - 1]
        end = self.line_starts[line] if line < len(self.line_starts) else len(self.text)
        prefix = self.text[start:end].encode("utf-8")[:byte_column]
        return start + len(prefix.decode("utf-8"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end


def _dotted_name_span(text: str, start: int, end: int, skip_keyword: str | None) -> tuple[int, int]:
    """Offsets of the dotted module name in ``text[start:end]`` (after ``skip_keyword``).

    Tokenized rather than searched for, so ``from  channels . routing import``
    and backslash continuations are found exactly.
    """
    segment = text[start:end]
    line_starts = [0] + [i + 1 for i, c in enumerate(segment) if c == "\n"]
    first = last = None
    tokens = tokenize.generate_tokens(io.StringIO(segment).readline)
    try:
        for token in tokens:
            if token.type in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
                continue
            if skip_keyword is not None and first is None and token.string == skip_keyword:
                continue
            if token.type == tokenize.NAME and token.string in ("import", "as"):
                break
            if token.type == tokenize.NAME or token.string == ".":
                if first is None:
                    first = token.start
                last = token.end
                continue
            break
    except tokenize.TokenError:  # the segment ends inside brackets: the name is already found
        pass
    if first is None or last is None:
        raise ValueError("no module name in the import statement")

    def absolute(position: tuple[int, int]) -> int:
        return start + line_starts[position[0] - 1] + position[1]

    return absolute(first), absolute(last)


def _is_old_module(name: str | None) -> bool:
    return name is not None and (name == OLD or name.startswith(OLD + "."))


def _new_module(name: str) -> str:
    return NEW + name[len(OLD) :]


class _Scope:
    """Who binds the name ``channels`` in one scope (module, function, class, comprehension)."""

    def __init__(self, node: ast.AST, parent: _Scope | None) -> None:
        self.node = node
        self.parent = parent
        self.is_class = isinstance(node, ast.ClassDef)
        self.package_imports: list[ast.Import] = []  # ``import channels[.x]`` without ``as``
        self.other_binding: ast.AST | None = None
        self.declared_global = False
        self.declared_nonlocal = False
        self.loads: list[ast.Name] = []

    @property
    def binds(self) -> bool:
        return bool(self.package_imports) or self.other_binding is not None


class _Collector(ast.NodeVisitor):
    """Walks one module: scopes, the bindings of ``channels``, and the INSTALLED_APPS strings."""

    def __init__(self, module: ast.Module) -> None:
        self.module_scope = _Scope(module, None)
        self.scopes = [self.module_scope]
        self.scope = self.module_scope
        self.old_imports: list[ast.Import | ast.ImportFrom] = []
        self.app_strings: list[ast.Constant] = []

    # -- scopes ---------------------------------------------------------------

    def _enter(self, node: ast.AST) -> _Scope:
        scope = _Scope(node, self.scope)
        self.scopes.append(scope)
        return scope

    def _visit_in(self, scope: _Scope, nodes: Sequence[ast.AST]) -> None:
        outer, self.scope = self.scope, scope
        for child in nodes:
            self.visit(child)
        self.scope = outer

    def _bind(self, node: ast.AST) -> None:
        if self.scope.other_binding is None:
            self.scope.other_binding = node

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        # Decorators, defaults and annotations belong to the enclosing scope.
        for child in [*getattr(node, "decorator_list", []), *node.args.defaults, *node.args.kw_defaults]:
            if child is not None:
                self.visit(child)
        if not isinstance(node, ast.Lambda):
            if node.name == OLD:
                self._bind(node)
            if node.returns is not None:
                self.visit(node.returns)
        scope = self._enter(node)
        arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        arguments += [a for a in (node.args.vararg, node.args.kwarg) if a is not None]
        for argument in arguments:
            if argument.arg == OLD:
                scope.other_binding = argument
            if argument.annotation is not None:
                self.visit(argument.annotation)
        body = node.body if isinstance(node.body, list) else [node.body]
        self._visit_in(scope, body)

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function
    visit_Lambda = _visit_function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for child in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(child)
        if node.name == OLD:
            self._bind(node)
        self._visit_in(self._enter(node), node.body)

    def _visit_comprehension(self, node: ast.AST) -> None:
        generators: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
        # The first iterable is evaluated in the enclosing scope.
        self.visit(generators[0].iter)
        scope = self._enter(node)
        outer, self.scope = self.scope, scope
        for index, generator in enumerate(generators):
            self.visit(generator.target)
            if index:
                self.visit(generator.iter)
            for condition in generator.ifs:
                self.visit(condition)
        for name in ("elt", "key", "value"):
            if hasattr(node, name):
                self.visit(getattr(node, name))
        self.scope = outer

    visit_ListComp = _visit_comprehension
    visit_SetComp = _visit_comprehension
    visit_GeneratorExp = _visit_comprehension
    visit_DictComp = _visit_comprehension

    # -- bindings and uses of ``channels`` ------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        if node.id == OLD:
            if isinstance(node.ctx, ast.Load):
                self.scope.loads.append(node)
            else:
                self._bind(node)

    def visit_Global(self, node: ast.Global) -> None:
        if OLD in node.names:
            self.scope.declared_global = True

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        if OLD in node.names:
            self.scope.declared_nonlocal = True

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name == OLD:
            self._bind(node)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name == OLD:
            self._bind(node)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name == OLD:
            self._bind(node)

    def visit_Import(self, node: ast.Import) -> None:
        rewrites = False
        for alias in node.names:
            if _is_old_module(alias.name):
                rewrites = True
                if alias.asname is None:
                    if node not in self.scope.package_imports:
                        self.scope.package_imports.append(node)
                elif alias.asname == OLD:
                    self._bind(node)
            elif (alias.asname or alias.name.split(".")[0]) == OLD:
                self._bind(node)
        if rewrites:
            self.old_imports.append(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and _is_old_module(node.module):
            self.old_imports.append(node)
        for alias in node.names:
            if (alias.asname or alias.name) == OLD:
                self._bind(node)

    # -- INSTALLED_APPS -----------------------------------------------------------

    def _collect_apps(self, value: ast.AST | None) -> None:
        if value is None:
            return
        for child in ast.walk(value):
            if isinstance(child, ast.Constant) and isinstance(child.value, str) and child.value in APP_NAMES:
                self.app_strings.append(child)

    @staticmethod
    def _names_apps(target: ast.AST) -> bool:
        return (isinstance(target, ast.Name) and target.id == "INSTALLED_APPS") or (
            isinstance(target, ast.Attribute) and target.attr == "INSTALLED_APPS"
        )

    def visit_Assign(self, node: ast.Assign) -> None:
        if any(self._names_apps(target) for target in node.targets):
            self._collect_apps(node.value)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if self._names_apps(node.target):
            self._collect_apps(node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if self._names_apps(node.target):
            self._collect_apps(node.value)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        # INSTALLED_APPS.append("channels"), settings.configure(INSTALLED_APPS=[...]),
        # override_settings / modify_settings(INSTALLED_APPS=...).
        if isinstance(node.func, ast.Attribute) and self._names_apps(node.func.value):
            for argument in node.args:
                self._collect_apps(argument)
        for keyword in node.keywords:
            if keyword.arg == "INSTALLED_APPS":
                self._collect_apps(keyword.value)
        self.generic_visit(node)


def _resolve(scope: _Scope, module_scope: _Scope) -> _Scope | None:
    """The scope whose binding of ``channels`` a load in ``scope`` sees (Python's rules)."""
    if scope.declared_global:
        return module_scope
    current: _Scope | None = scope
    first = True
    while current is not None:
        if (first or not current.is_class) and current.binds and not current.declared_nonlocal:
            return current
        if current.declared_global:
            return module_scope if module_scope.binds else None
        first = False
        current = current.parent
    return None


def rewrite_source(text: str, filename: str = "<source>") -> Rewrite:
    """The Channels 1.x → telex.django rewrite of one module's source; raises SyntaxError."""
    tree = ast.parse(text, filename=filename)
    source = _Source(text)
    collector = _Collector(tree)
    collector.visit(tree)
    edits: list[tuple[int, int, str]] = []
    warnings: list[str] = []

    # Scopes where ``channels`` is both imported as a package and bound another
    # way: references there cannot be renamed safely, so they are left alone.
    unsafe = {id(s) for s in collector.scopes if s.package_imports and s.other_binding is not None}
    for scope in collector.scopes:
        if id(scope) in unsafe:
            line = scope.other_binding.lineno  # type: ignore[union-attr]
            warnings.append(
                f"{filename}:{line}: 'channels' is imported and also assigned here; "
                "its uses were not renamed, change them by hand"
            )

    for node in collector.old_imports:
        start, end = source.span(node)
        if isinstance(node, ast.ImportFrom):
            name_start, name_end = _dotted_name_span(text, start, end, "from")
            edits.append((name_start, name_end, _new_module(node.module or "")))
            continue
        for alias in node.names:
            if not _is_old_module(alias.name):
                continue
            alias_start, alias_end = source.span(alias)
            name_start, name_end = _dotted_name_span(text, alias_start, alias_end, None)
            edits.append((name_start, name_end, _new_module(alias.name)))

    for scope in collector.scopes:
        for name in scope.loads:
            owner = _resolve(scope, collector.module_scope)
            if owner is None or not owner.package_imports or id(owner) in unsafe:
                continue
            start, end = source.span(name)
            edits.append((start, end, NEW))

    for constant in collector.app_strings:
        start, end = source.span(constant)
        literal = text[start:end]
        quote_at = next((i for i, c in enumerate(literal) if c in "'\""), None)
        if quote_at is None or "r" in literal[:quote_at].lower():
            continue
        quote = literal[quote_at:]
        quote = quote[:3] if quote[:3] in ('"""', "'''") else quote[0]
        body = literal[quote_at + len(quote) : len(literal) - len(quote)]
        if body != constant.value:  # escapes or implicit concatenation: not one plain literal
            continue
        edits.append((start, end, literal[:quote_at] + quote + APP_NAMES[constant.value] + quote))

    new_text = text
    for start, end, replacement in sorted(edits, reverse=True):
        new_text = new_text[:start] + replacement + new_text[end:]
    return Rewrite(new_text, warnings)


def _python_files(path: str) -> Iterator[str]:
    if os.path.isfile(path):
        yield path
        return
    for directory, subdirectories, files in os.walk(path):
        subdirectories[:] = sorted(
            name
            for name in subdirectories
            if not name.startswith(".")
            and name not in SKIPPED_DIRECTORIES
            and not os.path.exists(os.path.join(directory, name, "pyvenv.cfg"))
        )
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(directory, name)


def _read(path: str) -> tuple[str, str]:
    with open(path, "rb") as file:
        raw = file.read()
    encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    return raw.decode(encoding), encoding


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m telex.django.migrate",
        description="Rewrite a Channels 1.x project for telex.django: imports of channels and "
        "INSTALLED_APPS entries. Writes the files unless --check.",
    )
    parser.add_argument("path", metavar="PATH", help="the project directory (or one .py file)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing: print a unified diff, exit 1 if something would change",
    )
    args = parser.parse_args(argv)
    if not os.path.exists(args.path):
        print(f"telex.django.migrate: error: PATH {args.path!r} does not exist", file=sys.stderr)
        return 2
    if not (os.path.isdir(args.path) or args.path.endswith(".py")):
        print(
            f"telex.django.migrate: error: PATH {args.path!r} is not a directory or a .py file",
            file=sys.stderr,
        )
        return 2

    root = args.path if os.path.isdir(args.path) else os.path.dirname(args.path)
    changed = skipped = 0
    for path in _python_files(args.path):
        try:
            text, encoding = _read(path)
            result = rewrite_source(text, path)
        except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
            skipped += 1
            print(f"{path}: skipped, not Python 3 source: {exc}", file=sys.stderr)
            continue
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if result.text == text:
            continue
        changed += 1
        if args.check:
            sys.stdout.writelines(
                difflib.unified_diff(
                    text.splitlines(keepends=True),
                    result.text.splitlines(keepends=True),
                    fromfile=f"a/{os.path.relpath(path, root)}",
                    tofile=f"b/{os.path.relpath(path, root)}",
                )
            )
        else:
            with open(path, "w", encoding=encoding, newline="") as file:
                file.write(result.text)
            print(f"rewrote {path}")
    verb = "would change" if args.check else "changed"
    summary = f"{changed} file(s) {verb}"
    if skipped:
        summary += f", {skipped} skipped (see above)"
    print(summary, file=sys.stderr)
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
