"""Configuration: the inventory file and runtime settings.

The inventory (environments, stacks, services, VMs, GPU hosts, users, channels) is a
YAML file validated by pydantic models at start-up.  Every error names the file, the
line and the key, and says how to fix it, because a bot that starts with a half-valid
inventory is a bot that acts on the wrong machine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.redact import KEY_NAMES
from infra.wording import join_choices

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "chatops.yaml"
COMPOSE_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


class ConfigError(Exception):
    """A configuration problem, with file, line, key and fix in its message."""


class Role(StrEnum):
    viewer = "viewer"
    operator = "operator"
    approver = "approver"
    admin = "admin"


class Notice(StrEnum):
    """What the bot posts to an environment's ops channel besides the thread that asked."""

    outcomes = "outcomes"    # every change's result (succeeded, failed, interrupted, denied, expired)
    approvals = "approvals"  # every approval card
    freezes = "freezes"      # lock / unlock of an environment
    alerts = "alerts"        # Alertmanager notifications
    schedules = "schedules"  # scheduled runs that were missed or refused


class ApprovalTime(StrEnum):
    """When a scheduled change on a protected target is approved."""

    at_schedule = "at_schedule"  # once, when it is scheduled (bound to the plan hash, ends with it)
    at_run = "at_run"            # at every run, like a change asked for then


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Tags of the two spellings some keys accept; they are dropped from error locations.
_SHORT, _LONG = "(short form)", "(long form)"


def _spelling(value: Any) -> str:
    return _LONG if isinstance(value, dict) else _SHORT


class DockerTLS(_Strict):
    ca: str | None = None
    cert: str | None = None
    key: str | None = None


class DockerTarget(_Strict):
    host: str | None = None
    tls: DockerTLS | None = None

    @field_validator("host")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v and not re.match(r"^(unix|tcp|ssh|npipe)://", v):
            raise ValueError("docker host must start with unix://, tcp:// or ssh://")
        return v


class PortainerTarget(_Strict):
    url: str
    endpoint_id: int
    api_key: SecretStr | None = None
    verify_ssl: bool = True
    ca_bundle: str | None = None


class NotifyTarget(_Strict):
    channel: str = Field(min_length=1)
    events: list[Notice] | None = None  # None: the environment's `events`


Target = Annotated[Annotated[str, Tag(_SHORT)] | Annotated[NotifyTarget, Tag(_LONG)], Discriminator(_spelling)]


class Notify(_Strict):
    """An environment's ops channel per platform: `{slack: C0OPS, discord: "1234"}`."""

    slack: Target | None = None
    discord: Target | None = None
    events: list[Notice] = Field(default_factory=lambda: list(Notice))

    def targets(self) -> dict[str, NotifyTarget]:
        """platform → channel (bare id, any `platform:` prefix removed) and the events it takes."""
        out: dict[str, NotifyTarget] = {}
        for platform in ("slack", "discord"):
            value = getattr(self, platform)
            if value is None:
                continue
            target = value if isinstance(value, NotifyTarget) else NotifyTarget(channel=value)
            channel = target.channel.removeprefix(f"{platform}:")
            out[platform] = NotifyTarget(channel=channel, events=target.events or self.events)
        return out


class Environment(_Strict):
    description: str = ""
    aliases: list[str] = Field(default_factory=list)
    protected: bool = False
    docker: DockerTarget | None = None
    portainer: PortainerTarget | None = None
    vm: str | None = None
    checkpoint_before_deploy: bool = False
    # Compose project = prefix + stack, so several environments can share one engine.
    project_prefix: str = Field("", pattern=r"^[a-z0-9][a-z0-9_-]*$|^$")
    # How long a deploy waits for its services to be running/healthy.
    deploy_timeout_s: float = Field(300.0, gt=0, le=3600)
    # The ops channel(s) for outcomes, approvals, freezes and alerts (docs/notifications.md).
    notify: Notify | None = None
    # Carry files a stack mounts from its folder inside the Compose model (docs/docker.md):
    # auto = for engines the bot shares no files with (remote, Portainer) and copies made per request.
    inline_files: Literal["auto", "always", "never"] = "auto"


