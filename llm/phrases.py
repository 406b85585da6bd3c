"""Word tables for the plain-language route (llm/nl.py): synonyms, fillers, refusals.

Kept as data so that adding a phrasing means adding a line here, not code.  Phrases
are lower-case and written after contraction expansion ("don't" → "do not").
Priorities: 3 an action verb ("bounce", "push out"), 2 a noun or list word that names
a command ("logs", "snapshots"), 1 a weak hint ("running", "busy") used only when
nothing stronger is present.
"""

from __future__ import annotations


def _words(text: str) -> list[str]:
    return text.split()


# phrase → (command, priority)
COMMAND_PHRASES: dict[str, tuple[str, int]] = {}


def _add(command: str, priority: int, *phrases: str) -> None:
    for p in phrases:
        COMMAND_PHRASES[p] = (command, priority)


_add("deploy", 3, "deploy", "deploys", "deploying", "redeploy", "redeploying", "re-deploy", "ship", "ship it",
     "push out", "push", "roll out", "rollout", "roll-out", "put out")
_add("deploy", 2, "update", "refresh", "deployment")
_add("rollback", 3, "rollback", "roll back", "roll-back", "rolling back", "undo the deploy", "undo deploy",
     "undo the last deploy", "undo last deploy", "undo the latest deploy", "undo the last deployment",
     "downgrade", "go back to the previous", "back out", "revert the deploy")
_add("restart", 3, "restart", "restarts", "restarting", "re-start", "bounce", "kick", "cycle", "recycle",
     "power cycle", "reboot", "relaunch", "give it a kick", "restrart")
_add("stop", 3, "stop", "shut down", "shutdown", "take down", "bring down", "spin down", "kill", "halt",
     "turn off", "switch off", "stopping")
_add("start", 3, "start", "start up", "bring up", "spin up", "fire up", "turn on", "switch on", "boot",
     "launch", "bring back up", "start back up", "starting")
_add("logs", 2, "logs", "log", "logfile", "log output", "tail", "log lines", "journal")
_add("logs", 1, "errors", "output", "saying", "complaining")
_add("status", 2, "status", "state", "ps", "what is running", "what runs")
_add("status", 1, "looking", "up", "down", "running", "healthy", "alive", "doing", "check", "containers", "ok", "fine",
     "working")
_add("stacks", 2, "stacks", "what is deployed", "which stacks", "list stacks", "revision", "revisions",
     "versions", "deployed where")
_add("stacks", 1, "deployed", "version")
_add("envs", 2, "envs", "environments", "environment list", "list envs", "which envs")
_add("envs", 1, "locked", "frozen", "locks", "freezes")
_add("snapshot", 2, "snapshot", "checkpoint", "snap", "take a snapshot", "snapshot of", "back up", "backup")
_add("snapshots", 2, "snapshots", "checkpoints", "snaps")
_add("restore", 3, "restore", "restoring", "revert", "reset to")
_add("delete-snapshot", 3, "delete snapshot", "remove snapshot", "delete-snapshot")
_add("vm-status", 2, "vm status", "vm-status", "vms", "virtual machines", "vm", "guests", "proxmox", "lxc",
     "lxcs")
_add("gpu", 2, "gpu", "gpus", "graphics cards", "graphics card", "vram", "cuda", "nvidia-smi", "nvidia", "gpu usage",
     "gpu load", "gpu memory")
_add("gpu", 1, "busy", "utilisation", "utilization", "temperature", "temps", "queue")
_add("audit", 2, "audit", "audit log", "history", "what happened", "activity", "changelog", "who did",
     "recent changes", "requests", "approvals", "actions", "audit entries")
_add("approve", 3, "approve", "lgtm", "sign off", "sign off on", "ack", "go ahead with")
_add("deny", 3, "deny", "reject", "decline", "veto", "refuse", "nack")
_add("lock", 3, "lock", "freeze", "lock down", "code freeze", "block changes", "change freeze")
_add("unlock", 3, "unlock", "unfreeze", "thaw", "lift the freeze", "lift the lock", "end the freeze",
     "remove the freeze", "remove the lock", "clear the freeze", "unblock")
_add("health", 2, "health", "health check", "healthcheck", "health-check", "ping", "backends", "reachable",
     "connectivity", "everything ok", "is everything up", "all systems")
_add("help", 2, "help", "commands", "usage", "what can you do", "what do you do", "what do you support",
     "how do you work", "man", "manual")
_add("whoami", 2, "whoami", "who am i", "my roles", "my role", "my permissions", "my access",
     "what am i allowed", "am i an admin", "am i admin", "am i an operator", "permissions", "what roles do i have")

