"""Source-tree rules, checked on the syntax tree of every module in eegmamba_cli/ and models/:

* every file the toolkit writes goes through `atomic_writer` (temporary name, fsync, rename); the few
  exceptions are listed below with their reason, so a new direct write fails this test until reviewed;
* nothing deserialises with code execution: `torch.load` only with `weights_only=True`, `np.load` only
  with `allow_pickle=False`, pickle only through the restricted unpickler of data/safe_pickle.py (no
  pickle.load/loads/Unpickler call anywhere), and no eval/exec, yaml.load, marshal, shelve, dill or joblib;
* XML is parsed by defusedxml only (no xml.etree, xml.dom/minidom, xml.sax, expat or lxml imports), so
  entity expansion (billion laughs) and external entities are refused (SHHS tests feed both).
"""
from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for root in ("eegmamba_cli", "models") for p in (REPO / root).rglob("*.py"))


@functools.lru_cache(maxsize=None)
def _parse(text: str, filename: str) -> ast.Module:
    return ast.parse(text, filename)


def _tree(path: Path) -> ast.Module:
    return _parse(path.read_text(), str(path))


def _calls(tree: ast.AST):
    """(call node, name of the enclosing function or '<module>') for every call."""
    def visit(node, where):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else where
            if isinstance(child, ast.Call):
                yield child, where
            yield from visit(child, inner)
    yield from visit(tree, "<module>")


