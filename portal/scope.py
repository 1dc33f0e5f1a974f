"""The current tenant (organization + sandbox), and the one manager that scopes every query by it.

Invariants:
1. Every domain row belongs to exactly one sandbox (`SandboxScoped.sandbox`).
2. `Model.objects` filters by the current sandbox and **raises** `ScopeNotSet` when there is
   none: forgetting the scope fails closed instead of leaking another tenant's rows.
3. `Model.objects.unscoped()` is the only way across tenants; grep for it.
4. The scope is set by `TenancyMiddleware` (portal), `BearerTokenAuthentication` (API), and
   `with sandbox_scope(sandbox):` blocks (tasks, commands, tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from portal.models import Organization, Sandbox


class ScopeNotSet(RuntimeError):
    """A scoped query ran without a current organization and sandbox."""


@dataclass(frozen=True)
class Scope:
    sandbox: Sandbox
    user: User | None = None
    role: str | None = None

    @property
    def organization(self) -> Organization:
        return self.sandbox.organization


_current: ContextVar[Scope | None] = ContextVar("sift_scope", default=None)


def current_scope() -> Scope:
    scope = _current.get()
    if scope is None:
        raise ScopeNotSet(
            "No current sandbox: wrap the code in `with sandbox_scope(sandbox):` "
            "or use .unscoped() deliberately."
        )
    return scope


def current_sandbox() -> Sandbox:
    return current_scope().sandbox


def scope_or_none() -> Scope | None:
    return _current.get()


@contextlib.contextmanager
def sandbox_scope(sandbox: Sandbox, *, user: User | None = None, role: str | None = None
                  ) -> Iterator[Scope]:
    token = _current.set(Scope(sandbox=sandbox, user=user, role=role))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def activate(scope: Scope | None) -> Any:
    """Set the scope for the rest of the current context; returns a token for `deactivate`."""
    return _current.set(scope)


def deactivate(token: Any) -> None:
    _current.reset(token)


class SandboxScopedQuerySet(models.QuerySet):
    pass


class SandboxScopedManager(models.Manager.from_queryset(SandboxScopedQuerySet)):
    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(sandbox=current_sandbox())

    def unscoped(self) -> models.QuerySet:
        """All rows of every tenant. Only for migrations-like sweeps that re-scope per row."""
        return super().get_queryset()

    def create(self, **kwargs: Any) -> Any:
        kwargs.setdefault("sandbox", current_sandbox())
        return super().create(**kwargs)

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> Any:
        objs = list(objs)
        sandbox = None
        for obj in objs:
            if obj.sandbox_id is None:
                sandbox = sandbox or current_sandbox()
                obj.sandbox = sandbox
        return super().bulk_create(objs, *args, **kwargs)


class SandboxScoped(models.Model):
    """Base for every domain model: one sandbox per row, scoped manager by default."""

    sandbox = models.ForeignKey("portal.Sandbox", on_delete=models.CASCADE, related_name="+")

    objects = SandboxScopedManager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.sandbox_id is None:
            self.sandbox = current_sandbox()
        super().save(*args, **kwargs)