# Verbs split around their target: "push chat out", "bring n8n back up", "roll web back".
PARTICLE_VERBS: dict[tuple[str, str], str] = {
    ("push", "out"): "deploy", ("roll", "out"): "deploy", ("roll", "back"): "rollback",
    ("bring", "up"): "start", ("bring", "down"): "stop", ("spin", "up"): "start", ("spin", "down"): "stop",
    ("take", "down"): "stop", ("shut", "down"): "stop", ("turn", "off"): "stop", ("turn", "on"): "start",
    ("fire", "up"): "start", ("start", "up"): "start", ("switch", "off"): "stop", ("switch", "on"): "start",
    ("kick", "over"): "restart", ("put", "out"): "deploy", ("knock", "over"): "restart",
}

# Past forms of command verbs: a statement about what happened, or (after who/when/did) an audit question.
PAST_FORMS: dict[str, str] = {
    "deployed": "deploy", "redeployed": "deploy", "shipped": "deploy", "pushed": "deploy", "rolled": "rollback",
    "restarted": "restart", "rebooted": "restart", "bounced": "restart", "kicked": "restart", "cycled": "restart",
    "stopped": "stop", "killed": "stop", "started": "start", "snapshotted": "snapshot", "restored": "restore",
    "reverted": "restore", "locked": "lock", "froze": "lock", "frozen": "lock", "unlocked": "unlock",
    "unfroze": "unlock", "approved": "approve", "denied": "deny", "rejected": "deny", "checkpointed": "snapshot",
}
# Outcome words after a command noun: "the deploy went fine", "restart worked".
OUTCOME_WORDS = frozenset({"went", "worked", "failed", "succeeded", "finished", "completed", "done", "broke",
                           "crashed", "seems", "seemed", "looks", "looked", "fixed", "helped", "was", "were"})
# Words before a past form that make it an adjective or passive, not a statement ("what is deployed").
PASSIVE_BEFORE = frozenset({"is", "are", "be", "being", "currently", "still", "what", "get", "got"})
# Subjects that make a past form a report of something done by a person.
SUBJECTS = frozenset({"i", "we", "you", "he", "she", "they", "someone", "somebody", "just", "already",
                      "finally", "have", "has", "had", "successfully", "anyone", "everyone", "nobody"})
REPORT_SUBJECTS = frozenset({"i", "we", "someone", "somebody", "they", "he", "she"})
IRREGULAR_PAST = frozenset({"took", "made", "did", "ran", "went", "gave", "put", "shut", "brought", "spun", "set",
                            "got", "left", "kept", "broke", "saw", "forgot", "found", "began", "built", "sent"})
TIME_AGO = frozenset({"earlier", "ago", "yesterday", "before", "already", "last", "morning"})

# Negations and cancellations: a request that says not to act.
NEGATIONS = frozenset({"not", "never", "no", "nope", "without", "avoid", "refrain", "skip"})
CANCEL_PHRASES = ("never mind", "nevermind", "nvm", "scratch that", "forget it", "forget that", "hold off",
                  "cancel that", "ignore that", "wait no", "actually no", "no need", "do not", "not now",
                  "leave it", "leave alone", "keep it running", "keep running")
EXCLUDERS = frozenset({"not", "except", "excluding", "but"})

# A person talking about their own plans, not asking the bot.
INTENT_PHRASES = ("i will", "we will", "i am going to", "we are going to", "gonna", "going to", "we should",
                  "should we", "i should", "i might", "we might", "maybe we", "planning to", "plan to",
                  "thinking about", "thinking of", "about to", "i am", "we are", "heads up", "fyi", "i was",
                  "we were", "i have to", "will need to", "should i")
SCHEDULE_WORDS = frozenset({"tomorrow", "tonight", "later", "monday", "tuesday", "wednesday", "thursday",
                            "friday", "saturday", "sunday", "weekend", "midnight", "noon", "schedule",
                            "scheduled", "every", "cron", "nightly", "daily", "weekly"})

# "How do I …", "what does X do" → help with that command as the topic.
HOWTO_PREFIXES = ("how do i", "how do you", "how can i", "how would i", "how should i", "how to", "how does",
                  "how do we", "how can we", "what is the command", "what is the syntax", "whats the command",
                  "what command", "which command", "syntax for", "explain", "usage of", "usage for",
                  "help with", "help me with", "help on", "help me", "can i", "is there a way to",
                  "what is the way to", "teach me", "show me how", "tell me how", "what does", "how")