def _name(func: ast.AST) -> str:
    """'torch.load', 'np.save', '.write_text' (a method on anything), 'open'."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        base = func.value
        if isinstance(base, ast.Name) and base.id in ("torch", "np", "numpy", "pickle", "json", "yaml", "marshal",
                                                       "shelve", "dill", "joblib", "os", "shutil", "pyedflib",
                                                       "tempfile", "io"):
            return f"{base.id}.{func.attr}"
        return f".{func.attr}"
    return ""


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else kw.value
    return None


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


# --- writes --------------------------------------------------------------------------------------------
WRITERS = {".write_text", ".write_bytes", ".to_csv", ".to_parquet", ".to_json", ".to_pickle", ".to_hdf",
           ".savefig", "np.save", "np.savez", "np.savez_compressed", ".tofile", "torch.save", "json.dump",
           "pickle.dump", ".EdfWriter", "pyedflib.EdfWriter", "shutil.copy", "shutil.copyfile", "shutil.copy2",
           "shutil.copytree", "shutil.move", "os.rename", ".rename", ".symlink_to", ".touch", ".dump", ".savemat",
           "savemat"}
# (file, function, call source) -> why a direct write is right there
ALLOWED_WRITES = {
    ("eegmamba_cli/training/peer_report.py", "_peer_rows", "found.rename(columns={'peer': 'method'})"):
        "DataFrame.rename of a column, not a file",
    ("eegmamba_cli/fileio.py", "directory_lock", "open(lock_path, 'a+')"):
        "the lock file itself: flock needs a stable inode, its content is informational",
    ("eegmamba_cli/data/download.py", "_open_part", "os.fdopen(os.open(part, flags, 420), 'ab' if append else 'wb')"):
        "the documented resumable <file>.part, verified by sha256 before os.replace to its final name",
    ("eegmamba_cli/bench/model.py", "_reset_peak_rss", "open('/proc/self/clear_refs', 'w')"):
        "a kernel control file, not data",
    ("eegmamba_cli/data/edf.py", "write_edf", "pyedflib.EdfWriter(str(path), len(labels), file_type=pyedflib.FILETYPE_EDF)"):
        "fixture and benchmark writer into scratch folders; the readers never write",
    ("eegmamba_cli/data/edf.py", "write_annotations_edf",
     "pyedflib.EdfWriter(str(path), 0, file_type=pyedflib.FILETYPE_EDFPLUS)"):
        "fixture writer into scratch folders",
    ("eegmamba_cli/training/peer_process.py", "write_inputs", "np.savez(path, **arrays)"):
        "the peer child's input, in a TemporaryDirectory removed when the call returns",
    ("eegmamba_cli/training/peer_process.py", "main",
     "_error_path(outputs).write_text(json.dumps({'kind': 'unavailable', 'message': str(err)}))"):
        "the peer child's error report, in the parent's TemporaryDirectory; read only if the child exits",
    ("eegmamba_cli/training/peer_process.py", "main",
     "_error_path(outputs).write_text(json.dumps({'kind': 'input', 'message': str(err)}))"):
        "the peer child's error report, in the parent's TemporaryDirectory; read only if the child exits",
    ("eegmamba_cli/training/peer_process.py", "main", "table.to_csv(outputs, index=False)"):
        "the peer child's result, in the parent's TemporaryDirectory; read only after the child exited 0",
    ("eegmamba_cli/bench/ab.py", "import_models_at", "(folder / 'models').rename(folder / 'basemodels')"):
        "renames a folder inside the benchmark's own scratch checkout of an earlier commit",
}
IN_MEMORY = {"io.BytesIO", "io.StringIO", "BytesIO", "StringIO"}


def _buffers_and_handles(func: ast.AST) -> set[str]:
    """Names bound to in-memory buffers or to atomic_writer handles inside one function."""
    names = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                ast.unparse(node.value.func) in IN_MEMORY:
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        if isinstance(node, ast.With):
            for item in node.items:
                if isinstance(item.context_expr, ast.Call) and "atomic_writer" in ast.unparse(item.context_expr.func) \
                        and isinstance(item.optional_vars, ast.Name):
                    names.add(item.optional_vars.id)
    return names


def _write_mode(call: ast.Call) -> bool:
    mode = call.args[1] if len(call.args) > 1 else _keyword(call, "mode")
    if mode is None:
        return False
    text = mode if isinstance(mode, str) else ast.unparse(mode)
    return any(c in text for c in "wax+")


def direct_writes() -> list[tuple[str, str, str]]:
    found = []
    for path in SOURCES:
        tree = _tree(path)
        functions = {n.name: n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        for call, where in _calls(tree):
            name = _name(call.func)
            if name == "open" or name == "os.fdopen":
                if _write_mode(call) and not (path.name == "fileio.py" and where == "atomic_writer"):
                    found.append((_rel(path), where, ast.unparse(call)))
                continue
            if name not in WRITERS:
                continue
            if name in (".to_csv", ".to_json") and not call.args and _keyword(call, "path_or_buf") is None:
                continue  # returns the text (or is a config's own to_json); the caller writes it atomically
            safe = _buffers_and_handles(functions[where]) if where in functions else set()
            target = call.args[0] if call.args else None
            if isinstance(target, ast.Name) and target.id in safe:
                continue  # an in-memory buffer, or the handle of an atomic_writer
            found.append((_rel(path), where, ast.unparse(call)))
    return found


def test_every_file_write_goes_through_atomic_writer():
    unreviewed = [w for w in direct_writes() if w not in ALLOWED_WRITES]
    assert not unreviewed, "direct writes (use eegmamba_cli.fileio.atomic_writer, or add a reviewed exception):\n" + \
        "\n".join(f"  {f}: {fn}: {src}" for f, fn, src in unreviewed)
    stale = [k for k in ALLOWED_WRITES if k not in direct_writes()]
    assert not stale, f"allow-list entries that no longer exist (remove them): {stale}"


# --- deserialisation -------------------------------------------------------------------------------------
FORBIDDEN_CALLS = {"eval", "exec", "pickle.load", "pickle.loads", "pickle.Unpickler", "marshal.load",
                   "marshal.loads", "shelve.open", "dill.load", "dill.loads", "joblib.load", "yaml.load",
                   "yaml.unsafe_load", "yaml.full_load", ".__reduce__"}
FORBIDDEN_IMPORTS = {"dill", "joblib", "shelve", "marshal", "cloudpickle"}


def unsafe_loads() -> list[str]:
    problems = []
    for path in SOURCES:
        tree = _tree(path)
        for call, where in _calls(tree):
            name, where_txt = _name(call.func), f"{_rel(path)}:{call.lineno} ({where}): {ast.unparse(call)[:100]}"
            if name == "torch.load" and _keyword(call, "weights_only") is not True:
                problems.append(f"torch.load without weights_only=True: {where_txt}")
            elif name in ("np.load", "numpy.load") and _keyword(call, "allow_pickle") is not False:
                problems.append(f"np.load without allow_pickle=False: {where_txt}")
            elif name in FORBIDDEN_CALLS:
                problems.append(f"{name}: {where_txt}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b) for b in node.bases}
                if bases & {"pickle.Unpickler", "Unpickler"} and _rel(path) != "eegmamba_cli/data/safe_pickle.py":
                    problems.append(f"an Unpickler outside safe_pickle.py: {_rel(path)}:{node.lineno}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for module in modules:
                    if module.split(".")[0] in FORBIDDEN_IMPORTS:
                        problems.append(f"import {module}: {_rel(path)}:{node.lineno}")
    return problems


def test_nothing_deserialises_with_code_execution():
    assert not unsafe_loads(), "\n".join(unsafe_loads())


def test_the_loads_that_exist_are_the_safe_ones():
    """The rules above are not vacuous: the code does load these, in the safe form."""
    text = {_rel(p): p.read_text() for p in SOURCES}
    assert "weights_only=True" in text["eegmamba_cli/training/checkpoint.py"]
    assert "allow_pickle=False" in text["eegmamba_cli/data/cache.py"]
    assert "class RestrictedUnpickler(pickle.Unpickler)" in text["eegmamba_cli/data/safe_pickle.py"]
    assert "def find_class" in text["eegmamba_cli/data/safe_pickle.py"]
    assert "super().find_class" not in text["eegmamba_cli/data/safe_pickle.py"]


# --- XML -------------------------------------------------------------------------------------------------
UNSAFE_XML = ("xml.etree", "xml.dom", "xml.sax", "xml.parsers", "lxml", "xmltodict", "pyexpat")


def xml_imports() -> list[tuple[str, str]]:
    found = []
    for path in SOURCES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            found += [(_rel(path), m) for m in modules if m == "xml" or m.startswith(UNSAFE_XML)]
    return found


def test_xml_is_parsed_with_defusedxml_only():
    assert not xml_imports(), f"XML parsers other than defusedxml: {xml_imports()}"
    users = [_rel(p) for p in SOURCES if "defusedxml" in p.read_text()]
    assert users == ["eegmamba_cli/data/corpora/shhs.py"]


@pytest.mark.parametrize("snippet,finding", [
    ("torch.load(path)", "torch.load without weights_only=True"),
    ("torch.load(path, weights_only=False)", "torch.load without weights_only=True"),
    ("np.load(path)", "np.load without allow_pickle=False"),
    ("import pickle\npickle.loads(b'')", "pickle.loads"),
    ("open(path, 'w').write('x')", "direct write"),
    ("Path(p).write_text('x')", "direct write"),
    ("import xml.etree.ElementTree as ET", "xml"),
    ("from xml.dom import minidom", "xml"),
])
def test_the_rules_catch_what_they_forbid(tmp_path, monkeypatch, snippet, finding):
    """Each rule fires on a planted offender (a scratch module added to the scanned set)."""
    planted = REPO / "eegmamba_cli" / "_planted_for_test.py"
    monkeypatch.setattr(sys.modules[__name__], "SOURCES", [*SOURCES, planted])
    original = Path.read_text

    def read_text(self, *args, **kwargs):
        return f"def f(path, p):\n    {snippet.replace(chr(10), chr(10) + '    ')}\n" if self == planted \
            else original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    hits = [*unsafe_loads(), *(f"direct write {w}" for w in direct_writes() if w not in ALLOWED_WRITES),
            *(f"xml {m}" for m in xml_imports())]
    assert any(finding in h and "_planted_for_test" in h for h in hits), hits
