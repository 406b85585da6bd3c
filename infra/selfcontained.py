"""Self-contained stacks: the files a stack mounts from its folder, carried inside the Compose model.

An engine the bot shares no files with (a remote engine, Portainer) cannot bind-mount
`./nginx.conf`: Docker would create an empty directory in its place.  Compose can copy
inline configs (`configs: {x: {content: …}}`) into a container through the Engine API, so
each file bind-mounted from the stack folder becomes one such config (a directory: one
per file), a top-level `configs:`/`secrets:` entry read from a file travels as content or
as an environment value, and `env_file` values are already in the model's `environment`
(Compose merges them in `config`).  What cannot travel that way is a `Problem` with the
reason and the fix, found before anyone confirms or approves the deploy.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Compose does not recreate a container when only an inline config's content changed: this label
# on each service carries a digest of the files it gets, so a changed file changes the service.
FILES_LABEL = "org.chatops.files-sha256"
MAX_FILE_BYTES = 1024 * 1024      # one inlined file
MAX_TOTAL_BYTES = 4 * 1024 * 1024  # all inlined files of a stack together
MAX_FILES = 200


@dataclass(frozen=True)
class Problem:
    """Why a stack cannot be made self-contained, and what to change."""

    service: str | None
    reason: str
    fix: str

    def line(self) -> str:
        who = f"{self.service}: " if self.service else ""
        return f"{who}{self.reason}. Fix: {self.fix}."


@dataclass
class SelfContained:
    model: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # Environment for the Compose process: values of secrets that travel as `environment:`.
    secret_env: dict[str, str] = field(default_factory=dict)
    inlined_bytes: int = 0
    inlined_files: int = 0  # stack files that now travel inside the model


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._-")[:60] or "file"


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


class _Builder:
    def __init__(self, model: Mapping[str, Any], workdir: Path, for_portainer: bool) -> None:
        self.out = SelfContained(copy.deepcopy(dict(model)))
        self.workdir = os.path.normpath(str(workdir))
        self.real_workdir = os.path.realpath(self.workdir)
        self.for_portainer = for_portainer
        self.configs: dict[str, tuple[str, int]] = {}  # stack-relative path -> (config key, mode)
        self.host_paths: set[str] = set()

    # -- where a path points ------------------------------------------------
    def place(self, source: str) -> tuple[str, str | None]:
        """('stack', relpath) for a path in the stack folder, ('host', path) for an engine-host
        path, ('outside', path) for a relative path that leaves the folder."""
        absolute = os.path.isabs(source)
        full = os.path.normpath(source if absolute else os.path.join(self.workdir, source))
        for folder in (self.workdir, self.real_workdir):
            if _inside(full, folder):
                return "stack", os.path.relpath(full, folder)
        if absolute:
            return "host", full
        return "outside", full

    # -- reading files --------------------------------------------------------
    def read(self, service: str | None, rel: str) -> tuple[str, int] | None:
        path = Path(self.workdir) / rel
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                self.problem(service, f"./{rel} is {_size(size)}, over the {_size(MAX_FILE_BYTES)} an inline "
                                      "config may carry",
                             "bake the file into the image, or put it in a volume on the engine's host")
                return None
            data = path.read_bytes()
            mode = path.stat().st_mode
        except OSError as exc:
            self.problem(service, f"./{rel} cannot be read ({exc.strerror})", "check the file's permissions")
            return None
        try:
            text: str | None = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or "\0" in text:
            self.problem(service, f"./{rel} is a binary file, which an inline config cannot carry",
                         "bake it into the image, or put it in a volume on the engine's host")
            return None
        self.out.inlined_bytes += len(data)
        if self.out.inlined_bytes > MAX_TOTAL_BYTES:
            self.problem(None, f"the stack's files add up to more than {_size(MAX_TOTAL_BYTES)}",
                         "bake the larger files into an image")
            return None
        return text, 0o444 | (mode & 0o111)

    def config_for(self, service: str | None, rel: str) -> tuple[str, int] | None:
        """The key of the inline config holding ./rel (made once per file), and the file's mode."""
        if rel in self.configs:
            return self.configs[rel]
        got = self.read(service, rel)
        if got is None:
            return None
        text, mode = got
        key = f"stack_{_slug(rel)}"
        while key in (self.out.model.get("configs") or {}):
            key += "_"
        # The model is interpolated again when Compose reads it: keep `$` literal.
        self.out.model.setdefault("configs", {})[key] = {"content": text.replace("$", "$$")}
        self.configs[rel] = (key, mode)
        self.out.inlined_files += 1
        return key, mode

    def problem(self, service: str | None, reason: str, fix: str) -> None:
        self.out.problems.append(Problem(service, reason, fix))

    # -- services -------------------------------------------------------------
    def service(self, name: str, svc: dict[str, Any]) -> None:
        kept: list[Any] = []
        for vol in svc.get("volumes") or []:
            if not isinstance(vol, dict) or vol.get("type") != "bind":
                kept.append(vol)
                continue
            where, path = self.place(str(vol.get("source", "")))
            if where == "host":
                self.host_paths.add(str(path))
                kept.append(vol)
                continue
            src = str(vol.get("source"))
            if where == "outside":
                self.problem(name, f"it mounts {src}, which is outside the stack folder and so not on the "
                                   "engine's host", "move the file into the stack's folder (it then travels "
                                                    "with the stack), or use an absolute path that exists on "
                                                    "the engine's host")
                continue
            self.bind(name, svc, vol, str(path))
        if "volumes" in svc:
            if kept:
                svc["volumes"] = kept
            else:
                del svc["volumes"]
        build = svc.get("build")
        if isinstance(build, dict) and build.get("context") is not None:
            self.build(name, build, svc.get("image"))

    def bind(self, name: str, svc: dict[str, Any], vol: Mapping[str, Any], rel: str) -> None:
        target = str(vol.get("target", ""))
        shown = "./" + rel if rel != "." else "the stack folder"
        full = Path(self.workdir) / rel
        if not full.exists():
            self.problem(name, f"it mounts {shown}, which is not in the stack folder (Docker would "
                               "mount an empty directory in its place)", f"add {shown} to the stack's folder")
            return
        if not vol.get("read_only"):
            self.problem(name, f"it mounts {shown} writable; a copy inside the container cannot carry "
                               "changes back", f"mount it read-only ('{shown}:{target}:ro') if the service "
                                               "only reads it, or use a named volume for data it writes")
            return
        if svc.get("read_only"):
            self.problem(name, f"it is read_only: true and mounts {shown}; Compose cannot copy a file into a "
                               "read-only root file system", "bake the file into the image, or drop "
                                                              "read_only for this service")
            return
        files = [full] if full.is_file() else sorted(p for p in full.rglob("*") if p.is_file())
        if len(files) > MAX_FILES:
            self.problem(name, f"{shown} holds {len(files)} files, more than the {MAX_FILES} inlined at most",
                         "bake them into an image")
            return
        refs = svc.setdefault("configs", [])
        total = 0
        for f in files:
            frel = os.path.relpath(f, self.workdir)
            dest = target if f == full else f"{target.rstrip('/')}/{os.path.relpath(f, full)}"
            got = self.config_for(name, frel)
            if got is None:
                return
            key, mode = got
            refs.append({"source": key, "target": dest, "mode": mode})
            total += f.stat().st_size
        what = f"{shown} ({_size(total)})" if full.is_file() else \
            f"{shown}/ ({len(files)} file{'s' if len(files) != 1 else ''}, {_size(total)})"
        self.out.notes.append(f"{name}: {what} → inline config at {target}")

    def build(self, name: str, build: dict[str, Any], image: str | None) -> None:
        context = str(build["context"])
        if re.match(r"^[a-z]+://|^git@", context):
            return  # a remote context: whoever builds fetches it
        if self.for_portainer:
            if image:  # Compose builds only when the image is missing
                self.out.notes.append(f"{name}: Portainer cannot build from {context} on the bot's side: "
                                      f"{image} must already be on the engine")
                del self.out.model["services"][name]["build"]
                return
            self.problem(name, f"it is built from {context} on the bot's side, which Portainer cannot "
                               "reach", "build and push the image, then name it with image: (or deploy "
                                        "this stack on an engine the bot reaches directly)")
            return
        # Compose uploads the build context from here; give it the absolute path.
        build["context"] = os.path.normpath(os.path.join(self.workdir, context))

    # -- top-level configs and secrets ----------------------------------------
    def top_level(self, kind: str) -> None:
        entries = self.out.model.get(kind) or {}
        for key, entry in list(entries.items()):
            if not isinstance(entry, dict) or "file" not in entry:
                continue
            where, path = self.place(str(entry["file"]))
            users = [n for n, s in (self.out.model.get("services") or {}).items()
                     if any((r.get("source") if isinstance(r, dict) else r) == key for r in s.get(kind) or [])]
            if where == "host":
                self.host_paths.add(str(path))
                continue
            if where == "outside":
                self.problem(users[0] if users else None,
                             f"{kind[:-1]} '{key}' is read from {entry['file']}, outside the stack folder",
                             "move the file into the stack's folder")
                continue
            ro = [u for u in users if (self.out.model["services"][u]).get("read_only")]
            if ro:
                self.problem(ro[0], f"it is read_only: true and uses {kind[:-1]} '{key}' from ./{path}; Compose "
                                    "cannot copy it into a read-only root file system",
                             "bake the file into the image, or drop read_only for this service")
                continue
            got = self.read(users[0] if users else None, str(path))
            if got is None:
                continue
            text, _mode = got
            if kind == "configs":
                entries[key] = {k: v for k, v in entry.items() if k != "file"} | \
                    {"content": text.replace("$", "$$")}
            else:
                var = "CHATOPS_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", key).upper()
                entries[key] = {k: v for k, v in entry.items() if k != "file"} | {"environment": var}
                self.out.secret_env[var] = text
            self.out.inlined_files += 1
            self.out.notes.append(f"{', '.join(users) or 'unused'}: {kind[:-1]} '{key}' from ./{path} → inline")