class Stack(_Strict):
    path: str
    description: str = ""
    aliases: list[str] = Field(default_factory=list)
    runs_on: list[str] = Field(default_factory=list)


class Service(_Strict):
    aliases: list[str] = Field(default_factory=list)


class VM(_Strict):
    node: str = "phoenix"
    kind: Literal["qemu", "lxc"] = "qemu"
    vmid: int = Field(ge=100, le=999_999_999)  # Proxmox's own range for guest ids
    aliases: list[str] = Field(default_factory=list)
    protected: bool | None = None
    description: str = ""


class Proxmox(_Strict):
    host: str | None = None
    token_id: str | None = None
    token_secret: SecretStr | None = None
    verify_ssl: bool = True
    ca_bundle: str | None = None
    timeout_s: float = Field(30.0, gt=0, le=600)
    task_timeout_s: float = Field(600.0, gt=0, le=86400)
    snapshot_retention: int = Field(5, ge=0)  # automatic checkpoints kept per guest; 0 keeps all
    poll_s: float = Field(1.0, gt=0)  # how often a running task's status is read

    @field_validator("token_id")
    @classmethod
    def _token_id(cls, v: str | None) -> str | None:
        if v and not re.match(r"^[^@!\s]+@[^@!\s]+![A-Za-z][A-Za-z0-9._-]*$", v.strip()):
            raise ValueError("token_id must look like user@realm!tokenid (e.g. chatops@pve!bot)")
        return v.strip() if v else v


class GpuHost(_Strict):
    source: Literal["nvml", "nvidia-smi", "prometheus"] | None = None
    prometheus_url: str | None = None
    ssh: str | None = None
    vllm_metrics_url: str | None = None
    gpus: int | None = Field(None, ge=0, le=64)
    temp_warn_c: float = 83.0
    memory_warn_pct: float = Field(95.0, gt=0, le=100)
    # Label matchers added to every Prometheus query, e.g. 'Hostname="phoenix"' (one server, many hosts).
    prometheus_selector: str | None = None
    timeout_s: float = Field(10.0, gt=0, le=120)

    @field_validator("ssh")
    @classmethod
    def _ssh_target(cls, v: str | None) -> str | None:
        if v and (v.startswith("-") or any(c.isspace() for c in v)):
            raise ValueError("ssh must be a plain [user@]host, without spaces or options")
        return v


class LLM(_Strict):
    base_url: str | None = None
    model: str | None = None
    api_key: SecretStr | None = None
    timeout_s: float = Field(20.0, gt=0, le=600)
    max_retries: int = Field(1, ge=0, le=10)
    # The grammar's complete plan is used without asking the model when at least this sure.
    grammar_confidence: float = Field(0.9, ge=0.0, le=1.0)
    # Circuit breaker: after this many failed requests in a row, stop asking for reset_s seconds.
    breaker_failures: int = Field(3, ge=1)
    breaker_reset_s: float = Field(30.0, gt=0)
    max_tokens: int = Field(256, ge=16)


class Channel(_Strict):
    default_env: str | None = None
    # What the channel accepts; None accepts everything (docs/configuration.md, channels).
    commands: list[str] | None = None
    envs: list[str] | None = None


class Grant(_Strict):
    """Roles, optionally only on some environments (`{roles: [operator], envs: [rumpledev]}`)."""

    roles: list[Role]
    envs: list[str] | None = None  # None: every environment


UserRoles = Annotated[Annotated[list[Role], Tag(_SHORT)] | Annotated[Grant, Tag(_LONG)],
                      Discriminator(_spelling)]


class ApiToken(_Strict):
    """An automation identity `api:NAME`: the token's hash (never the token) and its roles."""

    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    roles: list[Role] = Field(default_factory=list)
    envs: list[str] | None = None
    description: str = ""


class Schedules(_Strict):
    """Scheduled requests (docs/schedules.md)."""

    timezone: str = "UTC"
    approval: ApprovalTime = ApprovalTime.at_schedule
    # A run found more than this late (the bot was down at its time) is reported, not run.
    grace_minutes: float = Field(5.0, gt=0, le=24 * 60)
    # How often each replica looks for due schedules.
    tick_seconds: float = Field(15.0, gt=0, le=3600)
    max_per_user: int = Field(50, ge=1)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{v}' (use an IANA name such as UTC or Europe/Berlin)") from None
        return v


