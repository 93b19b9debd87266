"""The service layer: everything the daemon does, with no knowledge of HTTP."""

from dsfeatures.service.core import Service
from dsfeatures.service.fetch import Fetcher
from dsfeatures.service.registry import RegistryService
from dsfeatures.service.search import Searcher
from dsfeatures.service.write import Writer, entity_hash

__all__ = ["Fetcher", "RegistryService", "Searcher", "Service", "Writer", "entity_hash"]
