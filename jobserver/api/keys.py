"""Typed keys for everything the API shares on the application and on each request.

App keys: `SETTINGS_KEY`, `POOL_KEY`, `ROUTES_KEY` (the joined route table),
`PREPARED_ROUTES_KEY` (each route's compiled pipeline, by its handler), `TOKEN_CACHE_KEY`,
`DEFINITION_CACHE_KEY`, `GROUP_COMMIT_KEY` (the committer single submissions go through),
`METRICS_CACHE_KEY` (recent `/v1/metrics` answers), `PROMETHEUS_KEY` (the registry and
collector of the job metrics `/metrics` exposes), `QUEUE_SNAPSHOTS_KEY` (the queue health and
stats snapshots and the finished-jobs tally behind them), `CONTROL_KEY` (the control
channel's end that sends runner commands and waits for replies), `FEED_HUB_KEY` (the job feed's
end that GET /v1/stream subscribers share), `READ_REPLICA_KEY` (the streaming replica reads
may go to, with DATABASE_READ_URL only: see read_replica.py).
Request keys: `PRINCIPAL_KEY` (who is calling), `BODY_KEY` (the parsed, validated JSON body),
`QUERY_KEY` (the parsed, coerced, validated query as a dict), `READ_POOL_KEY` (the pool a
replica-read route reads through for this request; absent: the primary's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

from jobserver.config import Settings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from jobserver.api.auth import Principal, TokenCache
    from jobserver.api.control_channel import ControlChannel
    from jobserver.api.definitions_cache import DefinitionCache
    from jobserver.api.feed_hub import FeedHub
    from jobserver.api.group_commit import GroupCommitter
    from jobserver.api.metrics_cache import MetricsCache
    from jobserver.api.pipeline import PreparedRoute
    from jobserver.api.prometheus import JobsCollector
    from jobserver.api.queue_snapshot import QueueSnapshots
    from jobserver.api.read_replica import ReadReplica
    from jobserver.api.routing import Handler, Route

SETTINGS_KEY = web.AppKey("settings", Settings)
POOL_KEY = web.AppKey("pool", asyncpg.Pool)
ROUTES_KEY: web.AppKey[list[Route]] = web.AppKey("routes", list)
# the router's handler of each route -> its compiled pipeline (jobserver.compat.dispatch)
PREPARED_ROUTES_KEY: web.AppKey[dict[Handler, PreparedRoute]] = web.AppKey("prepared_routes")
TOKEN_CACHE_KEY: web.AppKey[TokenCache] = web.AppKey("token_cache")
DEFINITION_CACHE_KEY: web.AppKey[DefinitionCache] = web.AppKey("definition_cache")
GROUP_COMMIT_KEY: web.AppKey[GroupCommitter] = web.AppKey("group_commit")
METRICS_CACHE_KEY: web.AppKey[MetricsCache] = web.AppKey("metrics_cache")
PROMETHEUS_KEY: web.AppKey[tuple[CollectorRegistry, JobsCollector]] = web.AppKey("prometheus")
QUEUE_SNAPSHOTS_KEY: web.AppKey[QueueSnapshots] = web.AppKey("queue_snapshots")
CONTROL_KEY: web.AppKey[ControlChannel] = web.AppKey("control")
FEED_HUB_KEY: web.AppKey[FeedHub] = web.AppKey("feed_hub")
READ_REPLICA_KEY: web.AppKey[ReadReplica] = web.AppKey("read_replica")

PRINCIPAL_KEY: web.RequestKey[Principal] = web.RequestKey("principal")
BODY_KEY: web.RequestKey[Any] = web.RequestKey("body")
QUERY_KEY: web.RequestKey[dict[str, Any]] = web.RequestKey("query")
READ_POOL_KEY = web.RequestKey("read_pool", asyncpg.Pool)
