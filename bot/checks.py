"""Live checks of each backend the config names, each failure with the exact fix.

Shared by `chatops init` (checks each answer as it is given) and `chatops doctor` (checks
a whole config).  A check talks to the real endpoint with the same credentials the bot
will use and sorts what went wrong into a few kinds (unreachable, TLS, refused
credentials, a wrong answer), because the fix depends on the kind, not on the library
that noticed: "connection refused" means start it or correct the address, a certificate
error means give the CA file, a 401 means make a new token.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx

TIMEOUT_S = 5.0


class Kind(StrEnum):
    ok = "ok"
    unreachable = "unreachable"
    tls = "tls"
    auth = "auth"
    answer = "answer"  # it answered, but not as it should (wrong URL, missing model, HTTP error)


@dataclass(frozen=True)
class Check:
    name: str
    kind: Kind
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.kind is Kind.ok

    def render(self) -> str:
        if self.ok:
            return f"✔ {self.name}: {self.detail}"
        return f"✘ {self.name}: {self.detail}\n    fix: {self.fix}"


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in out and len(out) < 12:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
        for arg in getattr(out[-1], "args", ()):  # urllib3/requests wrap the cause in args
            if isinstance(arg, BaseException) and arg not in out:
                out.append(arg)
    return out


def classify(exc: BaseException) -> Kind:
    """Which kind of failure an exception from any client library is."""
    chain = _chain(exc)
    text = " ".join(str(e) for e in chain)
    if any(isinstance(e, ssl.SSLError) for e in chain) or any(
            m in text for m in ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "SSL", "hostname mismatch")):
        return Kind.tls
    if any(isinstance(e, ConnectionError | socket.gaierror | TimeoutError | FileNotFoundError | httpx.TransportError)
           for e in chain) or any(m in text.lower() for m in ("connection refused", "no such file", "timed out",
                                                               "name or service not known", "connection aborted",
                                                               "failed to establish")):
        return Kind.unreachable
    return Kind.answer


def _first_line(exc: BaseException) -> str:
    chain = _chain(exc)
    leaf = next((e for e in reversed(chain) if str(e).strip()), exc)
    return " ".join(str(leaf).split())[:300] or type(exc).__name__


def _verify(verify_ssl: bool, ca_bundle: str | None) -> bool | str:
    return ca_bundle if (verify_ssl and ca_bundle) else verify_ssl


def _tls_fix(what: str, key: str) -> str:
    return (f"{what} presents a certificate this machine does not trust (self-signed, another CA, or a "
            f"name that does not match the address). Give its CA file as {key} (for Proxmox: "
            "/etc/pve/pve-root-ca.pem on the node), or use the name on the certificate in the URL. "
            "verify_ssl: false works too but lets anyone in between read the token: lab use only.")


# -- one check per kind of backend ---------------------------------------------------
def docker(name: str, host: str, tls: dict[str, str | None] | None = None, key: str = "") -> Check:
    import docker as docker_sdk
    from docker.tls import TLSConfig

    key = key or f"environments.{name}.docker.host"
    try:
        tls_cfg: Any = False
        if tls and host.startswith("tcp://"):
            cert = (tls["cert"], tls["key"]) if tls.get("cert") and tls.get("key") else None
            tls_cfg = TLSConfig(client_cert=cert, ca_cert=tls.get("ca"), verify=bool(tls.get("ca")))
        client = docker_sdk.DockerClient(base_url=host, timeout=TIMEOUT_S, tls=tls_cfg,
                                         use_ssh_client=host.startswith("ssh://"))
        try:
            version = client.version().get("Version", "?")
        finally:
            client.close()
        return Check(f"docker:{name}", Kind.ok, f"Docker {version} at {host}")
    except Exception as exc:  # every failure is a finding
        kind = classify(exc)
        detail = f"{host}: {_first_line(exc)}"
        if kind is Kind.tls:
            return Check(f"docker:{name}", kind, detail, _tls_fix(f"The engine at {host}", f"{key[:-5]}.tls.ca"))
        if kind is Kind.unreachable:
            return Check(f"docker:{name}", kind, detail,
                         f"Start Docker there (systemctl start docker) or correct {key}; check with "
                         f"'DOCKER_HOST={host} docker version'. For ssh:// the bot's user needs key login and "
                         "membership of the remote 'docker' group.")
        return Check(f"docker:{name}", kind, detail, f"Check that {host} is a Docker engine API and {key} is right.")


def _http_check(name: str, method: str, url: str, *, headers: dict[str, str] | None = None,
                verify: bool | str = True, tls_key: str, unreachable_fix: str,
                data: dict[str, str] | None = None) -> tuple[Check | None, httpx.Response | None]:
    try:
        with httpx.Client(verify=verify, timeout=TIMEOUT_S) as http:
            resp = http.request(method, url, headers=headers, data=data)
        return None, resp
    except Exception as exc:  # every failure is a finding
        kind = classify(exc)
        detail = f"{url}: {_first_line(exc)}"
        if kind is Kind.tls:
            return Check(name, kind, detail, _tls_fix(url, tls_key)), None
        if kind is Kind.unreachable:
            return Check(name, kind, detail, unreachable_fix), None
        return Check(name, kind, detail, f"Check the address ({url})."), None


def proxmox(host: str, token_id: str, secret: str, verify_ssl: bool = True, ca_bundle: str | None = None) -> Check:
    base = host if "://" in host else f"https://{host if ':' in host else host + ':8006'}"
    url = f"{base.rstrip('/')}/api2/json/version"
    failed, resp = _http_check(
        "proxmox", "GET", url, headers={"Authorization": f"PVEAPIToken={token_id}={secret}"},
        verify=_verify(verify_ssl, ca_bundle), tls_key="proxmox.ca_bundle",
        unreachable_fix=(f"Nothing answers at {base}: check proxmox.host (host[:port], port 8006 by default) "
                         "and that pveproxy runs (systemctl status pveproxy) and the firewall lets this "
                         "machine in."))
    if failed or resp is None:
        return failed or Check("proxmox", Kind.unreachable, url)
    if resp.status_code == 401:
        return Check("proxmox", Kind.auth, f"{base} refused the token {token_id} (401 {resp.reason_phrase})",
                     "Create an API token under Datacenter → Permissions → API Tokens (uncheck 'Privilege "
                     "Separation' or give the token its own roles: VM.Audit, VM.Snapshot, VM.Snapshot.Rollback, "
                     "VM.PowerMgmt, Sys.Audit), set proxmox.token_id to user@realm!tokenid exactly as shown "
                     "and PROXMOX_TOKEN_SECRET in the env file to the secret shown once at creation.")
    if resp.status_code == 403:
        return Check("proxmox", Kind.auth, f"the token {token_id} lacks a privilege ({resp.reason_phrase})",
                     "Give the token (or its user) Sys.Audit and the VM.* privileges listed in docs/proxmox.md.")
    if resp.status_code != 200:
        return Check("proxmox", Kind.answer, f"{url}: HTTP {resp.status_code} {resp.reason_phrase}",
                     "proxmox.host must be the Proxmox VE API (https://HOST:8006), not another service.")
    version = (resp.json().get("data") or {}).get("version", "?")
    return Check("proxmox", Kind.ok, f"Proxmox VE {version} at {base}, token {token_id} accepted")


def portainer(name: str, url: str, endpoint_id: int, api_key: str, verify_ssl: bool = True,
              ca_bundle: str | None = None) -> Check:
    check = f"portainer:{name}"
    target = f"{url.rstrip('/')}/api/endpoints/{endpoint_id}"
    failed, resp = _http_check(check, "GET", target, headers={"X-API-Key": api_key},
                               verify=_verify(verify_ssl, ca_bundle),
                               tls_key=f"environments.{name}.portainer.ca_bundle",
                               unreachable_fix=f"Nothing answers at {url}: check environments.{name}.portainer.url "
                                               "and that Portainer runs.")
    if failed or resp is None:
        return failed or Check(check, Kind.unreachable, target)
    if resp.status_code in (401, 403):
        return Check(check, Kind.auth, f"{url} refused the API key (HTTP {resp.status_code})",
                     "Create an access token in Portainer (My account → Access tokens) and put it in the env "
                     "file as PORTAINER_API_KEY.")
    if resp.status_code == 404:
        return Check(check, Kind.answer, f"{url} has no endpoint {endpoint_id}",
                     f"Set environments.{name}.portainer.endpoint_id to the id shown under Environments.")
    if resp.status_code != 200:
        return Check(check, Kind.answer, f"{target}: HTTP {resp.status_code}", "Check the Portainer URL.")
    return Check(check, Kind.ok, f"Portainer at {url}, endpoint {endpoint_id}")


def llm(base_url: str, model: str | None = None, api_key: str | None = None) -> Check:
    url = f"{base_url.rstrip('/')}/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    failed, resp = _http_check(
        "llm", "GET", url, headers=headers, tls_key="llm.base_url (https with a trusted certificate)",
        unreachable_fix=(f"Nothing answers at {base_url}: start vLLM (on Phoenix: 'deploy llm phoenix', see "
                         "docs/llm.md) or correct LLM_BASE_URL (it ends in /v1). The bot works without it: "
                         "plain-language requests then use the grammar only."))
    if failed or resp is None:
        return failed or Check("llm", Kind.unreachable, url)
    if resp.status_code in (401, 403):
        return Check("llm", Kind.auth, f"{base_url} refused the API key (HTTP {resp.status_code})",
                     "Set LLM_API_KEY in the env file to the key vLLM was started with (--api-key).")
    if resp.status_code != 200:
        return Check("llm", Kind.answer, f"{url}: HTTP {resp.status_code}",
                     "The server answers but is not ready (vLLM still loading the model?) or LLM_BASE_URL does "
                     "not end in /v1. Try again in a minute; 'docker logs' of the vllm container says why.")
    models = [m.get("id") for m in (resp.json().get("data") or [])]
    if model and model not in models:
        return Check("llm", Kind.answer, f"{base_url} serves {', '.join(map(str, models)) or 'no model'}, "
                     f"not {model}", f"Set LLM_MODEL to one of: {', '.join(map(str, models))}.")
    return Check("llm", Kind.ok, f"{base_url} serves {', '.join(map(str, models))}")


def prometheus(name: str, url: str) -> Check:
    target = f"{url.rstrip('/')}/api/v1/query"
    failed, resp = _http_check(
        name, "GET", f"{target}?query=up", tls_key=f"{name} URL",
        unreachable_fix=f"Nothing answers at {url}: start Prometheus or correct the URL (gpu_hosts.*.prometheus_url).")
    if failed or resp is None:
        return failed or Check(name, Kind.unreachable, target)
    if resp.status_code != 200:
        return Check(name, Kind.answer, f"{target}: HTTP {resp.status_code}",
                     "The URL must be Prometheus's own (http://HOST:9090), without /graph or a path.")
    return Check(name, Kind.ok, f"Prometheus at {url}")


def slack(bot_token: str, api_url: str | None = None) -> Check:
    base = (api_url or "https://slack.com/api/").rstrip("/") + "/"
    failed, resp = _http_check("slack", "POST", f"{base}auth.test", headers={"Authorization": f"Bearer {bot_token}"},
                               tls_key="SLACK_API_URL", unreachable_fix=f"Slack's API ({base}) cannot be reached "
                               "from here: check the proxy and firewall (HTTPS out to slack.com).")
    if failed or resp is None:
        return failed or Check("slack", Kind.unreachable, base)
    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    if not body.get("ok"):
        error = body.get("error") or f"HTTP {resp.status_code}"
        return Check("slack", Kind.auth, f"Slack refused SLACK_BOT_TOKEN: {error}",
                     "Copy the Bot User OAuth Token (xoxb-…) from your app's 'OAuth & Permissions' page "
                     "(create the app from slack-app-manifest.yaml and install it to the workspace first) "
                     "into SLACK_BOT_TOKEN in the env file.")
    return Check("slack", Kind.ok, f"token of {body.get('user', '?')} in team {body.get('team', '?')}")


def discord(token: str, api_url: str | None = None) -> Check:
    base = (api_url or "https://discord.com/api/v10").rstrip("/")
    failed, resp = _http_check("discord", "GET", f"{base}/users/@me", headers={"Authorization": f"Bot {token}"},
                               tls_key="DISCORD_API_URL", unreachable_fix=f"Discord's API ({base}) cannot be "
                               "reached from here: check the proxy and firewall.")
    if failed or resp is None:
        return failed or Check("discord", Kind.unreachable, base)
    if resp.status_code == 401:
        return Check("discord", Kind.auth, "Discord refused DISCORD_TOKEN (401)",
                     "Reset the token under Developer Portal → your application → Bot → Reset Token and put it in "
                     "DISCORD_TOKEN in the env file.")
    if resp.status_code != 200:
        return Check("discord", Kind.answer, f"{base}/users/@me: HTTP {resp.status_code}", "Try again later.")
    return Check("discord", Kind.ok, f"bot {resp.json().get('username', '?')}")


def database(url: str | None) -> Check:
    from infra.db.store import Database

    shown = url.split("@")[-1] if url else "the embedded SQLite file"
    try:
        db = Database(url)
        try:
            db.ping()
        finally:
            db.dispose()
    except Exception as exc:  # every failure is a finding
        return Check("database", Kind.unreachable, f"{shown}: {_first_line(exc)}",
                     "Start PostgreSQL or correct DATABASE_URL (postgresql+psycopg://USER:PASSWORD@HOST:5432/DB); "
                     "'psql' with the same values tells you whether it answers.")
    return Check("database", Kind.ok, shown)


def file_readable(name: str, path: str | None, key: str) -> Check | None:
    if path and not Path(path).is_file():
        return Check(name, Kind.answer, f"{key} names {path}, which does not exist", f"Correct {key}.")
    return None