HOW_NOT_HOWTO = frozenset({"is", "are", "busy", "much", "many", "hot", "full", "loaded", "long", "old", "was"})

# Things the bot cannot do, with the plain answer.
UNSUPPORTED: dict[str, str] = {
    "drop": "drop or delete data", "truncate": "drop or delete data", "wipe": "wipe data",
    "purge": "purge data", "format": "format disks", "destroy": "destroy resources", "nuke": "destroy resources",
    "rm": "delete files", "delete": "delete things other than snapshots",
    "remove": "remove things other than snapshots", "erase": "delete data",
    "scale": "scale services", "resize": "resize VMs or disks", "upgrade": "upgrade software in place",
    "migrate": "run migrations", "provision": "create new machines",
    "create": "create resources other than snapshots", "clone": "clone VMs", "exec": "run arbitrary commands",
    "ssh": "open shells", "shell": "open shells", "execute": "run arbitrary commands", "grant": "change roles",
    "promote": "change roles", "demote": "change roles", "rotate": "rotate secrets", "flush": "flush caches",
    "clear": "clear caches or data", "prune": "prune images or volumes", "build": "build images",
    "install": "install software", "uninstall": "uninstall software", "patch": "patch systems",
    "reinstall": "reinstall software", "backup": "back up databases (I can snapshot VMs)",
    "vacuum": "maintain databases", "reindex": "maintain databases", "chmod": "change permissions",
    "sudo": "run commands as root", "email": "send email", "order": "order things", "buy": "buy things",
    "merge": "merge code", "revoke": "change roles or tokens",
    "reload": "reload configuration (restart the service instead)", "block": "block traffic",
    "ban": "ban users", "kick out": "manage users", "expose": "change networking", "reset": "reset things",
}
# Verbs that act on a snapshot when "snapshot" is in the text, else are refused above.
SNAPSHOT_DELETE = frozenset({"delete", "remove", "drop", "purge", "erase", "destroy", "rm", "prune", "clean",
                             "get rid of", "nuke", "trash", "discard", "clear"})
SNAPSHOT_TAKE = frozenset({"take", "make", "create", "grab", "cut", "capture", "add", "new", "backup",
                           "back up", "save"})
SNAPSHOT_LIST = frozenset({"list", "show", "which", "what", "any", "see", "view", "all", "existing", "available",
                           "have", "are", "there"})
SNAPSHOT_RESTORE = frozenset({"restore", "revert", "roll back", "rollback", "go back", "reset", "back to",
                              "return"})
# Verbs that power whole machines: refused when no service is named.
MACHINE_WORDS = frozenset({"vm", "vms", "server", "box", "machine", "host", "node", "lxc", "hypervisor",
                           "guest", "instance"})

# Words that carry no target and no command; everything else unrecognised is "unknown".
FILLER = frozenset(_words("""
a an the this that these those it its it's them their there here on in to from for at of with by into onto
please pls plz kindly thanks thank thx ty cheers can could would will you u me us we i my our your
is are am be been being do does did just quickly quick real now right asap again now, and then also too so
hey hi hello yo ok okay alright sure bot chatops ops team guys folks all everyone anyone
some any every one ones only whole entire current currently latest recent last
what which how when where why who whats whos
show tell give get let know see look list display print fetch pull view read find grab want need like mind
would like go ahead possible if thing things stuff bit little real
service services stack stacks container containers server box machine instance app application apps
env environment environments host node vm lines line entries entry rows row records events
again back over out up off via using use
need needs needed want wanted wants
lol lmao haha pls please? asap! thanks! ty!
real quickly fast soon now today
request requests
is are was were
as well too
okay ok cool great awesome nice
for me
first
also
instead
too
"""))
# Nouns that say what kind of name stands next to them ("the mail stack", "on staging2").
KIND_NOUNS: dict[str, str] = {
    "stack": "stack", "service": "service", "container": "service", "app": "service", "vm": "vm",
    "lxc": "vm", "guest": "vm", "env": "env", "environment": "env", "server": "env", "box": "env",
    "host": "env", "machine": "env",
}
TARGET_PREPOSITIONS = frozenset({"on", "in", "to", "at", "onto", "into"})

