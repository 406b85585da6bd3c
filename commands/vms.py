"""Proxmox guests: snapshots, restore, status."""

from __future__ import annotations

from typing import Any

from bot.request import Reply
from commands.args import SNAPSHOT, VM, VM_OPT
from commands.context import Context
from commands.registry import Arg, Kind, command


async def _proxmox_only(ctx: Context, args: dict[str, Any]) -> Reply:
    ctx.backends.proxmox()
    raise NotImplementedError("needs the Proxmox backend")


@command("snapshot", summary="create a Proxmox snapshot (name generated when absent)",
         args=(VM, Arg("name", Kind.word, required=False, positional=False, help="snapshot name"),
               Arg("description", Kind.text, required=False, positional=False, help="description")),
         changes=True, backend="proxmox",
         examples=("snapshot rumpleprod name=pre-upgrade", "snapshot dev vm"))
async def snapshot(ctx: Context, args: dict[str, Any]) -> Reply:
    return await _proxmox_only(ctx, args)


@command("snapshots", summary="list a VM's snapshots", args=(VM,), backend="proxmox",
         examples=("snapshots rumpledev",))
async def snapshots(ctx: Context, args: dict[str, Any]) -> Reply:
    return await _proxmox_only(ctx, args)


@command("restore", summary="roll a VM back to a snapshot", args=(VM, SNAPSHOT), changes=True,
         backend="proxmox", examples=("restore rumpledev pre-upgrade",), words=("revert",))
async def restore(ctx: Context, args: dict[str, Any]) -> Reply:
    return await _proxmox_only(ctx, args)


@command("delete-snapshot", summary="delete a snapshot", args=(VM, SNAPSHOT), changes=True,
         backend="proxmox", examples=("delete-snapshot rumpledev pre-upgrade",),
         words=("delete snapshot", "remove snapshot"))
async def delete_snapshot(ctx: Context, args: dict[str, Any]) -> Reply:
    return await _proxmox_only(ctx, args)


@command("vm-status", summary="state, uptime, CPU and memory of VMs", args=(VM_OPT,),
         backend="proxmox", examples=("vm-status", "vm-status rumpleprod"),
         words=("vm status", "vms"))
async def vm_status(ctx: Context, args: dict[str, Any]) -> Reply:
    return await _proxmox_only(ctx, args)
