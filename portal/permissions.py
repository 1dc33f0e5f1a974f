"""Who may do what: any member reads, marketers and admins write, some writes are admin-only."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from portal import scope
from portal.models import WRITE_ROLES, Role


class RoleWritePermission(BasePermission):
    message = "Viewers may read but not change anything."

    def has_permission(self, request, view) -> bool:
        current = scope.scope_or_none()
        if request.user is None or current is None:
            return False
        if request.method in SAFE_METHODS:
            return True
        return current.role in WRITE_ROLES


class AdminWritePermission(BasePermission):
    message = "Only administrators may change this."

    def has_permission(self, request, view) -> bool:
        current = scope.scope_or_none()
        if request.user is None or current is None:
            return False
        if request.method in SAFE_METHODS:
            return True
        return current.role == Role.ADMIN