# Common words that typo correction must never turn into an inventory or command name.
NEVER_CORRECT = frozenset({"smart", "audio", "slack", "stock", "stuck", "state", "stats", "starts", "stars",
                           "stacked", "restarted", "started", "stored", "store", "story", "tests", "testy",
                           "delay", "deploys", "depot", "status", "statuses", "unlocks", "health", "wealth",
                           "locks", "looks", "block", "clock", "flock", "proud", "produce", "product", "probe",
                           "agents", "agency", "cached", "caches", "dashboard", "proxies", "tunnels", "stream",
                           "streams", "public", "publish", "logic", "logos", "there", "these", "those", "where",
                           "charts", "chart", "chats", "cheat", "check", "checks", "daily", "datum", "video",
                           "videos", "documents", "llama", "phone", "restore", "restores", "release", "relax", "lunch",
                           "request", "launches", "stamp", "stale", "stage", "stash"})

# Duration words → canonical `since` values the validator accepts (llm/values.py).
SINCE_WORDS: dict[str, str] = {
    "today": "1d", "yesterday": "2d", "this week": "1w", "last week": "1w", "past week": "1w",
    "this month": "30d", "last month": "30d", "past month": "30d", "last night": "1d", "this morning": "12h",
    "last hour": "1h", "past hour": "1h", "the hour": "1h", "an hour": "1h", "last day": "1d", "past day": "1d",
    "half an hour": "30m", "last minute": "1m", "past few hours": "3h", "last few hours": "3h",
    "last couple of hours": "2h", "past couple of hours": "2h", "last 24 hours": "1d", "past 24 hours": "1d",
    "this afternoon": "12h", "overnight": "1d", "since the weekend": "3d", "last few days": "3d",
    "past few days": "3d", "the last day": "1d", "last couple of days": "2d",
}
TIME_UNITS: dict[str, str] = {
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d", "w": "w", "wk": "w", "wks": "w", "week": "w", "weeks": "w",
}
NUMBER_WORDS: dict[str, int] = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "ten": 10, "twenty": 20,
    "fifteen": 15, "thirty": 30, "fifty": 50, "hundred": 100, "a hundred": 100, "couple": 2, "few": 3,
}
LINE_WORDS = frozenset({"lines", "line", "entries", "rows", "records", "events", "items", "messages"})

# Audit status words → the statuses the audit store records.
STATUS_WORDS: dict[str, str] = {
    "failed": "failed", "failures": "failed", "failing": "failed", "errored": "failed", "broken": "failed",
    "denied": "denied", "rejected": "denied", "pending": "pending_approval", "waiting": "pending_approval",
    "awaiting": "pending_approval", "succeeded": "succeeded", "successful": "succeeded", "expired": "expired",
    "refused": "refused", "cancelled": "cancelled", "canceled": "cancelled", "interrupted": "interrupted",
    "approved": "approved", "started": "started",
}

CONTRACTIONS: dict[str, str] = {
    "don't": "do not", "dont": "do not", "doesn't": "does not", "doesnt": "does not", "didn't": "did not",
    "didnt": "did not", "isn't": "is not", "isnt": "is not", "aren't": "are not", "arent": "are not",
    "wasn't": "was not", "wasnt": "was not", "weren't": "were not", "won't": "will not", "wont": "will not",
    "can't": "can not", "cant": "can not", "cannot": "can not", "shouldn't": "should not",
    "shouldnt": "should not", "wouldn't": "would not", "couldn't": "could not", "haven't": "have not",
    "hasn't": "has not", "what's": "what is", "whats": "what is", "how's": "how is", "hows": "how is",
    "where's": "where is", "who's": "who is", "it's": "it is", "i'm": "i am", "im": "i am", "let's": "let us",
    "lets": "let us", "that's": "that is", "there's": "there is", "i'll": "i will", "we'll": "we will",
    "you'll": "you will", "we're": "we are", "they're": "they are", "you're": "you are", "i've": "i have",
    "we've": "we have", "i'd": "i would", "we'd": "we would", "who'd": "who did", "y'all": "you all",
    "gimme": "give me", "lemme": "let me", "wanna": "want to", "gotta": "got to", "pls": "please",
    "plz": "please", "u": "you", "r": "are", "ur": "your", "rn": "now", "tmrw": "tomorrow",
    "shouldve": "should have",
}
GREETINGS = frozenset({"hey", "hi", "hello", "yo", "ok", "okay", "so", "um", "uh", "hmm", "alright", "morning",
                       "team", "folks", "guys", "all", "bot", "chatops", "ops", "@chatops", "@ops", "hiya",
                       "please", "quick", "question", "q"})
CHATTER = frozenset({"thanks", "thank you", "thx", "ty", "cheers", "lol", "nice", "great", "cool",
                     "good morning", "good night", "gm", "brb", "ok", "okay", "yes", "no", "yep", "sure", "hi",
                     "hello", "hey"})
