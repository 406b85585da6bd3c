"""Reply → Discord message: embeds within Discord's limits, spill-over into files, buttons."""

from __future__ import annotations

import random
import re

import pytest

from bot.render.discord import CUSTOM_ID_TEMPLATE, custom_id, decision_view, render
from bot.request import Attachment, Button, Reply, Table, Tone
from tests.fakes.discord_api import component_problems, embed_problems


def dicts(reply: Reply) -> list[dict[str, object]]:
    return [e.to_dict() for e in render(reply).embeds]  # type: ignore[misc]


def test_card_has_title_tone_fields_and_request_footer() -> None:
    r = render(Reply("restart n8n rumpledev?", tone=Tone.question, title="Confirm",
                     fields=[("Command", "restart n8n rumpledev"), ("Env", "rumpledev")], request_id="r-1a2b3c4d"))
    (e,) = [x.to_dict() for x in r.embeds]
    assert e["title"] == "Confirm" and e["color"] == 0x5865F2
    assert e["description"] == "❓ restart n8n rumpledev?"
    assert [f["name"] for f in e["fields"]] == ["Command", "Env"]
    assert e["footer"]["text"] == "request r-1a2b3c4d"
    assert r.content is None and r.attachments == []


def test_long_text_is_attached_whole() -> None:
    text = "line\n" * 3000
    r = render(Reply(text))
    desc = r.embeds[0].description or ""
    assert len(desc) <= 4096 and "reply.txt" in desc
    (f,) = r.attachments
    assert f.filename == "reply.txt" and f.content.decode() == text


def test_too_many_or_too_long_fields_spill_into_files() -> None:
    fields = [(f"f{i}", f"value {i}") for i in range(40)] + [("huge", "y" * 3000)]
    r = render(Reply("many fields", fields=fields))
    e = r.embeds[0].to_dict()
    assert len(e["fields"]) == 25
    spilled = {a.filename: a.content.decode() for a in r.attachments}
    assert "f39: value 39" in spilled["fields.txt"] and "huge: " + "y" * 3000 in spilled["fields.txt"]
    assert "16 more fields in fields.txt" in (e["description"] or "")
    assert embed_problems([x.to_dict() for x in r.embeds]) == []  # type: ignore[misc]


def test_long_field_value_is_clipped_and_attached() -> None:
    r = render(Reply("preview", fields=[("What will happen", "- line\n" * 400)]))
    (field,) = r.embeds[0].to_dict()["fields"]
    assert len(field["value"]) <= 1024 and "what-will-happen.txt" in field["value"]
    assert r.attachments[0].content.decode() == "- line\n" * 400


@pytest.mark.parametrize(("rows", "where"), [(3, "field"), (150, "embed"), (2000, "file")])
def test_tables_go_where_they_fit(rows: int, where: str) -> None:
    t = Table(["service", "state"], [[f"svc{i}", "running"] for i in range(rows)], title="status")
    r = render(Reply("status of rumpledev", tables=[t]))
    embeds = [e.to_dict() for e in r.embeds]
    assert embed_problems(embeds) == []  # type: ignore[arg-type]
    last = f"svc{rows - 1}"
    if where == "field":
        assert len(embeds) == 1 and last in embeds[0]["fields"][0]["value"] and not r.attachments
    elif where == "embed":
        assert len(embeds) == 2 and embeds[1]["title"] == "status" and last in embeds[1]["description"]
    else:
        (f,) = r.attachments
        assert f.filename == "status.txt" and last in f.content.decode()
        assert "2000 rows attached as status.txt" in embeds[0]["fields"][0]["value"]


def test_image_attachment_is_shown_in_the_embed() -> None:
    r = render(Reply("GPU load", attachments=[Attachment("gpu.png", b"\x89PNG...", "image/png")]))
    assert r.embeds[0].image.url == "attachment://gpu.png"
    assert [f.filename for f in r.files()] == ["gpu.png"]
    assert [f.filename for f in r.files()] == ["gpu.png"]  # fresh File objects every time


def test_oversized_attachment_is_named_not_sent() -> None:
    r = render(Reply("dump", attachments=[Attachment("core.bin", b"0" * (11 * 1024 * 1024))]))
    assert r.attachments == [] and "core.bin" in (r.embeds[0].description or "")


def test_only_discord_approvers_are_pinged() -> None:
    r = render(Reply("needs approval", mentions=["discord:222", "slack:U1", "console:bob", "discord:x"]))
    assert r.content == "Approvers: <@222>"
    am = r.allowed_mentions.to_dict()
    assert am["parse"] == [] and [str(u) for u in am["users"]] == ["222"]


def test_buttons_carry_action_request_and_plan_hash() -> None:
    digest = "f" * 64
    bs = [Button("Approve", "approve", "r-1a2b3c4d", digest, "primary"),
          Button("Deny", "deny", "r-1a2b3c4d", digest, "danger")]
    comps = decision_view(bs).to_components()
    assert component_problems(comps) == []
    ids = [c["custom_id"] for c in comps[0]["components"]]
    assert ids == [f"chatops:approve:r-1a2b3c4d:{digest}", f"chatops:deny:r-1a2b3c4d:{digest}"]
    assert [c["style"] for c in comps[0]["components"]] == [1, 4]
    m = re.fullmatch(CUSTOM_ID_TEMPLATE, ids[0])
    assert m is not None and (m["action"], m["rid"], m["digest"]) == ("approve", "r-1a2b3c4d", digest)
    with pytest.raises(ValueError, match="longer than Discord"):
        custom_id(Button("x", "approve", "r-" + "a" * 40, digest))


def test_random_replies_always_fit_discord() -> None:
    """Whatever a handler returns, the message is one Discord accepts (and nothing is lost)."""
    rng = random.Random(20241126)
    for _ in range(200):
        def words(n: int) -> str:
            return " ".join(rng.choice(["ok", "n8n", "rumpledev", "x" * rng.randint(1, 300), "\n"])
                            for _ in range(rng.randint(0, n)))
        reply = Reply(words(400), tone=rng.choice(list(Tone)), title=words(20),
                      fields=[(words(5), words(60)) for _ in range(rng.randint(0, 40))],
                      tables=[Table(["a", "b", "c"], [[words(2), words(2), words(3)]
                                                      for _ in range(rng.randint(0, 300))], title=words(3))
                              for _ in range(rng.randint(0, 4))],
                      request_id="r-1a2b3c4d")
        r = render(reply)
        embeds = [e.to_dict() for e in r.embeds]
        assert embed_problems(embeds) == [], reply  # type: ignore[arg-type]
        assert len(r.attachments) <= 10
        shown = " ".join([*(str(e.get("description") or "") for e in embeds),
                          *(str(f["value"]) for e in embeds for f in e.get("fields") or []),  # type: ignore[attr-defined]
                          *(a.content.decode() for a in r.attachments)])
        for _name, value in reply.fields:
            assert value.strip()[:20] in shown
