"""The demo's corpus: the Python standard library's own documentation.

Every machine with Python has it, so nothing is downloaded: the docstrings of about 140
stdlib modules and of their public classes, functions and methods, gathered with
``inspect`` and chunked into passages of at most 150 words, each headed by its dotted
name and signature, id ``"<dotted name>#<chunk>"``. That is 2,944 passages on Python
3.11; the count depends on the Python version.
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings

#: Stdlib modules whose documentation forms the default corpus (missing ones are skipped).
STDLIB_MODULES = """
abc argparse array ast asyncio base64 bisect bz2 calendar cmath codecs collections
collections.abc concurrent.futures configparser contextlib contextvars copy csv
dataclasses datetime decimal difflib doctest email email.message email.utils enum
filecmp fileinput fnmatch fractions ftplib functools getpass gettext glob graphlib gzip
hashlib heapq hmac html html.parser http http.client http.cookies http.server imaplib
importlib importlib.metadata importlib.resources inspect io ipaddress itertools json
keyword linecache locale logging logging.handlers lzma mailbox math mimetypes
multiprocessing numbers operator os os.path pathlib pickle pkgutil platform poplib
pprint profile pstats queue quopri random re reprlib sched secrets select selectors
shelve shlex shutil signal smtplib socket socketserver sqlite3 ssl stat statistics
string struct subprocess sys sysconfig tarfile tempfile textwrap threading time timeit
tokenize tomllib traceback types typing unicodedata unittest unittest.mock urllib.parse
urllib.request uuid warnings weakref webbrowser wsgiref xml.dom.minidom
xml.etree.ElementTree xmlrpc.client zipfile zlib zoneinfo
""".split()

#: Modules whose functions live in another, platform-dependent module.
MODULE_ALIASES = {"os.path": ("posixpath", "ntpath", "genericpath")}

MAX_WORDS = 150  # words per passage, at most
MIN_WORDS = 8  # docstrings shorter than this are skipped


def _chunks(doc: str, max_words: int = MAX_WORDS) -> list[str]:
    """Split a docstring into chunks of at most ``max_words`` on paragraph boundaries."""
    pieces: list[list[str]] = []  # chunks as lists of paragraphs
    current: list[str] = []
    size = 0
    for para in (p.strip() for p in re.split(r"\n\s*\n", doc)):
        if not para:
            continue
        words = para.split()
        while len(words) > max_words:  # an overlong paragraph: cut it by words
            if current:
                pieces.append(current)
                current, size = [], 0
            pieces.append([" ".join(words[:max_words])])
            words = words[max_words:]
            para = " ".join(words)
        if current and size + len(words) > max_words:
            pieces.append(current)
            current, size = [], 0
        current.append(para)
        size += len(words)
    if current:
        pieces.append(current)
    return ["\n\n".join(p) for p in pieces]


def _doc(obj: object) -> str:
    doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else ""


def _header(name: str, obj: object) -> tuple[str, str]:
    """A passage heading (dotted name and signature) and the object's kind."""
    if inspect.ismodule(obj):
        return f"module {name}", "module"
    target = obj.fget if isinstance(obj, property) else obj
    try:
        sig = str(inspect.signature(target))
    except (TypeError, ValueError):
        sig = ""
    if isinstance(obj, property):
        return f"{name} (property)", "property"
    if len(sig) > 100:
        sig = sig[:96] + "...)"
    if inspect.isclass(obj):
        return f"class {name}{sig}", "class"
    return f"{name}{sig}", "method" if name.count(".") > _module_depth(name) else "function"


def _module_depth(name: str) -> int:
    for module in sorted(STDLIB_MODULES, key=len, reverse=True):
        if name.startswith(module + "."):
            return module.count(".") + 1
    return 1


def _public_members(name: str, module: object) -> list[tuple[str, object]]:
    """(dotted name, object) of the module, its classes, functions and methods."""
    roots = {name.split(".")[0], *MODULE_ALIASES.get(name, ())}
    members: list[tuple[str, object]] = [(name, module)]
    for attr in sorted(getattr(module, "__all__", None) or dir(module)):
        obj = getattr(module, attr, None)
        if attr.startswith("_") or not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        home = (getattr(obj, "__module__", None) or "").lstrip("_").split(".")[0]
        if home not in roots:  # re-exported from elsewhere
            continue
        members.append((f"{name}.{attr}", obj))
        if inspect.isclass(obj):
            for meth_name, meth in sorted(vars(obj).items()):
                if meth_name.startswith("_"):
                    continue
                if inspect.isroutine(meth) or isinstance(
                    meth, (property, classmethod, staticmethod)
                ):
                    members.append((f"{name}.{attr}.{meth_name}", meth))
    return members


def stdlib_corpus() -> tuple[list[str], list[str], list[dict]]:
    """Passages from the docstrings of the stdlib modules in :data:`STDLIB_MODULES`."""
    ids, texts, metas = [], [], []
    seen: set[int] = set()
    skipped = []
    for name in STDLIB_MODULES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                module = importlib.import_module(name)
            except ImportError:
                skipped.append(name)
                continue
        for dotted, obj in _public_members(name, module):
            raw = obj.__func__ if isinstance(obj, (classmethod, staticmethod)) else obj
            doc = _doc(raw)
            if id(raw) in seen or len(doc.split()) < MIN_WORDS:
                continue
            seen.add(id(raw))
            header, kind = _header(dotted, raw)
            for i, chunk in enumerate(_chunks(doc)):
                ids.append(f"{dotted}#{i}")
                texts.append(f"{header}{' (continued)' if i else ''}\n{chunk}")
                metas.append({"name": dotted, "module": name, "kind": kind, "chunk": i})
    if skipped:
        print(f"(stdlib modules not available here, skipped: {', '.join(skipped)})")
    return ids, texts, metas