class Alerts(_Strict):
    """The Alertmanager receiver: which labels name the environment and the service."""

    env_labels: list[str] = Field(default_factory=lambda: ["env", "environment"])
    service_labels: list[str] = Field(default_factory=lambda: ["service", "compose_service"])
    stack_labels: list[str] = Field(default_factory=lambda: ["stack", "compose_project"])
    max_alerts_shown: int = Field(10, ge=1, le=50)


class Approvals(_Strict):
    expiry_minutes: int = Field(30, ge=1, le=7 * 24 * 60)


class Limits(_Strict):
    max_text_chars: int = Field(2000, ge=16)
    max_log_lines: int = Field(1000, ge=1)
    max_audit_limit: int = Field(500, ge=1)
    # Requests each chat adapter works on at once; beyond that it answers "busy" and runs nothing.
    max_in_flight: int = Field(32, ge=1, le=10000)


class RateLimits(_Strict):
    """Changing commands per rolling hour (counted in the audit log, so across replicas)."""

    per_user_per_hour: int | None = Field(None, ge=1)
    per_channel_per_hour: int | None = Field(None, ge=1)
    exempt_roles: list[Role] = Field(default_factory=list)


class AuditRetention(_Strict):
    """How long finished requests stay in the database before `chatops audit prune` archives them."""

    retention_days: int | None = Field(None, ge=1)
    archive_dir: str | None = None


class Api(_Strict):
    """The HTTP API and webhook receiver (`chatops serve api`, docs/api.md)."""

    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_alert_body_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # The longest a caller may ask POST /api/v1/requests to wait for a change's outcome (`wait`).
    max_wait_s: float = Field(300.0, ge=0, le=3600)
    # A body that has not arrived whole by then is answered 408 (a client that trickles it holds a connection).
    body_timeout_s: float = Field(30.0, gt=0, le=600)


class Inventory(_Strict):
    """The validated user-facing configuration (spec section 7)."""

    environments: dict[str, Environment]
    stacks: dict[str, Stack] = Field(default_factory=dict)
    services: dict[str, Service] = Field(default_factory=dict)
    vms: dict[str, VM] = Field(default_factory=dict)
    proxmox: Proxmox = Field(default_factory=Proxmox)
    gpu_hosts: dict[str, GpuHost] = Field(default_factory=dict)
    llm: LLM = Field(default_factory=LLM)
    users: dict[str, UserRoles] = Field(default_factory=dict)
    default_roles: list[Role] = Field(default_factory=lambda: [Role.viewer])
    channels: dict[str, Channel] = Field(default_factory=dict)
    api_tokens: dict[str, ApiToken] = Field(default_factory=dict)
    schedules: Schedules = Field(default_factory=Schedules)
    alerts: Alerts = Field(default_factory=Alerts)
    api: Api = Field(default_factory=Api)
    approvals: Approvals = Field(default_factory=Approvals)
    limits: Limits = Field(default_factory=Limits)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    audit: AuditRetention = Field(default_factory=AuditRetention)
    # Team command modules (docs/plugins.md); also every entry point of the group `chatops.commands`.
    plugins: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    """Runtime settings from the environment (spec section 6)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    def __init__(self, **values: Any) -> None:
        """A variable that does not parse (`CHATOPS_AUDIT_UNKEYED=banana`) is a ConfigError naming it, which
        every command reports as a configuration error, not pydantic's traceback."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            def said(e: Any) -> str:  # the value, unless the variable's name says it is a secret
                name = ".".join(str(p) for p in e["loc"]).upper()
                return "" if any(k in name for k in KEY_NAMES) else f" (it is '{str(e.get('input'))[:40]}')"

            raise ConfigError("\n".join(
                f"environment variable {'.'.join(str(p) for p in e['loc'])}: {e['msg']}{said(e)}. "
                f"Fix: {_FIXES.get(e['type'], 'correct the value')}." for e in exc.errors())) from None

    database_url: str | None = Field(None, alias="DATABASE_URL")
    chatops_config: str | None = Field(None, alias="CHATOPS_CONFIG")
    llm_base_url: str | None = Field(None, alias="LLM_BASE_URL")
    llm_model: str | None = Field(None, alias="LLM_MODEL")
    llm_api_key: SecretStr | None = Field(None, alias="LLM_API_KEY")
    slack_bot_token: SecretStr | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_app_token: SecretStr | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_api_url: str | None = Field(None, alias="SLACK_API_URL")
    discord_token: SecretStr | None = Field(None, alias="DISCORD_TOKEN")
    # One guild id, or several separated by commas: the servers the bot serves (others are ignored).
    discord_guild_id: str | None = Field(None, alias="DISCORD_GUILD_ID")
    # HMAC key(s) of the audit chain (`chatops audit keygen`); NEW,OLD while changing keys.
    chatops_audit_key: SecretStr | None = Field(None, alias="CHATOPS_AUDIT_KEY")
    # `chatops serve` refuses to run on PostgreSQL without CHATOPS_AUDIT_KEY unless this is set.
    chatops_audit_unkeyed: bool = Field(False, alias="CHATOPS_AUDIT_UNKEYED")


