"""The Python SDK of dsfeatures: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

Both have the same methods, retry what is safe to retry, and raise the classes of
:mod:`dsfeatures.errors`. The SDK depends on the wire types, the registry models
and the errors only, never on the daemon's server code.
"""

from dsfeatures.client._async import AsyncClient
from dsfeatures.client._calls import RowInput
from dsfeatures.client._settings import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_BASE_URL,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
)
from dsfeatures.client._sync import Client
from dsfeatures.client.producer import PayloadBuilder
from dsfeatures.errors import (
    BackendUnavailable,
    Conflict,
    DeadlineExceeded,
    DSFError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnknownFeature,
)
from dsfeatures.registry.models import (
    Feature,
    FeatureGroup,
    GroupSummary,
    GroupVersions,
    Lineage,
    Owner,
    RegisteredGroup,
    RegisterResponse,
)
from dsfeatures.wire import (
    EraseResponse,
    GetResponse,
    GetRow,
    Lane,
    SearchHit,
    Status,
    WriteMode,
    WriteResult,
    WriteRow,
    WriteStatus,
)

__all__ = [
    "DEFAULT_BACKOFF_BASE",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_BASE_URL",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    # clients
    "AsyncClient",
    # errors
    "BackendUnavailable",
    "Client",
    "Conflict",
    "DSFError",
    "DeadlineExceeded",
    # wire types
    "EraseResponse",
    # registry models
    "Feature",
    "FeatureGroup",
    "Forbidden",
    "GetResponse",
    "GetRow",
    "GroupSummary",
    "GroupVersions",
    "InvalidRequest",
    "Lane",
    "Lineage",
    "NotFound",
    "Owner",
    "PayloadBuilder",
    "PayloadTooLarge",
    "RegisterResponse",
    "RegisteredGroup",
    "RowInput",
    "SearchHit",
    "Status",
    "Unauthorized",
    "UnknownFeature",
    "WriteMode",
    "WriteResult",
    "WriteRow",
    "WriteStatus",
]
