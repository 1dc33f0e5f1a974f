from audiences.models.definitions import DefinitionHistory, SegmentDefinition, Tag
from audiences.models.destinations import Activation, Delivery, Destination, FileExportRun
from audiences.models.jobs import ExportJob, Preview, Schedule, SegmentJob, SegmentJobRun
from audiences.models.memberships import (
    QUALIFIED,
    Cursor,
    Membership,
    MembershipChange,
    MetricBucket,
    Source,
    Status,
)
from audiences.models.profiles import (
    EVENT_CLASS,
    PROFILE_CLASS,
    Dataset,
    Event,
    Identity,
    IdentityLink,
    IdentityNamespace,
    IngestionBatch,
    MergePolicy,
    Profile,
    ProfileFragment,
    SchemaField,
    StreamingConnection,
)

__all__ = [
    "EVENT_CLASS", "PROFILE_CLASS", "QUALIFIED",
    "Activation", "Delivery", "Destination", "FileExportRun",
    "Cursor", "Dataset", "DefinitionHistory", "Event", "ExportJob", "Identity", "IdentityLink",
    "IdentityNamespace", "IngestionBatch", "Membership", "MembershipChange", "MergePolicy",
    "MetricBucket", "Preview", "Profile", "ProfileFragment", "Schedule", "SchemaField",
    "SegmentDefinition", "SegmentJob", "SegmentJobRun", "Source", "Status",
    "StreamingConnection", "Tag",
]