# ---------------------------------------------------------------------------
# Loading with line numbers

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: str) -> str | None:
    """`${VAR}` / `${VAR:-default}`; a whole-value reference to an unset var becomes None."""
    whole = _ENV_REF.fullmatch(value)
    if whole and whole.group(1) not in os.environ and whole.group(2) is None:
        return None
    return _ENV_REF.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)


# A config file is a few kilobytes; these bound what a hostile or broken one can cost to read. YAML's
# aliases repeat a subtree without repeating its text, so 400 bytes can stand for billions of values
# ("billion laughs"): the walks below count values as they expand them and stop at the bound.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_VALUES = 100_000


class _DuplicateKey(yaml.constructor.ConstructorError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error: YAML lets the
    last one win silently, so a second `rumpleprod:` or `"slack:U1":` entry would quietly replace
    the first one's protection or roles."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    raise _DuplicateKey(
                        None, None, f"the key '{key_node.value}' is given twice (lines {seen[key_node.value]} "
                        f"and {line}); YAML would keep only the last", key_node.start_mark)
                seen[key_node.value] = line
        return super().construct_mapping(node, deep=deep)


class _Walk:
    """One bounded walk over a loaded or composed document: refuses a cycle (`a: &a [*a]`) and more
    than MAX_CONFIG_VALUES values in all, each as a ConfigError that says which."""

    def __init__(self, file: Path) -> None:
        self.file, self.count, self.path_ids = file, 0, set[int]()

    @contextmanager
    def into(self, item: Any) -> Iterator[None]:
        """Count `item` and hold it on the path while its contents are walked."""
        self.count += 1
        if self.count > MAX_CONFIG_VALUES:
            raise ConfigError(f"{self.file}: the config expands to more than {MAX_CONFIG_VALUES:,} values (YAML "
                              "aliases repeating a subtree?). Fix: write the values out, without nested aliases.")
        if id(item) in self.path_ids:
            raise ConfigError(f"{self.file}: a YAML alias refers to a value that contains it (a cycle). "
                              "Fix: remove the alias.")
        self.path_ids.add(id(item))
        try:
            yield
        finally:
            self.path_ids.discard(id(item))


def _walk_expand(data: Any, unset: dict[str, str], walk: _Walk, at: str = "") -> Any:
    """Expand `${VAR}` everywhere; `unset` collects key → VAR for whole-value refs to unset vars."""
    with walk.into(data):
        if isinstance(data, dict):
            return {k: _walk_expand(v, unset, walk, f"{at}.{k}" if at else str(k)) for k, v in data.items()}
        if isinstance(data, list):
            return [_walk_expand(v, unset, walk, f"{at}.{i}") for i, v in enumerate(data)]
    if isinstance(data, str):
        value = _expand_env(data)
        whole = _ENV_REF.fullmatch(data)
        if value is None and whole:
            unset[at] = whole.group(1)
        return value
    return data


