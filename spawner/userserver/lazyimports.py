"""Imports a user server pays for at start but rarely uses, made lazy.

``jsonschema`` (imported by ``jupyter_events`` in every jupyter-server) checks
the ``iri``/``iri-reference`` formats with ``rfc3987_syntax``, which compiles
an Earley grammar with ``lark`` *at import time*: ~0.8-1.0 CPU s of every
server start on the benchmark machine (``python -X importtime``), for a format
no schema that jupyter-server, JupyterLab or jupyter-events validates at start
uses. :func:`install` puts a finder in front of ``sys.meta_path`` that serves
``rfc3987_syntax`` as a small stand-in module: ``jsonschema`` registers its
``iri`` checkers exactly as before (the stand-in has ``is_valid_syntax``), and
the real package - still installed, unchanged - is imported on the first call,
so ``iri`` validation gives the same answers as without labdeck.

Only the user-server launcher (:mod:`labdeck.spawner.userserver.singleuser`) and the warm
pool's zygote install it; the hub, kernels and tools import as usual.

Requirements: nothing changes for a program that never validates an IRI;
one that does gets the real ``rfc3987_syntax`` (thread-safe, once).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
import types

LAZY = "rfc3987_syntax"
_lock = threading.Lock()


def _real():
    """Import the real ``rfc3987_syntax`` (once) and return it."""
    with _lock:
        mod = sys.modules.get(LAZY)
        if mod is not None and not getattr(mod, "__labdeck_lazy__", False):
            return mod
        _Finder.disabled = True
        try:
            sys.modules.pop(LAZY, None)
            real = importlib.import_module(LAZY)
        finally:
            _Finder.disabled = False
        return real


def _stand_in() -> types.ModuleType:
    mod = types.ModuleType(LAZY, "labdeck's lazy stand-in for rfc3987_syntax (see labdeck.spawner.userserver.lazyimports)")
    mod.__labdeck_lazy__ = True

    def is_valid_syntax(term, value):
        return _real().is_valid_syntax(term, value)

    def parse(term, value):
        return _real().parse(term, value)

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(_real(), name)

    mod.is_valid_syntax = is_valid_syntax
    mod.parse = parse
    mod.__getattr__ = __getattr__
    return mod


class _Loader(importlib.abc.Loader):
    def create_module(self, spec):
        mod = _stand_in()
        mod.__spec__ = spec
        return mod

    def exec_module(self, module):
        pass


class _Finder(importlib.abc.MetaPathFinder):
    disabled = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != LAZY or self.disabled:
            return None
        # only stand in for a package that is really there
        for finder in sys.meta_path:
            if isinstance(finder, _Finder):
                continue
            find = getattr(finder, "find_spec", None)
            if find and find(fullname, path, target) is not None:
                return importlib.machinery.ModuleSpec(fullname, _Loader())
        return None


def install() -> bool:
    """Serve ``rfc3987_syntax`` lazily from now on; False if it was imported already."""
    if LAZY in sys.modules:
        return False
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    return True
