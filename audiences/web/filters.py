"""The Audiences page's filter panel (django-filter). The URL is the state: every field is a GET
parameter, so a filtered view can be bookmarked, shared and navigated with the back button.

Choice querysets are callables so they are read inside the request's sandbox scope.
"""

from __future__ import annotations

import django_filters as filters
from django import forms
from django.contrib.auth.models import User
from django.db.models import Q

from audiences.models import MergePolicy, SegmentDefinition, Tag
from portal.scope import current_sandbox

Definition = SegmentDefinition

FREQUENCY_CHOICES = Definition.Method.choices
# Update frequency is the one method shown per audience: edge > streaming > batch.
FREQUENCY_Q = {
    Definition.Method.EDGE: Q(evaluation_synchronous=True),
    Definition.Method.STREAMING: Q(evaluation_continuous=True, evaluation_synchronous=False),
    Definition.Method.BATCH: Q(evaluation_batch=True, evaluation_continuous=False,
                               evaluation_synchronous=False),
}
SORTS = {
    "name": "name", "count": "qualified_count", "origin": "origin", "created": "created_at",
    "updated": "updated_at", "lifecycle": "lifecycle_state", "evaluated": "last_evaluated_at",
}


def _tags(request):
    return Tag.objects.order_by("name")


def _policies(request):
    return MergePolicy.objects.order_by("name")


def _authors(request):
    organization = current_sandbox().organization
    return User.objects.filter(memberships__organization=organization).order_by("username")


class DateRange(filters.DateFromToRangeFilter):
    """Two `<input type=date>` boxes named `<field>_after` / `<field>_before`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", filters.widgets.DateRangeWidget(attrs={"type": "date"}))
        super().__init__(*args, **kwargs)


class AudienceFilter(filters.FilterSet):
    q = filters.CharFilter(field_name="name", lookup_expr="icontains", label="Search by name")
    origin = filters.MultipleChoiceFilter(choices=Definition.Origin.choices,
                                          widget=forms.CheckboxSelectMultiple)
    tags_any = filters.ModelMultipleChoiceFilter(queryset=_tags, field_name="tags",
                                                 label="Has any tag", distinct=True)
    tags_all = filters.ModelMultipleChoiceFilter(queryset=_tags, field_name="tags",
                                                 label="Has all tags", conjoined=True)
    lifecycle = filters.MultipleChoiceFilter(field_name="lifecycle_state",
                                             choices=Definition.Lifecycle.choices,
                                             label="Lifecycle status",
                                             widget=forms.CheckboxSelectMultiple)
    frequency = filters.MultipleChoiceFilter(choices=FREQUENCY_CHOICES, label="Update frequency",
                                             method="filter_frequency",
                                             widget=forms.CheckboxSelectMultiple)
    created_by = filters.ModelChoiceFilter(queryset=_authors, label="Created by")
    created = DateRange(field_name="created_at", label="Creation date")
    modified = DateRange(field_name="updated_at", label="Modified date")
    merge_policy = filters.ModelChoiceFilter(queryset=_policies, label="Merge policy")
    has_destination = filters.BooleanFilter(label="Has destination",
                                            method="filter_has_destination")

    class Meta:
        model = Definition
        fields: list[str] = []

    def filter_has_destination(self, queryset, name, value):
        from audiences.services.destinations import definitions_with_destination

        return definitions_with_destination(queryset, value)

    def filter_frequency(self, queryset, name, value):
        wanted = Q()
        for method in value:
            wanted |= FREQUENCY_Q[method]
        return queryset.filter(wanted)


def sort_key(raw: str) -> tuple[str, str, list[str]]:
    """(`sort` as given or the default, the column key, the ORDER BY list). Unknown keys fall
    back to name so a hand-edited URL never errors."""
    key = raw.lstrip("-")
    if key not in SORTS:
        raw, key = "name", "name"
    field = SORTS[key]
    desc = raw.startswith("-")
    return raw, key, [f"-{field}" if desc else field, "pk"]
