#!/usr/bin/env bash
# Back up the chatops audit database (docs/operations.md, "Backups"): `chatops db backup` writes,
# from ONE database snapshot, a pg_dump (custom format, grants included) and a CSV audit export,
# copies the archives `audit prune` wrote (checked against the SHA-256 their checkpoints record),
# writes a manifest with every file's checksum, checks the dumped chain, and removes dumps older
# than the keep period. Exit status 1 on any problem (a missing archive, a broken chain).
#
#   deploy/backup.sh             back up
#   deploy/backup.sh --verify    also restore the new dump into a scratch database and run the
#                                audit verification there (needs CREATEDB, or CHATOPS_VERIFY_DATABASE_URL)
#
#   DATABASE_URL               the bot's database (postgresql+psycopg://... is fine)
#   CHATOPS_BACKUP_DIR         where to write (default /var/backups/chatops)
#   CHATOPS_BACKUP_KEEP_DAYS   delete dumps older than this (default 30; 0 keeps all)
#   CHATOPS_BIN                the chatops command (default: chatops on PATH)
#   CHATOPS_CONFIG             the config file (audit.archive_dir: where pruned archives are)
#   CHATOPS_VERIFY_DATABASE_URL  --verify restores into this (emptied) database instead of a new one
# Restore: chatops db restore FILE (docs/operations.md, "Restore").
set -euo pipefail
: "${DATABASE_URL:?set DATABASE_URL}"
export CHATOPS_BACKUP_DIR=${CHATOPS_BACKUP_DIR:-/var/backups/chatops}
export CHATOPS_BACKUP_KEEP_DAYS=${CHATOPS_BACKUP_KEEP_DAYS:-30}
umask 077
exec "${CHATOPS_BIN:-chatops}" db backup "$@"