def _line_map(text: str, file: Path) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML document to its 1-based line number."""
    lines: dict[tuple[str, ...], int] = {}
    bound = _Walk(file)

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        with bound.into(node):
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    sub = (*path, str(key.value))
                    lines[sub] = key.start_mark.line + 1
                    walk(value, sub)
            elif isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    lines[(*path, str(i))] = item.start_mark.line + 1
                    walk(item, (*path, str(i)))

    root = yaml.compose(text, Loader=_StrictLoader)
    if root is not None:
        walk(root, ())
    return lines


def _nearest_line(lines: dict[tuple[str, ...], int], path: tuple[str, ...]) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


_FIXES = {
    "extra_forbidden": "remove it or correct its spelling",
    "missing": "add it",
    "bool_parsing": "use true or false",
    "int_parsing": "use a whole number",
    "literal_error": "use one of the allowed values",
    "enum": "use one of the allowed values",
}


@dataclass(frozen=True)
class Problem:
    path: tuple[str, ...]
    message: str
    fix: str

    def render(self, file: Path, lines: dict[tuple[str, ...], int]) -> str:
        line = _nearest_line(lines, self.path)
        where = f"{file}:{line}" if line else str(file)
        key = ".".join(self.path) or "(top level)"
        return f"{where}: {key}: {self.message}. Fix: {self.fix}."


def _model_in(ann: Any) -> Any:
    """The pydantic model inside an annotation (`dict[str, X]`, `X | None`, `Annotated[…]`)."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in reversed(get_args(ann)):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _allowed_keys(loc: tuple[str, ...]) -> str:
    model: Any = Inventory
    for part in loc[:-1]:
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return ""
        if part in fields:
            model = _model_in(fields[part].annotation)
        # dict values: the key itself is a free name; stay on the value model
    fields = getattr(model, "model_fields", None)
    return ", ".join(sorted(fields)) if fields else ""


def _rendered(problems: list[Problem], file: Path, lines: dict[tuple[str, ...], int]) -> str:
    """Every problem, one a line, in the order of the file (so the first to fix comes first)."""
    ordered = sorted(problems, key=lambda p: _nearest_line(lines, p.path) or 0)
    return "\n".join(p.render(file, lines) for p in ordered)


def _pydantic_problems(err: ValidationError) -> list[Problem]:
    out = []
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"] if p not in (_SHORT, _LONG))
        fix = _FIXES.get(e["type"], "correct the value")
        if e["type"] in ("enum", "literal_error") and (e.get("ctx") or {}).get("expected"):
            fix = f"use one of: {e['ctx']['expected']}"  # the values of this key, not of another enum
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc)
            if allowed:
                fix += f" (allowed keys here: {allowed})"
            out.append(Problem(loc, "unknown key", fix))
        else:
            out.append(Problem(loc, e["msg"], fix))
    return out


def _platform_id_problem(key: str, platforms: tuple[str, ...], what: str, example: str) -> tuple[str, str] | None:
    """(problem, fix) when a `users`/`channels` key is not PLATFORM:ID with a platform of `platforms`."""
    platform, _, name = key.partition(":")
    if platform in platforms and name.strip():
        return None
    problem = f"{what} ids are a platform and an id, such as '{platforms[0]}:{example}'" + (
        f" (or '{CONSOLE_CHANNEL}', the terminal)" if what == "channel" else "")
    if platform.lower() in platforms and name.strip():
        return problem, f"write the platform in lower case: '{platform.lower()}:{name}'"
    if not name.strip() and ":" in key:
        return problem, f"write the id after '{platform}:'"
    starts = join_choices([p + ":" for p in platforms])
    return problem, f"start it with one of {starts}: " + join_choices([f"'{p}:{name or key}'" for p in platforms])


