from django.urls import NoReverseMatch, reverse

from portal.models import Role

# (key, label, url name). A page appears in the navigation once its URL exists.
NAV = [
    ("segment-jobs", "Segment jobs", "audiences:jobs"),
    ("profiles", "Profiles", "audiences:profiles"),
    ("datasets", "Datasets", "audiences:datasets"),
    ("destinations", "Destinations", "audiences:destinations"),
]
ADMIN_NAV = [
    ("merge-policies", "Merge policies", "audiences:merge_policies"),
    ("sandboxes", "Sandboxes", "sandboxes"),
]


def _items(entries):
    items = []
    for key, label, name in entries:
        try:
            items.append({"key": key, "label": label, "url": reverse(name)})
        except NoReverseMatch:
            continue
    return items


def tenancy(request) -> dict:
    context = getattr(request, "portal", None)
    is_admin = bool(context and context.role == Role.ADMIN)
    return {
        "portal": context,
        "is_admin": is_admin,
        "can_write": bool(context and context.role in (Role.ADMIN, Role.MARKETER)),
        "nav_items": _items(NAV) if context else [],
        "admin_nav_items": _items(ADMIN_NAV) if is_admin else [],
    }
