"""Portal pages of the audiences domain. Thin: read through services, render templates."""

from __future__ import annotations

from django.views.decorators.http import require_safe

from audiences.models import SegmentDefinition
from portal.web import portal_view, render_page_or_partial


@require_safe
@portal_view()
def browse(request):
    definitions = (SegmentDefinition.objects.select_related("merge_policy")
                   .prefetch_related("tags").order_by("name")[:50])
    return render_page_or_partial(request, "audiences/browse.html", "audiences/_table.html",
                                  {"definitions": definitions, "nav": "audiences"})