def _semantic_problems(inv: Inventory, base: Path) -> list[Problem]:
    """Cross-references the schema cannot express: aliases, compose files, names."""
    problems: list[Problem] = []

    def known_envs(path: tuple[str, ...], names: list[str] | None) -> None:
        for i, env_name in enumerate(names or []):
            if env_name not in inv.environments:
                problems.append(Problem((*path, str(i)), f"unknown environment '{env_name}'",
                                        "use an environment name from 'environments' (not an alias)"))

    def unique(section: str, items: dict[str, Any]) -> None:
        seen: dict[str, str] = {}
        for name, item in items.items():
            for i, word in enumerate([name, *item.aliases]):
                low = word.strip().lower()
                path = (section, name) if i == 0 else (section, name, "aliases", str(i - 1))
                if low in seen and seen[low] != name:
                    problems.append(Problem(
                        path, f"'{word}' is already a name or alias of '{seen[low]}'",
                        "give each name and alias to one entry only"))
                seen[low] = name

    unique("environments", inv.environments)
    unique("stacks", inv.stacks)
    unique("vms", inv.vms)
    guests: dict[tuple[str, int], str] = {}
    for name, vm in inv.vms.items():
        other = guests.setdefault((vm.node, vm.vmid), name)
        if other != name:  # a snapshot of one would be taken, or restored, on the other
            problems.append(Problem(("vms", name, "vmid"), f"vmid {vm.vmid} on {vm.node} is also '{other}'",
                                    "give each guest its own Proxmox id"))
    unique("services", inv.services)
    for name, stack in inv.stacks.items():
        folder = (base / stack.path) if not Path(stack.path).is_absolute() else Path(stack.path)
        if not any((folder / f).is_file() for f in COMPOSE_FILE_NAMES):
            problems.append(Problem(
                ("stacks", name, "path"), f"no compose file in {folder}",
                f"create {folder}/compose.yaml or point 'path' at the stack's folder"))
        for env_name in stack.runs_on:
            if env_name not in inv.environments:
                problems.append(Problem(("stacks", name, "runs_on"), f"unknown environment '{env_name}'",
                                        "use an environment name from 'environments'"))
    for name, env in inv.environments.items():
        if env.vm and env.vm not in inv.vms:
            problems.append(Problem(("environments", name, "vm"), f"unknown VM '{env.vm}'",
                                    "use a VM name from 'vms' or remove the key"))
        if env.docker and env.portainer:
            problems.append(Problem(("environments", name), "both 'docker' and 'portainer' are set",
                                    "keep one way to reach the environment"))
    for chan, cfg in inv.channels.items():
        if cfg.default_env and cfg.default_env not in inv.environments:
            problems.append(Problem(("channels", chan, "default_env"),
                                    f"unknown environment '{cfg.default_env}'",
                                    "use an environment name from 'environments'"))
    for user, entry in inv.users.items():
        if user.startswith("api:"):
            problems.append(Problem(("users", user), "automation identities are not users",
                                    "give the token roles under 'api_tokens' (chatops api token create NAME)"))
        elif bad := _platform_id_problem(user, PERSON_PLATFORMS, "user", "U0123"):
            # (a user that matches no identity would never get the roles written for them)
            problems.append(Problem(("users", user), *bad))
        if isinstance(entry, Grant):
            known_envs(("users", user, "envs"), entry.envs)
    for chan in inv.channels:
        if chan != CONSOLE_CHANNEL and (bad := _platform_id_problem(chan, CHANNEL_PLATFORMS, "channel", "C0OPS")):
            # a channel's rules apply to requests from exactly this id: one that matches none restricts nothing
            problems.append(Problem(("channels", chan), f"{bad[0]}; as written it matches no channel, so its "
                                    "rules would never apply", bad[1]))
    for chan, cfg in inv.channels.items():
        known_envs(("channels", chan, "envs"), cfg.envs)
        if cfg.default_env and cfg.envs is not None and cfg.default_env not in cfg.envs:
            problems.append(Problem(("channels", chan, "default_env"),
                                    f"'{cfg.default_env}' is not one of the channel's envs",
                                    "add it to 'envs' or pick a default among them"))
    for name, token in inv.api_tokens.items():
        bad_name = token_name_problem(name)
        if bad_name:
            problems.append(Problem(("api_tokens", name), bad_name, "rename it (the identity is api:NAME)"))
        known_envs(("api_tokens", name, "envs"), token.envs)
    return problems


# The platforms whose people the config names under `users`, and whose channels under `channels`.
PERSON_PLATFORMS = ("slack", "discord", "console")
CHANNEL_PLATFORMS = ("slack", "discord")
CONSOLE_CHANNEL = "console"  # the terminal's one channel (bot/adapters/console.py), a key of its own

