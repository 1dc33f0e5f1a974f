"""AEP-compatible API routes. Paths are Adobe's own, so clients only change the base URL."""

from django.urls import path

from audiences.api.views import audiences, definitions, edge, previews, schema

urlpatterns: list = []

# Segment definitions, audiences, previews/estimates, conversion, and the OpenAPI document.
urlpatterns += [
    path("data/core/ups/segment/definitions", definitions.DefinitionListApi.as_view(),
         name="api_definitions"),
    path("data/core/ups/segment/definitions/bulk-get", definitions.DefinitionBulkGetApi.as_view(),
         name="api_definitions_bulk_get"),
    path("data/core/ups/segment/definitions/<str:definition_id>",
         definitions.DefinitionDetailApi.as_view(), name="api_definition"),
    path("data/core/ups/segment/conversion", definitions.ConversionApi.as_view(),
         name="api_conversion"),
    path("data/core/ups/audiences", audiences.AudienceListApi.as_view(), name="api_audiences"),
    path("data/core/ups/audiences/bulk-get", audiences.AudienceBulkGetApi.as_view(),
         name="api_audiences_bulk_get"),
    path("data/core/ups/audiences/<str:audience_id>", audiences.AudienceDetailApi.as_view(),
         name="api_audience"),
    path("data/core/ups/preview", previews.PreviewCreateApi.as_view(), name="api_previews"),
    path("data/core/ups/preview/<str:preview_id>", previews.PreviewDetailApi.as_view(),
         name="api_preview"),
    path("data/core/ups/estimate/<str:preview_id>", previews.EstimateDetailApi.as_view(),
         name="api_estimate"),
    path("data/core/ups/openapi.json", schema.OpenApiSchemaView.as_view(), name="api_openapi"),
]

# Edge segmentation: synchronous, for one identity.
urlpatterns += [
    path("data/core/ups/edge/evaluate", edge.EdgeEvaluateApi.as_view(), name="api_edge_evaluate"),
]

# Destinations: where audiences are activated, and what was delivered.
from audiences.api.views import destinations  # noqa: E402

DESTINATIONS = "data/core/ups/config/destinations"
urlpatterns += [
    path(DESTINATIONS, destinations.DestinationListApi.as_view(), name="api_destinations"),
    path(f"{DESTINATIONS}/<str:destination_id>", destinations.DestinationDetailApi.as_view(),
         name="api_destination"),
    path(f"{DESTINATIONS}/<str:destination_id>/activations",
         destinations.ActivationListApi.as_view(), name="api_destination_activations"),
    path(f"{DESTINATIONS}/<str:destination_id>/activations/<str:activation_id>",
         destinations.ActivationDetailApi.as_view(), name="api_destination_activation"),
    path(f"{DESTINATIONS}/<str:destination_id>/deliveries",
         destinations.DeliveryListApi.as_view(), name="api_destination_deliveries"),
    path(f"{DESTINATIONS}/<str:destination_id>/deliveries/replay",
         destinations.DeliveryReplayApi.as_view(), name="api_destination_replay"),
]

# Profile store: catalog datasets, streaming connections and ingestion, merge policies, Profile
# Access.
from audiences.api.views import collection, datasets, merge_policies, profiles  # noqa: E402

urlpatterns += [
    path("data/foundation/catalog/dataSets", datasets.DatasetListApi.as_view(),
         name="api_datasets"),
    path("data/foundation/catalog/dataSets/<str:dataset_id>", datasets.DatasetDetailApi.as_view(),
         name="api_dataset"),
    path("data/foundation/catalog/datasets", datasets.DatasetListApi.as_view(),
         name="api_datasets_lower"),
    path("data/foundation/catalog/datasets/<str:dataset_id>", datasets.DatasetDetailApi.as_view(),
         name="api_dataset_lower"),
    path("data/foundation/flowservice/connections", datasets.ConnectionListApi.as_view(),
         name="api_connections"),
    path("data/foundation/flowservice/connections/<str:connection_id>",
         datasets.ConnectionDetailApi.as_view(), name="api_connection"),
    path("collection/batch/<str:inlet_id>", collection.CollectionBatchApi.as_view(),
         name="collection_batch"),
    path("collection/<str:inlet_id>", collection.CollectionApi.as_view(), name="collection"),
    path("data/core/ups/config/mergePolicies", merge_policies.MergePolicyListApi.as_view(),
         name="api_merge_policies"),
    path("data/core/ups/config/mergePolicies/bulk-get",
         merge_policies.MergePolicyBulkGetApi.as_view(), name="api_merge_policies_bulk_get"),
    path("data/core/ups/config/mergePolicies/<str:merge_policy_id>",
         merge_policies.MergePolicyDetailApi.as_view(), name="api_merge_policy"),
    path("data/core/ups/access/entities", profiles.EntitiesApi.as_view(), name="api_entities"),
]

# Batch segmentation: segment jobs, schedules, export jobs.
from audiences.api.views import batch as batch_views  # noqa: E402

urlpatterns += [
    path("data/core/ups/segment/jobs", batch_views.SegmentJobListApi.as_view(),
         name="api_segment_jobs"),
    path("data/core/ups/segment/jobs/<str:job_id>", batch_views.SegmentJobDetailApi.as_view(),
         name="api_segment_job"),
    path("data/core/ups/config/schedules", batch_views.ScheduleListApi.as_view(),
         name="api_schedules"),
    path("data/core/ups/config/schedules/<str:schedule_id>",
         batch_views.ScheduleDetailApi.as_view(), name="api_schedule"),
    path("data/core/ups/export/jobs", batch_views.ExportJobListApi.as_view(),
         name="api_export_jobs"),
    path("data/core/ups/export/jobs/<str:export_id>", batch_views.ExportJobDetailApi.as_view(),
         name="api_export_job"),
    path("data/core/ups/export/jobs/<str:export_id>/file",
         batch_views.ExportJobFileApi.as_view(), name="api_export_job_file"),
]
