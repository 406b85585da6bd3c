"""The OpenAPI description of the HTTP API, built from the code it describes.

`GET /api/v1/openapi.json` serves it; docs/openapi.yaml is the same document written out by
`chatops api openapi > docs/openapi.yaml` (a test keeps the two equal), so the reference
cannot drift from the server.  Command names come from the registry.
"""

from __future__ import annotations

from typing import Any

from commands.registry import Registry
from infra.status import Status

VERSION = "1.0.0"


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/Error"}}}}


def _request(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/Request"}}}}


def spec(registry: Registry) -> dict[str, Any]:
    statuses = [s.value for s in Status]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "chatops automation API",
            "version": VERSION,
            "description": (
                "Ask the chatops bot for ops requests over HTTP (n8n, CI) and deliver Alertmanager "
                "notifications to it. Every request goes through the same engine as chat: validation, "
                "roles, channel rules, freezes, locks and the audit log. A change on a protected environment "
                "posts its approval card to the environment's ops channel and answers 202; poll "
                "GET /api/v1/requests/{id} for the outcome. See docs/api.md."),
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/requests": {"post": {
                "operationId": "createRequest",
                "summary": "Ask for a command (as text in the canonical grammar, or structured)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/NewRequest"}}}},
                "responses": {
                    "200": _request("Done: a read's result, or a change that finished within `wait` "
                                    "(`status` says succeeded or failed)"),
                    "201": _request("Scheduled (`status: scheduled`; `schedule_id` names the schedule)"),
                    "202": _request("Accepted: waiting for an approver (`pending_approval`, the card is in the "
                                    "ops channel) or still running (`started`)"),
                    "400": _error("The body is not JSON, or not a request object; audited"),
                    "401": _error("Missing or unknown bearer token; audited when the body asks for something"),
                    "403": _error("Refused: the token's roles, a freeze, a rate limit, a change running on the "
                                  "same target; audited"),
                    "408": _error("The body did not arrive whole within api.body_timeout_s; nothing was run"),
                    "413": _error("Body larger than api.max_body_bytes; audited (from a caller with a token)"),
                    "422": _error("Understood as a request but not valid (unknown command, environment, "
                                  "missing argument, a time already passed); audited"),
                    "503": _error("The bot is restarting or its audit database is unreachable; nothing was run"),
                },
            }},
            "/api/v1/requests/{id}": {"get": {
                "operationId": "getRequest",
                "summary": "A request's status, result and audit events",
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": "^r-[0-9a-f]{8}$"}}],
                "responses": {
                    "200": _request("The request (its own token's, or any for a token with the admin role)"),
                    "401": _error("Missing or unknown bearer token"),
                    "404": _error("No such request visible to this token"),
                },
            }},
            "/api/v1/alertmanager": {"post": {
                "operationId": "alertmanagerWebhook",
                "summary": "Alertmanager's webhook receiver (webhook_config with a bearer token)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/AlertmanagerNotification"}}}},
                "responses": {
                    "200": {"description": "Posted or edited in the ops channels (or why not)",
                            "content": {"application/json": {"schema": {
                                "$ref": "#/components/schemas/AlertResult"}}}},
                    "400": _error("Not Alertmanager's webhook format"),
                    "401": _error("Missing or unknown bearer token"),
                    "408": _error("The body did not arrive whole within api.body_timeout_s"),
                    "413": _error("Body larger than api.max_alert_body_bytes"),
                },
            }},
            "/api/v1/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }},
        },
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "A token from `chatops api token create NAME`; the config keeps its hash under "
                               "api_tokens.NAME with the identity's roles (the identity is api:NAME)."}},
            "schemas": {
                "NewRequest": {
                    "type": "object", "additionalProperties": False,
                    "description": "Exactly one of `text` and `command`.",
                    "properties": {
                        "text": {"type": "string", "description": "the request in the canonical grammar "
                                 "(COMMAND ARG… key=value), e.g. 'deploy chat rumpleprod ref=v1.4.2'; the "
                                 "language model is never used for API text", "maxLength": 2000},
                        "command": {"type": "string", "enum": sorted(registry.names())},
                        "args": {"type": "object", "description": "canonical argument names and values "
                                 "(`help COMMAND` lists them)",
                                 "additionalProperties": {"type": ["string", "integer", "boolean"]}},
                        "when": {"type": "string", "description": "schedule instead of running now: 'at 22:00 "
                                 "today', 'every night at 02:00' (docs/schedules.md)"},
                        "wait": {"type": "number", "minimum": 0, "description": "seconds to wait for a change's "
                                 "outcome before answering 202 (at most api.max_wait_s; default 0)"},
                    },
                },
                "Request": {
                    "type": "object",
                    "required": ["id", "status"],
                    "properties": {
                        "id": {"type": "string"},
                        "status": {"type": "string", "enum": statuses},
                        "command": {"type": ["string", "null"]},
                        "args": {"type": "object"},
                        "env": {"type": ["string", "null"]},
                        "actor": {"type": "string"},
                        "approver": {"type": ["string", "null"]},
                        "result": {"type": ["string", "null"]},
                        "error": {"type": ["string", "null"]},
                        "reason": {"type": ["string", "null"]},
                        "schedule_id": {"type": ["string", "null"]},
                        "created_at": {"type": "string", "format": "date-time"},
                        "updated_at": {"type": "string", "format": "date-time"},
                        "reply": {"$ref": "#/components/schemas/Reply"},
                        "events": {"type": "array", "items": {"type": "object", "properties": {
                            "kind": {"type": "string"}, "at": {"type": "string", "format": "date-time"},
                            "actor": {"type": "string"}}}},
                    },
                },
                "Reply": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"}, "title": {"type": "string"},
                        "tone": {"type": "string", "enum": ["info", "success", "warning", "error", "pending",
                                                            "question"]},
                        "fields": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
                        "tables": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": {"error": {"type": "string"},
                                   "request_id": {"type": ["string", "null"],
                                                  "description": "the audit row of the refusal, when one was "
                                                                 "written"}},
                },
                "AlertmanagerNotification": {
                    "type": "object", "required": ["groupKey", "status", "alerts"],
                    "description": "https://prometheus.io/docs/alerting/latest/configuration/#webhook_config",
                    "properties": {
                        "version": {"type": "string"}, "groupKey": {"type": "string"},
                        "truncatedAlerts": {"type": "integer"},
                        "status": {"type": "string", "enum": ["firing", "resolved"]},
                        "receiver": {"type": "string"},
                        "groupLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "commonLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "commonAnnotations": {"type": "object", "additionalProperties": {"type": "string"}},
                        "externalURL": {"type": "string"},
                        "alerts": {"type": "array", "minItems": 1, "items": {
                            "type": "object", "required": ["status", "labels"],
                            "properties": {
                                "status": {"type": "string", "enum": ["firing", "resolved"]},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                                "startsAt": {"type": "string", "format": "date-time"},
                                "endsAt": {"type": "string", "format": "date-time"},
                                "generatorURL": {"type": "string"},
                                "fingerprint": {"type": "string"}}}},
                    },
                },
                "AlertResult": {
                    "type": "object",
                    "properties": {k: {"type": "array", "items": {"type": "object"}}
                                   for k in ("posted", "edited", "skipped", "unrouted", "failed")},
                },
            },
        },
    }
