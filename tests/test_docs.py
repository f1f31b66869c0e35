"""README.md and docs/*.md tell the truth about the code: every table renders, and everything a table or an
import example names exists.

The test reads the documents and names no module of the project, so it keeps working when modules are renamed or
moved (the documents must follow, which is the point). Conventions it relies on, stated in docs/ARCHITECTURE.md:
- an engine API table is a table under a heading containing "Engine API"; its first column holds dotted names in
  backticks, relative to the package named by the phrase "relative to `package`" in that section; its second
  column may hold signatures, `name(params)` or `.method(params)` of a name in the same row;
- a benchmarks table is a table under a heading containing "Benchmarks";
- "importable from `package`" is followed, in the same paragraph, by the names it claims ("everything" claims
  every name of the engine API tables).
Tables follow GitHub's rules, a little stricter: a table starts after a blank line, a heading or an HTML comment
line; its second line is the separator row; every row has the header's number of cells, with a leading and a
trailing pipe (a pipe inside a cell, code spans included, must be escaped as \\|); a blank line ends it. A line
starting with a pipe anywhere else is a broken table, e.g. the rows after a paragraph that cut a table in two.
"""
import ast
import fnmatch
import glob
import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
HEADING = re.compile(r"#{1,6}\s")
SEPARATOR_CELL = re.compile(r":?-+:?")
CODE = re.compile(r"`([^`]+)`")
PATH_SPAN = re.compile(r"[\w.*/-]+(::\w+)?")


@dataclass
class Table:
    where: str                  # file:line of the header row
    heading: str                # the nearest heading above the table
    section: str                # the text from that heading to the table
    header: list
    rows: list = field(default_factory=list)      # (file:line, cells)


@dataclass
class Document:
    path: Path
    tables: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    paragraphs: list = field(default_factory=list)    # text outside code fences, split at blank lines
    code: list = field(default_factory=list)          # (language, text) of fenced blocks


def cells(line: str):
    """The cells of a table line, or None when it lacks the leading or trailing pipe. Pipes split cells even
    inside code spans (GitHub's rule); an escaped pipe does not."""
    s = line.strip()
    if not (s.startswith("|") and s.endswith("|") and not s.endswith("\\|")):
        return None
    parts = re.split(r"(?<!\\)\|", s)
    return [p.strip() for p in parts[1:-1]]


def is_comment(line: str) -> bool:
    s = line.strip()
    return s.startswith("<!--") and s.endswith("-->")


def parse(path: Path) -> Document:
    doc = Document(path)
    lines = path.read_text().splitlines()
    heading, since, fence, paragraph = "", 0, None, []
    i = 0
    while i < len(lines):
        line, where = lines[i], f"{path.name}:{i + 1}"
        if fence is not None:
            if line.strip().startswith("```"):
                doc.code.append(fence)
                fence = None
            else:
                fence = (fence[0], fence[1] + line + "\n")
            i += 1
            continue
        if line.strip().startswith("```"):
            fence = (line.strip()[3:].strip(), "")
            i += 1
            continue
        if not line.strip():
            doc.paragraphs.append(" ".join(paragraph))
            paragraph = []
        elif not line.lstrip().startswith("|"):
            paragraph.append(line.strip())
        if HEADING.match(line):
            heading, since = line.lstrip("#").strip(), i
        if not line.lstrip().startswith("|"):
            i += 1
            continue
        # a table: header, separator, rows
        before = lines[i - 1] if i else ""
        header = cells(line)
        separator = cells(lines[i + 1]) if i + 1 < len(lines) else None
        if separator is None or not all(SEPARATOR_CELL.fullmatch(c) for c in separator):
            doc.problems.append(f"{where}: a line starting with '|' that does not start a table (no separator row "
                                f"below it): a table cut in two, or a stray pipe")
            i += 1
            continue
        if before.strip() and not HEADING.match(before) and not is_comment(before):
            doc.problems.append(f"{where}: a table right after a paragraph line: put a blank line before it")
        if header is None:
            doc.problems.append(f"{where}: the header row needs a leading and a trailing '|'")
            header = []
        if len(separator) != len(header):
            doc.problems.append(f"{where}: the separator row has {len(separator)} cells, the header {len(header)}")
        table = Table(where, heading, "\n".join(lines[since:i]), header)
        i += 2
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            row, at = cells(lines[i]), f"{path.name}:{i + 1}"
            if row is None:
                doc.problems.append(f"{at}: a table row needs a leading and a trailing '|'")
            elif len(row) != len(header):
                doc.problems.append(f"{at}: {len(row)} cells in a table of {len(header)} columns "
                                    f"(an unescaped '|' inside a cell?)")
            else:
                table.rows.append((at, row))
            i += 1
        if i < len(lines) and lines[i].strip():
            doc.problems.append(f"{path.name}:{i + 1}: text right after a table is read as one more row: put a "
                                f"blank line after the table")
        doc.tables.append(table)
    doc.paragraphs.append(" ".join(paragraph))
    return doc


