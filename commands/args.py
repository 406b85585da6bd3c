"""Argument declarations shared by several commands (declared once, reused)."""

from __future__ import annotations

from commands.registry import Arg, Kind

ENV = Arg("env", Kind.env, help="environment (rumpledev, rumpletest, rumpleprod, rumple, phoenix)")
ENV_OPT = Arg("env", Kind.env, required=False, help="environment")
STACK = Arg("stack", Kind.stack, help="Compose stack under compose/")
STACK_OPT = Arg("stack", Kind.stack, required=False, help="Compose stack")
STACK_KV = Arg("stack", Kind.stack, required=False, positional=False,
               help="the service's stack, when the service name is not enough")
SERVICE = Arg("service", Kind.service, help="service name (e.g. n8n, nginx, open-webui)")
VM = Arg("vm", Kind.vm, help="Proxmox guest (rumpledev, rumpletest, rumpleprod, portainer, llm)")
VM_OPT = Arg("vm", Kind.vm, required=False, help="Proxmox guest")
SNAPSHOT = Arg("snapshot", Kind.word, help="snapshot name",
               cues=("snapshot", "checkpoint", "snap", "called", "named", "to", "back", "from"),
               cues_after=("snapshot", "checkpoint", "snap"))
REQUEST = Arg("request", Kind.request, help="request id, like r-1a2b3c4d")
REASON = Arg("reason", Kind.text, required=False, help="why, in a few words",
             cues=("because", "reason", "for", "due to", "since", "as", "cause", "cuz", "until", "during", "while"))
