"""`ssh.command@1`: run one command on a host over SSH with a stored credential; record its
output, exit code and duration.

Params:
- `host` (a name or an address), `port` (22);
- `username`: the login (default: the credential's);
- `command`: what the login shell runs (`sh -c`-style, as `ssh host 'command'` would);
- `workingDirectory`: `cd` there first (the attempt fails if it cannot);
- `env`: variables exported for the command (names `[A-Za-z_][A-Za-z0-9_]*`, string values);
  set by the command line itself (`export NAME='value'`), since servers drop most SSH `env`
  requests (OpenSSH's AcceptEnv);
- `timeout`: seconds for the whole attempt, connecting included (default 300, at most a day);
- `credential`: the name of a stored `ssh` credential (`/v1/credentials`). Required: a secret
  never travels in params. Naming one needs manage_jobs, and a name that is not stored is a
  422 naming `credential` at submission; one deleted since fails the attempt for good.

Templating (`jobserver.rendering`): `command`, `workingDirectory` and `env` values may hold
`{{paths}}` (sources, `params`, `job`, `schedule`) and `{{$macros}}`, rendered before every
attempt; values are shell-quoted where the wrapper sets them (`env`, `workingDirectory`),
while `command` is the job's own shell text and is run as rendered.

Security: the host goes through the outbound policy (`resolve_and_check`: a loopback or
private address is refused unless allowlisted, `outbound_denied`, permanent) and the
connection goes to the checked address. Only the credential's pinned host keys, and those
SSH_KNOWN_HOSTS lists for the host, are trusted: any other key is refused
(`host_key_mismatch`, permanent, naming the fingerprint the server offered); there is no
trust on first use. See `jobserver.outbound.ssh` for what else is never used.

Outcome: exit code 0 succeeds with the record as the result. A non-zero exit, an end by
signal or a timeout fails the attempt (retried like any failure; the error gives the exit code
and the tail of stderr); the record is then a `ssh_command` event, written first. On a timeout
or a cancel the remote process group gets TERM, then KILL, and the channel is closed. An auth
refusal (`ssh_auth_failed`), an unknown host key, a refused target and a missing or unreadable
credential fail at once, without retry; a connection refused, reset or timed out is retried.

The record: `host`, `port`, `username`, `address` (the one connected to), `hostKey` (the
fingerprint it showed), `command`, `workingDirectory`, `exitCode` (null after a signal),
`exitSignal`, `timedOut`, `stdout`/`stderr` (UTF-8, invalid bytes replaced), their
`stdoutBytes`/`stderrBytes` and `stdoutTruncated`/`stderrTruncated` (each stream keeps at most
SSH_OUTPUT_CAP bytes and a quarter of MAX_RESULT_BYTES), and `durationMs`. The credential's
secrets are scrubbed from whatever is recorded; they never appear in params, answers, events,
errors or logs.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

from jobserver.credentials.models import CREDENTIAL_NAME, Credential
from jobserver.outbound.redact import MIN_SCRUBBED_CHARS, scrub
from jobserver.registry import ParamsProblem, PermanentError, definition
from jobserver.rendering import check_submission
from jobserver.rendering.job_info import render_job_params

if TYPE_CHECKING:
    from jobserver.outbound.ssh import CommandResult, SshTarget

TEMPLATED = ("command", "workingDirectory", "env")
MAX_TIMEOUT = 86400.0
ERROR_TAIL_CHARS = 500  # of stderr quoted in an error
SHOWN_COMMAND_CHARS = 120  # of the command quoted in an error or a log line
ENV_NAME = "^[A-Za-z_][A-Za-z0-9_]{0,127}$"
NO_CONTROL = "^[^\\x00-\\x1f\\x7f]+$"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["host", "command", "credential"],
    "properties": {
        "host": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^\\s/@]+$"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 22},
        "username": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": NO_CONTROL},
        "command": {"type": "string", "minLength": 1, "maxLength": 65536},
        "workingDirectory": {"type": "string", "minLength": 1, "maxLength": 4096},
        "env": {
            "type": "object",
            "propertyNames": {"pattern": ENV_NAME},
            "additionalProperties": {"type": "string", "maxLength": 65536},
            "maxProperties": 100,
        },
        "timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": MAX_TIMEOUT,
            "default": 300,
        },
        "credential": CREDENTIAL_NAME.schema(),
        "useSources": {"type": "boolean"},
        "sources": {"type": "object"},
    },
    "additionalProperties": False,
}


class CommandFailed(RuntimeError):
    """The command exited non-zero or by a signal: a failed attempt, retried."""


class CommandTimedOut(RuntimeError):
    """The attempt ran past `timeout`; the remote command was stopped: retried."""


class CommandStopped(RuntimeError):
    """The job was cancelled or handed back while the command ran (the stop reason decides)."""


def check_params(params: Any) -> list[ParamsProblem]:
    """What submission can know of the templates (the schema checked the rest)."""
    if not isinstance(params, dict):
        return []
    return check_submission(params, TEMPLATED)


def _text(value: Any, field: str, *, allow_empty: bool = False) -> str:
    """A rendered value as the text it stands for; NUL (no shell can take it) fails."""
    text = value if isinstance(value, str) else json.dumps(value)
    if value is None or "\x00" in text or (not text and not allow_empty):
        raise PermanentError(f"{field}: rendered to a value a command cannot hold", "bad_param")
    return text


async def _rendered(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    rendered = await render_job_params(ctx, params, TEMPLATED)
    out = {**rendered, "command": _text(rendered["command"], "command")}
    if rendered.get("workingDirectory") is not None:
        out["workingDirectory"] = _text(rendered["workingDirectory"], "workingDirectory")
    env = rendered.get("env") or {}
    if not isinstance(env, dict):
        raise PermanentError("env: rendered to a non-object", "bad_param")
    out["env"] = {k: _text(v, f"env.{k}", allow_empty=True) for k, v in env.items()}
    return out


# The first lines of every command line sent (POSIX sh, run by the login shell). The channel's
# stdin stays open while the job holds it (nothing is ever written to it); a watchdog reads it
# and, when it ends (the channel was closed: a timeout, a cancel, the worker gone), TERMs and
# then KILLs its process group: the session's, which sshd made for it. That is what stops the
# command where the server ignores SSH signal requests (OpenSSH before 7.9, and root logins
# before OpenSSH 10.0, whose sessions run without privilege separation). The job's command runs
# in a subshell with /dev/null as stdin; when it ends, the watchdog is stopped first, so what
# the command left running on purpose (`nohup ... &`) is left alone.
WATCHDOG = (
    "exec 3<&0 </dev/null",
    "{ cat <&3 >/dev/null 2>&1; trap '' TERM; kill -TERM 0; sleep 1; kill -KILL 0; }"
    " >/dev/null 2>&1 &",
    "jobserver_watchdog=$!",
    "exec 3<&-",
)
EPILOGUE = (
    "jobserver_status=$?",
    'kill "$jobserver_watchdog" 2>/dev/null',
    'exit "$jobserver_status"',
)


def remote_command(command: str, working_directory: str | None, env: dict[str, str]) -> str:
    """The command line sent: the watchdog, the exports, then a subshell that `cd`s (quoted)
    and runs the job's own command; its exit status is the command's."""
    lines = list(WATCHDOG)
    if env:
        lines.append("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()))
    lines.append("(")
    if working_directory:
        lines.append(f"cd -- {shlex.quote(working_directory)} || exit 1")
    lines += [command, ")", *EPILOGUE]
    return "\n".join(lines)


def _short(command: str) -> str:
    line = " ".join(command.split())
    return line if len(line) <= SHOWN_COMMAND_CHARS else line[: SHOWN_COMMAND_CHARS - 1] + "…"


def _record(
    target: SshTarget, p: dict[str, Any], result: CommandResult, secrets: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "host": target.host,
        "port": target.port,
        "username": target.username,
        "address": result.address,
        "hostKey": result.host_key,
        "command": p["command"],
        "workingDirectory": p.get("workingDirectory"),
        "exitCode": result.exit_code,
        "exitSignal": result.exit_signal,
        "timedOut": result.timed_out,
    }
    for name, stream in (("stdout", result.stdout), ("stderr", result.stderr)):
        out[name] = scrub(stream.text(), secrets)
        out[f"{name}Bytes"] = stream.total
        out[f"{name}Truncated"] = stream.truncated
    out["durationMs"] = result.duration_ms
    return out


def _fit(record: dict[str, Any], limit: int) -> dict[str, Any]:
    """`record` cut until it can be stored: output that escapes badly in JSON (control
    characters take 6 bytes each) could otherwise pass MAX_RESULT_BYTES."""
    from jobserver.codec import NotStorable, dumps_storable

    for _ in range(12):
        try:
            dumps_storable(record, limit, "result")
            return record
        except NotStorable:
            for name in ("stdout", "stderr"):
                record[name] = record[name][: len(record[name]) // 2]
                record[f"{name}Truncated"] = True
    record["stdout"] = record["stderr"] = ""
    return record


def _failure(
    target: SshTarget, p: dict[str, Any], result: CommandResult, secrets: list[str]
) -> Exception:
    where = f"{_short(p['command'])!r} on {target.shown}"
    tail = scrub(result.stderr.decode(result.stderr.tail), secrets).strip()
    if len(tail) > ERROR_TAIL_CHARS:
        tail = "…" + tail[-ERROR_TAIL_CHARS:]
    said = f": {tail}" if tail else ""
    if result.timed_out:
        return CommandTimedOut(
            f"timed out after {p.get('timeout', 300):g} s: {where} was stopped (TERM, then KILL"
            f" to its process group){said}"
        )
    if result.exit_signal is not None:
        return CommandFailed(f"ended by signal {result.exit_signal}: {where}{said}")
    if result.exit_code is None:
        return CommandFailed(f"ended without an exit status: {where}{said}")
    return CommandFailed(f"exit code {result.exit_code} from {where}{said}")


def _target(p: dict[str, Any], cred: Credential, known_hosts: str | None) -> SshTarget:
    from jobserver.outbound.ssh import SshTarget

    return SshTarget(
        host=p["host"],
        port=int(p.get("port", 22)),
        username=p.get("username") or cred.username,
        host_keys=cred.host_keys,
        known_hosts=known_hosts,
    )


@definition(
    "ssh.command",
    1,
    params_schema=SCHEMA,
    default_max_attempts=3,
    timeout_seconds=MAX_TIMEOUT + 60,
    outbound=True,
    check_params=check_params,
    templated=TEMPLATED,
    credentials={"credential": "ssh"},
)
async def ssh_command(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Run a command over SSH with a stored credential; record its output and exit code."""
    from jobserver.credentials import load_credential
    from jobserver.outbound import ssh  # asyncssh on first use: it costs a worker's start

    p = await _rendered(ctx, params)
    cred = await load_credential(ctx.pool, params["credential"], "ssh")
    settings = ssh.current_settings()
    target = _target(p, cred, settings.known_hosts)
    auth = ssh.SshAuth(
        private_key=cred.private_key, passphrase=cred.passphrase, password=cred.password
    )
    secrets = [v for v in cred.secrets() if len(v) >= MIN_SCRUBBED_CHARS]
    limit = ctx.host.limits.max_result_bytes
    try:
        result = await ssh.run_command(
            target,
            auth,
            remote_command(p["command"], p.get("workingDirectory"), p["env"]),
            seconds=float(p.get("timeout", 300)),
            output_cap=max(1, min(settings.output_cap, limit // 4)),
            stop=ctx.cancelled,
        )
    except (PermanentError, ssh.ConnectFailed) as e:
        ctx.logger.warning("ssh %s failed: %s", target.shown, scrub(str(e), secrets))
        raise
    record = _fit(_record(target, p, result, secrets), limit - 512)  # room for the event
    ctx.logger.info(
        "ssh %s %r: exit %s in %.0f ms",
        target.shown,
        _short(p["command"]),
        result.exit_signal or result.exit_code,
        result.duration_ms,
    )
    if result.stopped:
        raise CommandStopped(f"{_short(p['command'])!r} on {target.shown} was stopped")
    if result.exit_code == 0 and not result.timed_out:
        return record
    await ctx.emit_event("ssh_command", {"attempt": ctx.attempt, **record})
    raise _failure(target, p, result, secrets)