# The identity of an API caller without a valid token (its refusals are audited as api:unauthenticated).
UNAUTHENTICATED_TOKEN = "unauthenticated"


def token_name_problem(name: str) -> str | None:
    """What is wrong with an automation token's name (its identity is api:NAME), or None."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name):
        return "token names are 1 to 32 lower-case letters, digits, '-' or '_'"
    if name == UNAUTHENTICATED_TOKEN:
        return (f"'{UNAUTHENTICATED_TOKEN}' is reserved: api:{UNAUTHENTICATED_TOKEN} is how the audit log names "
                "callers without a valid token")
    return None


def expand(roles: list[Role]) -> frozenset[Role]:
    """Roles with the ones they imply: admin → all; operator or approver → viewer."""
    expanded = set(roles)
    if Role.admin in expanded:
        expanded |= {Role.operator, Role.approver, Role.viewer}
    if expanded & {Role.operator, Role.approver}:
        expanded.add(Role.viewer)
    return frozenset(expanded)
class StackServices(Mapping[str, tuple[str, ...]]):
    """Stack name -> its services, read lazily: loading a config with many stacks reads none of
    their files; a command that needs a stack's services reads that file (cached by size and time)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._cache: dict[str, tuple[tuple[str, int, int], tuple[str, ...]]] = {}

    def __getitem__(self, stack: str) -> tuple[str, ...]:
        if stack not in self._config.inventory.stacks:
            raise KeyError(stack)
        try:
            file = self._config.compose_file(stack)
            st = file.stat()
        except (OSError, ConfigError):
            return ()
        stamp = (str(file), st.st_size, st.st_mtime_ns)
        hit = self._cache.get(stack)
        if hit and hit[0] == stamp:
            return hit[1]
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except (OSError, yaml.YAMLError):
            data = {}
        services = data.get("services") if isinstance(data, dict) else None
        names = tuple(services.keys()) if isinstance(services, dict) else ()
        self._cache[stack] = (stamp, names)
        return names

    def __iter__(self) -> Iterator[str]:
        return iter(self._config.inventory.stacks)

    def __len__(self) -> int:
        return len(self._config.inventory.stacks)


@dataclass(frozen=True)
class Config:
    """The loaded inventory plus where it came from (for messages and relative paths)."""

    inventory: Inventory
    path: Path
    settings: Settings
    # Keys whose whole value was a `${VAR}` reference to an unset variable (key → VAR).
    unset_env: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def unset_note(self, key: str) -> str:
        """' (it is ${VAR}, which is not set …)' for a key filled from a missing variable, else ''."""
        var = self.unset_env.get(key)
        return f" ({key} is ${{{var}}}, and {var} is not set in the bot's environment)" if var else ""

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def stack_dir(self, stack: str) -> Path:
        p = Path(self.inventory.stacks[stack].path)
        return p if p.is_absolute() else self.base_dir / p

    def compose_file(self, stack: str) -> Path:
        folder = self.stack_dir(stack)
        for name in COMPOSE_FILE_NAMES:
            if (folder / name).is_file():
                return folder / name
        raise ConfigError(f"stack '{stack}' has no compose file in {folder}")

    @cached_property
    def stack_services(self) -> StackServices:
        """Services per stack, read from a stack's compose file when first asked (and again after it changes)."""
        return StackServices(self)

    def grant(self, user_id: str) -> Grant:
        """What `users` (or `api_tokens` for `api:NAME`) gives this identity; unknown → default_roles."""
        platform, _, name = user_id.partition(":")
        if platform == "api":
            token = self.inventory.api_tokens.get(name)
            return Grant(roles=list(token.roles), envs=token.envs) if token else Grant(roles=[])
        entry = self.inventory.users.get(user_id)
        if entry is None:
            return Grant(roles=list(self.inventory.default_roles))
        return entry if isinstance(entry, Grant) else Grant(roles=list(entry))

    def roles_of(self, user_id: str, envs: frozenset[str] | None = None) -> frozenset[Role]:
        """The identity's roles for a request touching `envs` (None or empty: one naming no environment).

        A grant scoped to environments counts only when every environment touched is in its
        list; elsewhere the person has `default_roles`, like someone not listed at all.
        """
        grant = self.grant(user_id)
        roles: list[Role] = list(grant.roles)
        if grant.envs is not None and envs and not envs <= set(grant.envs):
            roles = list(self.inventory.default_roles)
        return expand(roles)

    def scoped(self, user_id: str) -> list[str] | None:
        """The environments a scoped grant is limited to (None: not limited)."""
        return self.grant(user_id).envs

    def env_protected(self, env: str) -> bool:
        return self.inventory.environments[env].protected

    def vm_protected(self, vm: str) -> bool:
        cfg = self.inventory.vms[vm]
        if cfg.protected is not None:
            return cfg.protected
        return any(e.protected for e in self.inventory.environments.values() if e.vm == vm)

    def envs_of_vm(self, vm: str) -> list[str]:
        return [n for n, e in self.inventory.environments.items() if e.vm == vm]

    def default_env(self, channel: str | None) -> str | None:
        if not channel:
            return None
        chan = self.inventory.channels.get(channel)
        return chan.default_env if chan else None