def env_file_notes(raw_content: str) -> list[str]:
    """'svc: env_file X → environment' for each service whose file names env_file (Compose merged them)."""
    try:
        raw = yaml.safe_load(raw_content) or {}
    except yaml.YAMLError:
        return []
    out = []
    for name, svc in ((raw.get("services") or {}) if isinstance(raw, dict) else {}).items():
        files = (svc or {}).get("env_file") if isinstance(svc, dict) else None
        if not files:
            continue
        items = files if isinstance(files, list) else [files]
        shown = ", ".join(str(i.get("path") if isinstance(i, dict) else i) for i in items)
        out.append(f"{name}: env_file {shown} → environment")
    return out


def _label_files(model: dict[str, Any]) -> None:
    """Give each service that gets inline files a label with their digest (see FILES_LABEL)."""
    for svc in (model.get("services") or {}).values():
        h = hashlib.sha256()
        used = False
        for kind in ("configs", "secrets"):
            top = model.get(kind) or {}
            for ref in svc.get(kind) or []:
                key = ref.get("source") if isinstance(ref, dict) else ref
                entry = top.get(key) or {}
                if "content" in entry or "environment" in entry:
                    used = True
                    h.update(json.dumps([kind, ref, entry], sort_keys=True).encode())
        if used:
            labels = svc.get("labels")
            if isinstance(labels, list):
                labels = dict(item.split("=", 1) if "=" in item else (item, "") for item in labels)
            svc["labels"] = {**(labels or {}), FILES_LABEL: h.hexdigest()[:24]}


def make_self_contained(model: Mapping[str, Any], workdir: Path, raw_content: str = "", *,
                        for_portainer: bool = False) -> SelfContained:
    """The model with every stack file it uses carried inline, or the problems that prevent it.

    `model` is `docker compose config --no-path-resolution` output (paths as written).
    """
    b = _Builder(model, workdir, for_portainer)
    for name, svc in (b.out.model.get("services") or {}).items():
        b.service(name, svc)
    b.top_level("configs")
    b.top_level("secrets")
    _label_files(b.out.model)
    b.out.notes += env_file_notes(raw_content)
    if b.host_paths:
        b.out.notes.append("kept as paths on the engine's host: " + ", ".join(sorted(b.host_paths)))
    return b.out


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not re.search(r"[ \t]\n|[^\S\n]$|\r", value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(model: Mapping[str, Any]) -> str:
    """The model as a compose file (block scalars for multi-line configs, readable in Portainer)."""
    return yaml.dump(dict(model), Dumper=_Dumper, sort_keys=False, width=1 << 16, allow_unicode=True)
