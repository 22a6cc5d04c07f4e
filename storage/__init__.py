"""Feature stores: where node features live and how rows are gathered.

``InMemoryFeatureStore`` and ``DiskFeatureStore`` hold one tier; ``TieredFeatureStore`` puts a
cache tier (hot rows on the cache device, chosen by a policy from ``policies``) in front of a
host or disk tier; ``OutOfCoreStore`` reads a feature file larger than memory through the
store's own I/O under a memory budget (``write_feature_file`` makes one from any matrix, a chunk
at a time). ``build_feature_store`` builds what a training run asks for."""

from gnnsys.storage.build import FEATURE_KINDS, build_feature_store
from gnnsys.storage.feature_file import FeatureFile, FeatureFileWriter, write_feature_file
from gnnsys.storage.feature_store import DiskFeatureStore, FeatureStore, InMemoryFeatureStore
from gnnsys.storage.out_of_core import OutOfCoreStore
from gnnsys.storage.policies import (
    CACHE_POLICIES,
    ORACLE_POLICIES,
    BeladyPolicy,
    CachePolicy,
    HybridPolicy,
    LRUPolicy,
    PlannedPolicy,
    S3FIFOPolicy,
    StaticPolicy,
    make_policy,
)
from gnnsys.storage.tiered import TieredFeatureStore

__all__ = [
    "FeatureStore", "InMemoryFeatureStore", "DiskFeatureStore", "TieredFeatureStore", "build_feature_store",
    "FEATURE_KINDS", "CACHE_POLICIES", "ORACLE_POLICIES", "CachePolicy", "StaticPolicy", "LRUPolicy",
    "S3FIFOPolicy", "HybridPolicy", "PlannedPolicy", "BeladyPolicy", "make_policy",
    "OutOfCoreStore", "FeatureFile", "FeatureFileWriter", "write_feature_file",
]