@pytest.fixture(scope="module")
def docs():
    return [parse(p) for p in DOCS]


def first_column_spans(table):
    for at, row in table.rows:
        for span in CODE.findall(row[0]):
            yield at, span


def resolve(dotted: str):
    """The module or attribute a dotted name names; LookupError if none."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and (name == e.name or name.startswith(e.name + ".")):
                continue        # no such module: the rest are attributes
            raise
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                raise LookupError(f"{dotted}: {name} has no {'.'.join(parts[cut:])}")
            obj = getattr(obj, attr)
        return obj
    raise LookupError(f"{dotted}: no such module")


def api_tables(docs):
    """(package, table) of every engine API table."""
    out = []
    for doc in docs:
        for table in doc.tables:
            if "engine api" in table.heading.lower():
                found = re.search(r"relative to `([\w.]+)`", table.section)
                assert found, f"{table.where}: the section must say which package its names are relative to"
                out.append((found.group(1), table))
    return out


def api_names(docs):
    """(file:line, dotted name, object) of every first-column name of the engine API tables."""
    out = []
    for package, table in api_tables(docs):
        for at, span in first_column_spans(table):
            dotted = f"{package}.{span}"
            try:
                out.append((at, dotted, resolve(dotted)))
            except LookupError as e:
                out.append((at, dotted, e))
    return out


def split_params(text: str):
    """The parameters of a written signature, split at top-level commas."""
    out, depth, cur, quote = [], 0, "", None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def signature_problems(written: str, target) -> list:
    """How the written `name(params)` differs from the real signature of `target`: names in order, which ones are
    keyword-only or starred, which have defaults, and the defaults that are Python literals."""
    real = list(inspect.signature(target).parameters.values())
    if real and real[0].name in ("self", "cls") and not inspect.isclass(target):
        real = real[1:]
    params, keyword_only = [], False
    for piece in split_params(written[written.index("(") + 1:written.rindex(")")]):
        if piece == "*":
            keyword_only = True
            continue
        if piece == "/":
            continue
        name, eq, default = piece.partition("=")
        kind = inspect.Parameter.KEYWORD_ONLY if keyword_only else inspect.Parameter.POSITIONAL_OR_KEYWORD
        if name.startswith("**"):
            name, kind = name[2:], inspect.Parameter.VAR_KEYWORD
        elif name.startswith("*"):
            name, kind, keyword_only = name[1:], inspect.Parameter.VAR_POSITIONAL, True
        params.append((name.strip(), kind, eq == "=", default.strip()))
    problems = []
    if [p[0] for p in params] != [p.name for p in real]:
        return [f"parameters {[p[0] for p in params]}, the code has {[p.name for p in real]}"]
    for (name, kind, has_default, default), p in zip(params, real):
        real_kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if p.kind == p.POSITIONAL_ONLY else p.kind
        if kind != real_kind:
            problems.append(f"{name} is {real_kind.description} in the code")
        if has_default != (p.default is not p.empty):
            problems.append(f"{name} {'has a' if p.default is not p.empty else 'has no'} default in the code")
        elif has_default and default:
            try:
                value = ast.literal_eval(default)
            except (ValueError, SyntaxError):
                continue            # not a literal (torch.float32, print): its presence was checked
            if value != p.default:
                problems.append(f"{name}={default}, the code has {p.default!r}")
    return problems


def test_every_table_is_well_formed(docs):
    problems = [p for doc in docs for p in doc.problems]
    assert not problems, "\n".join(problems)
    assert sum(len(d.tables) for d in docs) >= 10          # the parser found the tables at all


def test_every_engine_api_name_exists(docs):
    names = api_names(docs)
    assert names, "no engine API table found (a table under a heading containing 'Engine API')"
    missing = [f"{at}: {dotted}: {obj}" for at, dotted, obj in names if isinstance(obj, LookupError)]
    assert not missing, "\n".join(missing)


def test_every_public_function_and_class_of_the_engine_is_in_the_api_table(docs):
    """The host adapters (the `hosts` sub-package, whose modules need a WebUI to import) are not the engine; every
    other module of the package counts, whatever it is called."""
    listed = [obj for _, _, obj in api_names(docs) if not isinstance(obj, LookupError)]
    unlisted = []
    for package in {package for package, _ in api_tables(docs)}:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            if info.name == f"{package}.hosts" or info.name.startswith(f"{package}.hosts."):
                continue
            try:
                module = importlib.import_module(info.name)
            except ModuleNotFoundError as e:
                if e.name and not e.name.startswith(package):
                    continue            # a host adapter: it imports the WebUI
                raise
            for name, obj in vars(module).items():
                if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                    continue
                if obj.__module__ == module.__name__ and not any(obj is o for o in listed):
                    unlisted.append(f"{module.__name__}.{name}")
    assert not unlisted, "public names missing from the engine API table:\n" + "\n".join(unlisted)


def test_signatures_in_the_api_table_are_the_code_s(docs):
    problems, checked = [], 0
    for package, table in api_tables(docs):
        for at, row in table.rows:
            objs = []
            for span in CODE.findall(row[0]):
                try:
                    objs.append((span.split(".")[-1], resolve(f"{package}.{span}")))
                except LookupError:
                    pass                    # reported by test_every_engine_api_name_exists
            for cell in row[1:]:
                for span in CODE.findall(cell):
                    call = re.fullmatch(r"(\.?[A-Za-z_][\w.]*)\((.*)\)", span)
                    if not call or not objs:
                        continue
                    callee = call.group(1)
                    if callee.startswith("."):
                        target = next((getattr(o, callee[1:]) for _, o in objs
                                       if inspect.isclass(o) and hasattr(o, callee[1:])), None)
                    else:
                        head, *rest = callee.split(".")
                        target = next((o for name, o in objs if name == head), None)
                        for attr in rest:
                            target = getattr(target, attr, None)
                    if not callable(target):
                        if cell is row[1]:
                            problems.append(f"{at}: `{span}` names nothing of its row")
                        continue
                    problems += [f"{at}: `{callee}`: {p}" for p in signature_problems(span, target)]
                    checked += 1
    assert checked, "no signature found in the engine API tables"
    assert not problems, "\n".join(problems)


def test_every_path_named_in_a_table_exists(docs):
    """A first-column code span that looks like a path of this repository (a '/' or a file suffix), optionally with
    '::test_name', must exist (globs allowed)."""
    missing = []
    for doc in docs:
        for table in doc.tables:
            for at, span in first_column_spans(table):
                if not PATH_SPAN.fullmatch(span) or span.startswith(("..", "/")):
                    continue
                path, _, test = span.partition("::")
                if "/" not in path and not re.search(r"\.(py|md|js|sh|txt|json|ini|png)$", path):
                    continue
                found = glob.glob(str(ROOT / path))
                if not found or (test and f"def {test}(" not in Path(found[0]).read_text()):
                    missing.append(f"{at}: {span}")
    assert not missing, "\n".join(missing)


def ignored(path: str) -> bool:
    """Whether .gitignore names the path or a folder above it (made by runs, absent from a clone)."""
    patterns = [p.strip().strip("/") for p in (ROOT / ".gitignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    parts = path.strip("/").split("/")
    return any(fnmatch.fnmatch("/".join(parts[:n]), pattern) for pattern in patterns for n in range(1, len(parts) + 1))


def test_every_repository_path_in_the_text_exists(docs):
    """Code spans anywhere in the text that start with a top-level folder or file of this repository (paths that
    .gitignore names are made by runs, and are left out)."""
    top = {p.name for p in ROOT.iterdir() if not p.name.startswith(".")}
    missing = []
    for doc in docs:
        text = "\n".join(doc.paragraphs) + "\n" + "\n".join(c for t in doc.tables for _, r in t.rows for c in r)
        for span in CODE.findall(text):
            if not PATH_SPAN.fullmatch(span) or span.split("/")[0] not in top or "/" not in span or ignored(span):
                continue
            path, _, test = span.partition("::")
            found = glob.glob(str(ROOT / path))
            if not found or (test and f"def {test}(" not in Path(found[0]).read_text()):
                missing.append(f"{doc.path.name}: {span}")
    assert not missing, "\n".join(missing)


def test_the_benchmarks_table_lists_every_benchmark_and_only_existing_ones(docs):
    tables = [t for d in docs for t in d.tables if "benchmarks" in t.heading.lower()]
    assert tables, "no Benchmarks table found (a table under a heading containing 'Benchmarks')"
    listed = {span for t in tables for _, span in first_column_spans(t) if span.startswith("bench/")}
    present = {f"bench/{p.name}" for p in (ROOT / "bench").glob("*.py")}
    assert not present - listed, f"benchmarks missing from the Benchmarks table: {sorted(present - listed)}"
    assert not listed - present, f"the Benchmarks table lists files that do not exist: {sorted(listed - present)}"


def test_names_said_to_be_importable_from_a_package_are(docs):
    claims = 0
    for doc in docs:
        for paragraph in doc.paragraphs:
            for found in re.finditer(r"importable from `([\w.]+)`", paragraph):
                claims += 1
                package = importlib.import_module(found.group(1))
                names = [n for n in CODE.findall(paragraph[found.end():]) if n.isidentifier()]
                if re.search(r"\bevery(thing)?\b", paragraph[:found.start()], re.IGNORECASE):
                    names += [dotted.split(".")[-1] for _, dotted, _ in api_names(docs)]
                assert names, f"{doc.path.name}: '{found.group(0)}' names nothing"
                absent = [n for n in names if not hasattr(package, n)]
                assert not absent, f"{doc.path.name}: not importable from {found.group(1)}: {absent}"
    assert claims, "no 'importable from' claim found (docs/ARCHITECTURE.md makes one)"


def test_import_examples_import(docs):
    """`from package import a, b` in the documents' Python blocks, for the packages of this repository."""
    local = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    problems, seen = [], 0
    for doc in docs:
        for language, text in doc.code:
            if language != "python":
                continue
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in local:
                    module = importlib.import_module(node.module)
                    seen += 1
                    problems += [f"{doc.path.name}: {node.module}.{a.name}" for a in node.names
                                 if not hasattr(module, a.name)]
    assert seen, "no import example found"
    assert not problems, "\n".join(problems)


def test_relative_links_to_documents_resolve(docs):
    broken = []
    for doc in docs:
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", doc.path.read_text()):
            if "://" not in target and not (doc.path.parent / target).exists():
                broken.append(f"{doc.path.name}: {target}")
    assert not broken, "\n".join(broken)
