"""Backends chosen by name, scikit-learn style: one registry per kind of component.

Generators, prompt filters, face detectors and gender classifiers are each looked up by
name. A registry knows which module defines each built-in backend and imports it only when
that backend is first asked for, so choosing ``dlib-onnx`` never imports CLIP, and
``imagen-audit --help`` imports no model library at all. Third-party code (and tests)
add backends with the ``register`` decorator.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from imagen_audit.errors import AuditError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """Factories of one kind of backend, by name."""

    def __init__(self, kind: str, modules: Mapping[str, str],
                 error: type[AuditError] = AuditError) -> None:
        self.kind = kind
        self._modules = dict(modules)  # built-in name -> module that registers it
        self._factories: dict[str, F] = {}
        self._error = error

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: make ``factory`` available under ``name``."""

        def deco(factory: F) -> F:
            self._factories[name] = factory
            return factory

        return deco

    def names(self) -> list[str]:
        """Every name that can be asked for (built-in and registered)."""
        return sorted(set(self._modules) | set(self._factories))

    def get(self, name: str) -> F:
        """The factory registered as ``name``, importing its module on first use."""
        if name not in self._factories and name in self._modules:
            importlib.import_module(self._modules[name])
        if name not in self._factories:
            raise self._error(f"unknown {self.kind} {name!r}; choose one of {self.names()}")
        return self._factories[name]
