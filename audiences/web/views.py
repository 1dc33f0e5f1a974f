"""Portal pages of the audiences domain. Thin: read through services, render templates."""

from __future__ import annotations

from django.views.decorators.http import require_safe

from portal.web import portal_view, render_page_or_partial


@require_safe
@portal_view(role="admin")
def merge_policies(request):
    from audiences.models import MergePolicy

    policies = MergePolicy.objects.order_by("-is_default", "name")
    return render_page_or_partial(request, "audiences/merge_policies.html",
                                  "audiences/merge_policies.html",
                                  {"policies": policies, "nav": "merge-policies"})
