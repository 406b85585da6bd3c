"""`chatops doctor`: every check of `config check` and `health`, each failure with its fix.

The config is validated first (its errors already name file, line, key and fix); then
the audit database, every environment's Docker engine or Portainer, Proxmox, the GPU
sources, the LLM server and the chat tokens are checked live with the credentials the
bot would use.  GPU sources other than Prometheus (NVML, nvidia-smi over ssh) are checked
through the bot's own clients, exactly as `health` does.
"""

from __future__ import annotations

import asyncio
import os

from bot import checks
from bot.checks import Check, Kind
from infra.config import Config, ConfigError, load_config


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter else value or "")


def config_checks(config_path: str | None) -> tuple[Config | None, list[Check]]:
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        return None, [Check("config", Kind.answer, "the configuration is not valid", str(exc))]
    out = [Check("config", Kind.ok, f"{cfg.path}: valid ({len(cfg.inventory.environments)} environments, "
                                    f"{len(cfg.inventory.stacks)} stacks, {len(cfg.inventory.users)} users)")]
    for key, var in sorted(cfg.unset_env.items()):
        out.append(Check(f"config:{key}", Kind.answer, f"{key} is ${{{var}}} and {var} is not set",
                         f"Set {var} in the env file (chatops --env-file FILE …, or systemd's EnvironmentFile=) "
                         f"or remove {key} from {cfg.path.name} if that part is not used."))
    return cfg, out


def backend_checks(cfg: Config) -> list[Check]:
    inv = cfg.inventory
    out: list[Check] = []
    for name, env in inv.environments.items():
        if env.docker and env.docker.host:
            tls = env.docker.tls.model_dump() if env.docker.tls else None
            if tls:
                tls = {k: (v if not v or os.path.isabs(v) else str(cfg.base_dir / v)) for k, v in tls.items()}
            out.append(checks.docker(name, env.docker.host, tls))
        elif env.portainer:
            p = env.portainer
            out.append(checks.portainer(name, p.url, p.endpoint_id, _secret(p.api_key), p.verify_ssl, p.ca_bundle))
    px = inv.proxmox
    if px.host or px.token_id:
        if not (px.host and px.token_id and px.token_secret):
            missing = [k for k, v in (("host", px.host), ("token_id", px.token_id),
                                      ("token_secret", px.token_secret)) if not v]
            out.append(Check("proxmox", Kind.answer, f"proxmox.{', proxmox.'.join(missing)} not set",
                             "Set them (the secret as PROXMOX_TOKEN_SECRET in the env file), or remove the "
                             "proxmox section."))
        else:
            out.append(checks.proxmox(px.host, px.token_id, _secret(px.token_secret), px.verify_ssl, px.ca_bundle))
    for host, gpu in inv.gpu_hosts.items():
        if gpu.source == "prometheus" and gpu.prometheus_url:
            out.append(checks.prometheus(f"gpu:{host}", gpu.prometheus_url))
        elif gpu.source:
            out.append(_gpu_client_check(cfg, host))
        if gpu.vllm_metrics_url:
            out.append(_metrics(f"vllm-metrics:{host}", gpu.vllm_metrics_url))
    if inv.llm.base_url:
        out.append(checks.llm(inv.llm.base_url, inv.llm.model, _secret(inv.llm.api_key) or None))
    settings = cfg.settings
    if settings.slack_bot_token:
        out.append(checks.slack(_secret(settings.slack_bot_token), settings.slack_api_url))
    if settings.discord_token:
        out.append(checks.discord(_secret(settings.discord_token), os.environ.get("DISCORD_API_URL")))
    return out


def _metrics(name: str, url: str) -> Check:
    failed, resp = checks._http_check(name, "GET", url, tls_key=f"{name} URL",
                                      unreachable_fix=f"Nothing answers at {url}: start the server or correct "
                                                      "gpu_hosts.*.vllm_metrics_url.")
    if failed or resp is None:
        return failed or Check(name, Kind.unreachable, url)
    if resp.status_code != 200:
        return Check(name, Kind.answer, f"{url}: HTTP {resp.status_code}", "The URL must end in /metrics.")
    return Check(name, Kind.ok, url)


def _gpu_client_check(cfg: Config, host: str) -> Check:
    from infra.gpu import make_gpu_clients

    client = make_gpu_clients(cfg).get(host)
    name = f"gpu:{host}"
    if client is None:
        return Check(name, Kind.answer, "no client could be made for this source",
                     f"Check gpu_hosts.{host} against docs/gpu.md (source, ssh, gpus).")
    try:
        detail = asyncio.run(client.ping())
    except Exception as exc:  # every failure is a finding
        return Check(name, checks.classify(exc), checks._first_line(exc),
                     "nvml needs the NVIDIA driver on this machine; nvidia-smi over ssh needs key login to "
                     f"gpu_hosts.{host}.ssh and nvidia-smi there ('ssh HOST nvidia-smi' must work). See docs/gpu.md.")
    return Check(name, Kind.ok, str(detail))


def run(config_path: str | None) -> list[Check]:
    cfg, found = config_checks(config_path)
    if cfg is None:
        return found
    found.append(checks.database(cfg.settings.database_url))
    return found + backend_checks(cfg)
