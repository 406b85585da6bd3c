"""What a deploy really changes: the model that will run against the containers that run now.

Compose recreates a service's containers when their `com.docker.compose.config-hash`
label differs from the hash of the service as it will be deployed (`config --hash`), so
that decides "unchanged" or not — whatever was recorded, including after a failed deploy
or a rollback.  To say *what* differs, the recorded revision whose hash the running
containers carry gives the model they were created from; images are compared by what
they are (the same image ID under two names is no change) and named by reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra.docker_hosts import PINNED_REF_LABEL, ContainerState, short_digest
from infra.fingerprint import same
from infra.selfcontained import FILES_LABEL

# Keys whose difference says nothing a person changed (bookkeeping Compose or the bot adds).
_IGNORED = frozenset({"labels", "image", "environment", "configs", "secrets"})


@dataclass(frozen=True)
class Recorded:
    """One recorded revision, as far as the diff needs it (newest first in a list)."""

    id: int
    status: str
    model: Mapping[str, Any]
    images: Mapping[str, Any]


def _services(model: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (model or {}).get("services") or {}


def _labels(svc: Mapping[str, Any]) -> dict[str, Any]:
    raw = svc.get("labels") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {k: v for k, v in raw.items() if k not in (PINNED_REF_LABEL, FILES_LABEL)}


def _config_contents(model: Mapping[str, Any], svc: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """target -> content (or file) of each inline config/secret the service uses."""
    top = model.get(kind) or {}
    out: dict[str, Any] = {}
    for ref in svc.get(kind) or []:
        key = ref.get("source") if isinstance(ref, dict) else ref
        target = (ref.get("target") if isinstance(ref, dict) else None) or str(key)
        entry = top.get(key) or {}
        out[str(target)] = entry.get("content", entry.get("file", entry.get("environment")))
    return out


def _image_change(old: str | None, new: str | None, old_id: str | None, new_id: str | None) -> str | None:
    if old == new:
        return None
    if old_id and new_id and old_id == new_id:
        return None  # two names of one image
    return f"image {short_digest(old or '(build)')} → {short_digest(new or '(build)')}"


def service_changes(old_model: Mapping[str, Any], new_model: Mapping[str, Any], name: str,
                    old_image_id: str | None, new_image_id: str | None) -> list[str]:
    """Plain words for what differs in one service between two models (old stored, new real)."""
    old, new = _services(old_model).get(name) or {}, _services(new_model).get(name) or {}
    parts: list[str] = []
    image = _image_change(old.get("image"), new.get("image"), old_image_id, new_image_id)
    if image:
        parts.append(image)
    keys = sorted(k for k in set(old) | set(new) if k not in _IGNORED and old.get(k) != new.get(k))
    if _labels(old) != _labels(new):
        keys.append("labels")
    if keys:
        parts.append(f"{', '.join(keys)} changed")
    env_old, env_new = old.get("environment") or {}, new.get("environment") or {}
    added = sorted(set(env_new) - set(env_old))
    removed = sorted(set(env_old) - set(env_new))
    verdicts = {k: same(env_old[k], env_new[k]) for k in set(env_old) & set(env_new)}
    changed = sorted(k for k, v in verdicts.items() if v is False)
    unknown = sorted(k for k, v in verdicts.items() if v is None)
    env_bits = [f"{', '.join(changed)} changed"] if changed else []
    env_bits += [f"{', '.join(added)} added"] if added else []
    env_bits += [f"{', '.join(removed)} removed"] if removed else []
    if unknown:
        env_bits.append(f"{', '.join(unknown)} not comparable (recorded under another fingerprint key)")
    if env_bits:
        parts.append("environment " + "; ".join(env_bits))
    for kind in ("configs", "secrets"):
        c_old, c_new = _config_contents(old_model, old, kind), _config_contents(new_model, new, kind)
        files = sorted(t for t in set(c_old) | set(c_new)
                       if t not in c_old or t not in c_new or same(c_old[t], c_new[t]) is False)
        if files:
            parts.append(f"{kind[:-1]} file{'s' if len(files) > 1 else ''} {', '.join(files)} changed")
    return parts


def _match(history: Sequence[Recorded], name: str, hashes: set[str]) -> Recorded | None:
    for rev in history:
        info = (rev.images or {}).get(name) or {}
        if info.get("config_hash") and info["config_hash"] in hashes:
            return rev
    return None


def diff_lines(desired: Mapping[str, Any], desired_hashes: Mapping[str, str],
               running: Mapping[str, Sequence[ContainerState]], history: Sequence[Recorded],
               image_ids: Mapping[str, str | None]) -> list[str]:
    """One line per service: `+ add`, `- remove`, `~ changed: what`, `= unchanged`.

    `running` maps services to their containers now; `history` is the stack's recorded
    revisions on this environment, newest first (failed ones too: they may be what runs);
    `image_ids` maps image references to the IDs the engine has for them.
    """
    want = _services(desired)
    lines: list[str] = []
    for name in sorted(set(want) | set(running)):
        new = want.get(name)
        cs = [c for c in running.get(name, [])]
        image = (new or {}).get("image")
        shown = short_digest(image) if image else "(build)"
        if new is None:
            if cs:
                lines.append(f"- remove {name} (runs {', '.join(sorted({c.image_name for c in cs}))})")
            continue
        if not cs:
            lines.append(f"+ add {name} ({shown})")
            continue
        hashes = {c.config_hash for c in cs if c.config_hash}
        new_id = image_ids.get(image) if image else None
        old_ids = {c.image_id for c in cs}
        target = desired_hashes.get(name)
        if target and hashes == {target}:
            if new_id and old_ids and old_ids != {new_id}:
                lines.append(f"~ {name}: {shown} now names another image "
                             f"({', '.join(sorted(short_digest(i) for i in old_ids))} → {short_digest(new_id)})")
            else:
                lines.append(f"= {name} unchanged ({shown})")
            continue
        rev = _match(history, name, hashes)
        if rev is None:  # revisions recorded before hashes were kept: the newest with this service
            rev = next((r for r in history if name in _services(r.model)
                        and not ((r.images or {}).get(name) or {}).get("config_hash")), None)
        if rev is not None:
            old_id = ((rev.images or {}).get(name) or {}).get("id")
            parts = service_changes(rev.model, desired, name, old_id, new_id)
            if target is None and not parts:
                lines.append(f"= {name} unchanged ({shown})")
                continue
            what = "; ".join(parts) or "recreated (Compose's configuration hash differs; no setting "\
                                      "a person sets differs)"
            lines.append(f"~ {name}: {what}")
            continue
        was = ", ".join(sorted({c.image_name for c in cs}))
        img = _image_change(was, image, next(iter(old_ids), None) if len(old_ids) == 1 else None, new_id)
        lines.append(f"~ {name}: recreated: what runs ({was}) was not deployed by the bot, and its "
                     f"configuration differs" + (f"; {img}" if img else ""))
    return lines