def _overlay(raw: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Add `extra`'s entries to the file's sections (mappings merge one level deep; the file wins)."""
    for key, value in extra.items():
        have = raw.get(key)
        if isinstance(have, dict) and isinstance(value, Mapping):
            raw[key] = {**value, **have}
        elif key not in raw or have is None:
            raw[key] = value


def load_config(path: str | Path | None = None, settings: Settings | None = None,
                overlay: Mapping[str, Any] | None = None) -> Config:
    """Load and validate the inventory; raise ConfigError listing every problem.

    `overlay` adds entries the file lacks (the console's `local` environments on the embedded
    defaults); it is validated with the rest.
    """
    settings = settings or Settings()
    for given, name in ((path, "the config path given (--config)"), (settings.chatops_config, "CHATOPS_CONFIG")):
        if given is not None and not str(given).strip():
            # (an unset variable in a unit file, `--config "$UNSET"`: never the shipped demo inventory instead)
            raise ConfigError(f"{name} is empty. Fix: give the config file's path, or leave it out for "
                              f"the shipped {DEFAULT_CONFIG_PATH.name}.")
    file = Path(path or settings.chatops_config or DEFAULT_CONFIG_PATH).expanduser()
    try:
        size = file.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{file}: the config file is {size:,} bytes; a config is at most "
                              f"{MAX_CONFIG_BYTES:,}. Fix: check CHATOPS_CONFIG points at the config file.")
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config file ({exc.strerror}). "
                          "Fix: check CHATOPS_CONFIG or the path given.") from exc
    except UnicodeDecodeError as exc:
        line = file.read_bytes()[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{file}:{line}: the config file is not UTF-8 text (byte {exc.start}). "
                          "Fix: save it as UTF-8.") from exc
    try:
        lines = _line_map(text, file)
        raw = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader that also refuses duplicate keys
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else str(file)
        problem = getattr(exc, "problem", None) or str(exc)
        fix = ("remove one of the two, or merge them" if isinstance(exc, _DuplicateKey)
               else "check indentation, colons and quotes on that line")
        raise ConfigError(f"{where}: invalid YAML: {problem}. Fix: {fix}.") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: the config must be a mapping with an 'environments' section. "
                          "Fix: start from the shipped chatops.yaml.")
    unset: dict[str, str] = {}
    raw = _walk_expand(raw, unset, _Walk(file))
    if overlay:
        _overlay(raw, overlay)
    llm = raw.setdefault("llm", {}) or {}
    raw["llm"] = llm
    # Environment variables fill in LLM settings the file leaves empty (a section that is not a mapping
    # is left to the schema check, which names it).
    for key, val in (("base_url", settings.llm_base_url), ("model", settings.llm_model),
                     ("api_key", settings.llm_api_key.get_secret_value() if settings.llm_api_key else None)):
        if isinstance(llm, dict) and llm.get(key) in (None, "") and val:
            llm[key] = val
    try:
        inv = Inventory.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_rendered(_pydantic_problems(exc), file, lines)) from exc
    sem = _semantic_problems(inv, file.parent)
    if sem:
        raise ConfigError(_rendered(sem, file, lines))
    return Config(inventory=inv, path=file, settings=settings, unset_env=unset)
