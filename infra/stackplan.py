"""What a deploy sends to an engine, decided once for the preview and the deploy alike.

`prepare` validates the source with Compose, decides whether the stack travels
self-contained (`environments.ENV.inline_files`: `auto` inlines for engines the bot
shares no files with — remote engines, Portainer — and for copies of the stack made for
one request; `always`; `never`), makes it so, and lists what cannot be carried.  The
preview shows `notes` and refuses on `problems`; the deploy writes the same model.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.compose import Deployable, StackSource, environment_values, resolve, service_hashes
from infra.selfcontained import Problem, make_self_contained, to_yaml

if TYPE_CHECKING:
    from infra.docker_hosts import DockerHost

SELF_CONTAINED_FILE = "compose.selfcontained.yaml"


async def inlines(setting: str, host: DockerHost, src: StackSource) -> bool:
    """Whether this deploy carries the stack's files inside the model."""
    if setting == "always":
        return True
    if setting == "never":
        return False
    return src.temporary or not await host.sees_our_files()


@dataclass
class StackPlan:
    src: StackSource
    project: str
    model: dict[str, Any]            # Compose's model of the source (real values: never stored)
    dotenv: dict[str, str]           # the .env values as Compose resolved them
    inline: bool
    deployed: dict[str, Any]         # what goes to the engine
    for_portainer: bool = False
    notes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    secret_env: dict[str, str] = field(default_factory=dict)

    @property
    def services(self) -> list[str]:
        return sorted((self.deployed.get("services") or {}).keys())

    def secrets(self) -> list[str]:
        """Values to keep out of chat and the audit log: the .env's and every environment value."""
        return [*self.dotenv.values(), *environment_values(self.model), *self.secret_env.values()]

    def refusal(self, env: str) -> str | None:
        """Why this deploy cannot work on `env`, with the fix; None when it can."""
        if not self.problems:
            return None
        where = "Portainer" if self.for_portainer else f"the engine of {env}"
        lines = [f"{self.src.stack} cannot be deployed to {env} as it is: {where} cannot see the bot's "
                 "files, so the stack must travel self-contained, and this cannot:"]
        lines += [f"- {p.line()}" for p in self.problems]
        lines.append("Nothing was changed.")
        return "\n".join(lines)

    def write(self, area: Path) -> Deployable:
        """The files Compose (or Portainer) gets; a self-contained file is written into `area`."""
        if self.inline:
            text = to_yaml(self.deployed)
            file = area / SELF_CONTAINED_FILE
            file.write_text(text)
            return Deployable(self.project, area, [file], text, dict(self.dotenv), True, dict(self.secret_env))
        from infra.portainer import pinned_content

        return Deployable(self.project, self.src.workdir, list(self.src.files),
                          pinned_content(self.src.content, self.src.pins), dict(self.dotenv), False)

    async def hashes(self, area: Path) -> dict[str, str]:
        """Compose's configuration hash of each service as it will be deployed."""
        dep = await asyncio.to_thread(self.write, area)
        return await service_hashes(self.project, dep.workdir, dep.files)


async def prepare(host: DockerHost, src: StackSource, inline_setting: str = "auto") -> StackPlan:
    """Validate `src` with Compose and shape it for `host` (CommandError when it is not valid)."""
    project = host.project(src.stack)
    resolved = await resolve(project, src)
    portainer = host.driver.kind == "portainer"
    inline = await inlines(inline_setting, host, src)
    plan = StackPlan(src, project, resolved.model, resolved.dotenv, inline, resolved.model,
                     for_portainer=portainer)
    contained = make_self_contained(resolved.model, src.workdir, src.content, for_portainer=portainer)
    if inline:
        plan.deployed = contained.model
        plan.notes = contained.notes
        plan.problems = contained.problems
        plan.secret_env = contained.secret_env
    elif src.temporary and contained.inlined_files:
        # A copy made for this request is removed afterwards: binds into it would dangle.
        plan.problems = [Problem(None, "this deploy runs from a copy of the stack folder made for this "
                                       "request and removed after it, so the files it bind-mounts would "
                                       "vanish from under the containers",
                                 f"set inline_files: auto (or always) for this environment, or deploy "
                                 f"without ref= (inline_files is never for {host.env})")]
    return plan
