"""SQL for `rate_limit_starts`, the sliding log of rate-limited starts.

The rated claim (`job_runs.job_claim_rated`) writes one row per start and counts them; this
module only prunes what no window can count any more.
"""

from __future__ import annotations

from jobserver.db.conn import Conn


async def rate_limit_starts_prune(conn: Conn, batch: int = 10_000) -> int:
    """Delete up to `batch` starts whose period ended (`expires_at` passed); the count."""
    result = await conn.execute(
        """
        DELETE FROM rate_limit_starts s USING (
            SELECT ctid FROM rate_limit_starts WHERE expires_at < now()
            ORDER BY expires_at LIMIT $1) v
        WHERE s.ctid = v.ctid
        """,
        batch,
    )
    return int(result.split()[-1])
