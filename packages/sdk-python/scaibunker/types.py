"""Shapes of the API's JSON documents (snake_case, as the API sends them; see docs/API.md)."""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional, TypedDict, Union

BunkerState = Literal["pending", "provisioning", "running", "paused", "snapshotting", "terminated", "failed"]
Lifecycle = Literal["ephemeral", "session", "persistent"]
NetworkProfile = Literal["isolated", "registry", "allowlisted", "unrestricted", "transit"]
ProcessState = Literal["running", "exited", "killed", "timed_out", "lost"]
Signal = Literal[
    "SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGSTOP", "SIGCONT", "SIGWINCH"
]


class BunkerInfo(TypedDict, total=False):
    """A bunker as ``GET /bunkers/{id}`` answers it."""

    id: str
    tenant_id: str
    image: str
    image_sha256: Optional[str]
    lifecycle: Lifecycle
    state: BunkerState
    termination_reason: Optional[str]
    worker_id: Optional[str]
    worker_reachable: bool
    isolation: str
    cpu_millicores: int
    memory_mb: int
    disk_mb: int
    gpu_count: int
    network_profile: NetworkProfile
    network_allowlist: Optional[List[str]]
    bandwidth_mbit: Optional[int]
    interfaces: Optional[List[Dict[str, Any]]]
    idle_timeout_s: int
    max_lifetime_s: Optional[int]
    metadata: Dict[str, str]
    created_at: str
    started_at: Optional[str]
    last_activity_at: Optional[str]
    ended_at: Optional[str]
    snapshot_id: Optional[str]
    passivated: bool
    auto_resume: bool


class ProcessInfo(TypedDict, total=False):
    """A process (an exec) as ``GET …/execs/{exec_id}`` answers it."""

    exec_id: str
    bunker_id: str
    caller: str
    command: Union[str, List[str]]
    tag: Optional[str]
    background: bool
    pty: bool
    pid: Optional[int]
    state: ProcessState
    exit_code: Optional[int]
    signal: Optional[str]
    timed_out: bool
    duration_ms: Optional[int]
    end_reason: Optional[str]
    stdin_open: bool
    next_seq: int
    started_at: str
    finished_at: Optional[str]


class Snapshot(TypedDict, total=False):
    """A snapshot of a bunker's files (``GET /snapshots/{id}``)."""

    id: str
    tenant_id: str
    bunker_id: str
    name: Optional[str]
    source: Literal["user", "fork", "passivation"]
    state: Literal["creating", "ready", "failed"]
    image: str
    isolation: str
    disk_mb: int
    size_bytes: Optional[int]
    sha256: Optional[str]
    error: Optional[str]
    created_by: str
    created_at: str
    ready_at: Optional[str]
    expires_at: Optional[str]


class ImageInfo(TypedDict, total=False):
    id: str
    name: str
    state: str
    scope: str


class WriteResult(TypedDict):
    path: str
    bytes: int


class _ExecRequestRequired(TypedDict):
    command: Union[str, List[str]]


class ExecRequest(_ExecRequestRequired, total=False):
    """The body of ``POST …/exec``."""

    timeout_s: float
    env: Dict[str, str]
    cwd: str
    user: str
    stdin: Union[str, bool]
    stream: bool
    background: bool
    tag: str
    pty: Dict[str, int]
