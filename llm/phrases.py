"""Generic English for the plain-language route (llm/nl.py): fillers, negations, time words.

Nothing here names a command: how people ask for a command is declared on the command
(`Phrasing` in commands/registry.py) and compiled by llm/lexicon.py.  These tables say
how people speak in general: politeness, negation, the past, someone else's words,
conditionals, durations.  Phrases are lower case, written after contraction expansion
("don't" → "do not").
"""

from __future__ import annotations


def _words(text: str) -> list[str]:
    return text.split()


# The last word of a particle verb ("push … out", "bring … back up"): such verbs may be split around their target.
PARTICLES = frozenset({"out", "back", "up", "down", "off", "on", "over"})
SPLIT_PARTICLES = frozenset({"out", "back", "up", "down", "off", "on", "over", "offline", "online"})

# Outcome words after a command noun: "the deploy went fine", "restart worked".
OUTCOME_WORDS = frozenset({"went", "worked", "failed", "succeeded", "finished", "completed", "done", "broke",
                           "crashed", "seems", "seemed", "looks", "looked", "fixed", "helped", "was", "were"})
# Words before a past form that make it an adjective or passive, not a statement ("what is deployed").
PASSIVE_BEFORE = frozenset({"is", "are", "be", "being", "currently", "still", "what", "get"})
# Words before a past form that make it a passive of the past: a report ("chat got rolled back on test",
# "grafana was stopped"), never a request ("get chat deployed" asks; "got" tells).
PASSIVE_PAST = frozenset({"got", "gotten", "was", "were", "been"})
# Subjects that make a past form a report of something done by a person.
SUBJECTS = frozenset({"i", "we", "you", "he", "she", "they", "someone", "somebody", "just", "already",
                      "finally", "have", "has", "had", "successfully", "anyone", "everyone", "nobody"})
REPORT_SUBJECTS = frozenset({"i", "we", "someone", "somebody", "they", "he", "she"})
IRREGULAR_PAST = frozenset({"took", "made", "did", "ran", "went", "gave", "put", "shut", "brought", "spun", "set",
                            "got", "left", "kept", "broke", "saw", "forgot", "found", "began", "built", "sent"})
AUXILIARIES = frozenset({"is", "are", "was", "were", "be", "has", "have", "had", "will", "would", "can", "could",
                         "does", "do", "did", "should", "shall", "may", "might", "must", "gets", "got", "goes"})
MODALS = frozenset({"will", "shall", "would", "can", "could", "should", "must", "might", "may", "gonna"})
TIME_AGO = frozenset({"earlier", "ago", "yesterday", "before", "already", "last", "morning"})
# Words of time before a clause or a noun phrase ("before I upgrade it", "after the deploy").
TIME_BEFORE = frozenset({"before", "after", "until", "while", "once", "during", "since"})

# Negations and cancellations: a request that says not to act.
NEGATIONS = frozenset({"not", "never", "no", "nope", "without", "avoid", "refrain", "skip", "nobody", "noone"})
CANCEL_PHRASES = ("never mind", "nevermind", "nvm", "scratch that", "forget it", "forget that", "hold off",
                  "forget about",
                  "cancel that", "ignore that", "wait no", "no wait", "actually no", "no need", "not now",
                  "leave it", "leave alone", "keep it running", "keep running")
EXCLUDERS = frozenset({"not", "except", "excluding", "but"})
# After a request, words that take it back ("deploy web to live — sorry, wrong channel", "lock prod... nah").
# An apology or a dismissal followed by a name is a correction instead ("restart redis on test… sorry, dev").
TAKE_BACK = ("disregard", "ignore me", "ignore this", "ignore that", "not for you", "wrong channel", "wrong chat",
             "wrong thread", "wrong window", "wrong room", "wrong tab", "wrong dm", "wrong person", "wrong place",
             "wrong bot", "wrong team", "just kidding", "kidding", "jk", "only joking", "just joking", "not really",
             "j/k", "let us wait", "lets wait", "let us hold off", "on second thought", "on second thoughts",
             "second thoughts", "maybe later", "not yet", "as if", "lol no", "haha no",
             # a deferral after the request: the asker will ask someone or look first
             "let me check", "let me ask", "let me confirm", "let me double check", "let me verify", "let me think",
             "let me look", "i need to check", "need to check with", "check with")
APOLOGIES = ("sorry", "oops", "whoops", "nah", "nope", "my bad", "my mistake")

# A person talking about their own plans, not asking the bot.
INTENT_PHRASES = ("i will", "we will", "i am going to", "we are going to", "gonna", "going to", "we should",
                  "should we", "i should", "i might", "we might", "maybe we", "planning to", "plan to",
                  "thinking about", "thinking of", "about to", "i am", "we are", "heads up", "fyi", "i was",
                  "we were", "i have to", "will need to", "should i",
                  # a decision or a rule of the team's, reported ("in the retro we agreed to snapshot before …")
                  "agreed to", "decided to", "the plan is to", "the rule is to", "policy is to",
                  # notes and reminders: a thing to do later, not a request now
                  "remind me to", "remind us to", "remind me", "remind us", "don't forget to", "dont forget to",
                  "do not forget to", "remember to", "note to self", "todo", "to-do", "fixme", "action item",
                  "reminder", "note", "memo")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SCHEDULE_WORDS = frozenset({"tomorrow", "tonight", "later", "monday", "tuesday", "wednesday", "thursday",
                            "friday", "saturday", "sunday", "weekend", "midnight", "noon", "schedule",
                            "scheduled", "every", "cron", "nightly", "daily", "weekly"})

# "How do I …", "what does X do" → help with that command as the topic.
HOWTO_PREFIXES = ("how do i", "how do you", "how can i", "how would i", "how should i", "how to", "how does",
                  "how do we", "how can we", "what is the command", "what is the syntax", "whats the command",
                  "what command", "which command", "syntax for", "explain", "usage of", "usage for",
                  "help with", "help me with", "help on", "help me", "can i", "is there a way to",
                  "what is the way to", "teach me", "show me how", "tell me how", "what does", "how",
                  "give me the help page for", "show me the help page for", "show me the help for",
                  "the help page for", "help page for", "the help for", "the docs for", "what are the args for",
                  "what are the arguments for",
                  "what args does", "what arguments does", "args for", "arguments for", "explain how",
                  "could you explain", "can you explain", "please explain", "could you tell me how",
                  "can you tell me how", "could you show me how", "can you show me how")
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
# Verbs that power whole machines: refused when no service is named.
MACHINE_WORDS = frozenset({"vm", "vms", "server", "box", "machine", "host", "node", "lxc", "hypervisor",
                           "guest", "instance"})

# Words that carry no target and no command; everything else unrecognised is "unknown".
# politeness and address of the team's other languages: said to the bot, never a colleague's name, never a
# word of the request ("Sumimasen, could you …", "bhai please restart …", "restart postgres on test, dzięki")
FOREIGN_POLITE = frozenset(_words("""
sumimasen onegaishimasu onegai arigato arigatou domo oi oye bhai yaar ji bitte danke entschuldigung proszę prosze
dzięki dzieki namaste gracias obrigado obrigada merci grazie prego salve vielen dank kudasai
"""))
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
ugh argh meh sigh omg wtf ffs damn dang geez jeez welp oof yikes whoops
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
""")) | FOREIGN_POLITE
# English function words and politeness: never a typo of a name ("about" is no "abort"), never the value of
# an argument ("restore the dev vm pls" names no snapshot "pls").
FUNCTION_WORDS = frozenset(_words("""
a an the this that these those some any each every no none all both either neither such what which whose
i me my mine we us our ours you your yours he him his she her hers it its they them their theirs one someone
somebody anyone anybody everyone everybody nobody something anything everything nothing
about above across after against along among around as at before behind below beneath beside besides between
beyond by down during except for from in inside into like near of off on onto out outside over past per since
than through throughout till to toward towards under underneath until unto up upon via with within without
and but or nor so yet then also plus because although though while whereas unless if whether once when
where why how whenever wherever
am is are was were be been being do does did done have has had having will would shall should can could
may might must ought let lets
not never yes yeah yep nope nah ok okay sure thanks thank thx ty cheers please pls plz kindly sorry oops
hey hi hello yo lol haha hmm uh um well just really very quite too again still already ever even only
here there now today tonight tomorrow yesterday soon later asap
"""))
# Words for "all of them" where a target belongs: no name, and nothing the bot does to everything at once.
EVERYTHING = frozenset({"everything", "anything", "something", "all", "everyone"})
# Never a value even where one was written in its place: politeness, interjections, articles, pronouns.
NOT_VALUES = frozenset(_words("""
please pls plz kindly thanks thank thx ty cheers
a an the this that these those it its them they he she we i you me us my our your their there here now asap
thing things stuff whatever something
"""))
# Words that describe a thing by its place in time or its worth rather than name it ("an earlier snapshot",
# "the previous one", "the last good snapshot"): never a value unless a naming word introduces them
# ("call it latest").
RELATIVE = frozenset(_words("""
earlier earliest older oldest newer newest previous prior last latest recent former next first second third
current original initial good better best bad worse worst known-good last-known-good working older-ish same
"""))
# Adjectives before a noun: a command word after one is a noun ("a big launch", "the broken deploy").
ADJECTIVES = frozenset(_words("""
big small huge major minor new old fresh full partial broken failed bad botched pending running ongoing planned
scheduled weekly nightly daily monthly emergency urgent manual automatic usual regular final whole entire
"""))
# Words that strengthen the word after them ("the very last snapshot", "the most recent one").
INTENSIFIERS = frozenset({"very", "most", "least", "really", "pretty", "quite", "super", "much"})
# Of those, the words that place a thing in time relative to now: no value even typed in a value's place
# ("restore rumpledev latest"); "first" or "good" there may be a name.
RELATIVE_TIME = frozenset(_words("""
earlier earliest older oldest newer newest previous prior last latest recent
"""))
# Articles and quantifiers that describe rather than point at one named thing ("a clean snapshot").
INDEFINITE = frozenset({"a", "an", "another", "some", "any", "one", "whichever", "whatever"})
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
                           "request", "launches", "stamp", "stale", "stage", "stash", "looked", "looking"})

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
# past verbs of doing something to a thing, whatever it was ("who touched prod", "who messed with the data stack")
TOUCHED = frozenset({"touched", "changed", "modified", "messed", "tinkered", "fiddled", "edited", "poked",
                     "meddled"})
# the participle of the plain verb "do", which is also a status word ("done")
DO_PARTICIPLES = frozenset({"done"})
# words that open a question about things, never a verb over a noun ("what rollbacks happened")
QUESTION_WORDS = frozenset({"what", "which", "who", "whose", "when", "where", "how", "why", "whats", "any"})
# verbs before an amount of time that say how long something took, not since when ("took 40 seconds")
TOOK = frozenset({"took", "takes", "taking", "lasted", "lasts", "spent"})
# a time to come that names no time: the request is for later, and later is not said
VAGUE_LATER = ("at some point", "sometime", "some time soon", "eventually", "one of these days", "some day",
               "someday", "down the line", "at some stage", "soonish", "later this week", "later this month",
               "in the coming days", "when we have time", "when there is time")
# words that open a message set off by a comma and are no one's name ("yes, restart it", "ugh, redis again")
INTERJECTIONS = frozenset({"yes", "yeah", "yep", "yup", "sure", "fine", "alright", "right", "ok", "okay", "k", "cool",
                           "great", "nice", "thanks", "thx", "well", "anyway", "anyways", "actually", "also", "now",
                           "hmm", "hm", "ugh", "argh", "damn", "dang", "oops", "whoops", "sigh", "lol", "lmao", "meh",
                           "honestly", "seriously", "urgent", "urgently", "quick", "again", "morning", "evening",
                           "afternoon", "welp", "agreed", "done", "perfect", "awesome", "excellent", "good", "ready",
                           "confirmed", "update", "followup", "ah", "oh", "aha", "wow", "whoa", "phew", "yikes",
                           "nope", "no", "nah", "wait", "hold", "sorry", "apologies", "ps", "fyi", "btw", "first",
                           "second", "finally", "then", "next", "please", "pls", "plz", "today", "tonight",
                           "tomorrow", "yesterday", "later", "asap", "hey", "hi", "hello", "yo", "guys", "folks",
                           "team", "all", "everyone", "bot", "chatops", "ops", "question", "q", "reminder", "so",
                           "and", "but", "or", "otherwise", "meanwhile", "incidentally", "frankly", "obviously",
                           "clearly", "basically", "ideally", "hopefully", "luckily", "unfortunately",
                           "sadly"}) | FOREIGN_POLITE
# what a thing is doing or how far it got, said of a command's noun ("snapshot still running"), and those
# of them that say so with no word between ("snapshot running")
THINGS_STATE = frozenset({"running", "pending", "ongoing", "underway", "happening", "going", "stuck", "hanging",
                          "done", "finished", "complete", "completed", "queued", "waiting", "progress", "halfway"})
THINGS_STATE_ALONE = frozenset({"running", "pending", "underway", "queued"})
# times of day said by name ("since midnight", "since lunch")
CLOCK_WORDS: dict[str, str] = {"midnight": "0:00", "noon": "12:00", "midday": "12:00", "lunch": "12:00",
                               "lunchtime": "12:00"}
TIME_UNITS: dict[str, str] = {
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d", "w": "w", "wk": "w", "wks": "w", "week": "w", "weeks": "w",
}
NUMBER_WORDS: dict[str, int] = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "ten": 10, "twenty": 20,
    "fifteen": 15, "thirty": 30, "fifty": 50, "hundred": 100, "a hundred": 100, "couple": 2, "few": 3,
    "seven": 7, "eight": 8, "nine": 9, "twelve": 12, "dozen": 12, "forty": 40, "sixty": 60, "eighty": 80,
}
LINE_WORDS = frozenset({"lines", "line", "entries", "rows", "records", "events", "items", "messages"})

CONTRACTIONS: dict[str, str] = {
    "b4": "before",
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
                       "please", "quick", "question", "q",
                       # greetings of the team's other languages, never a colleague's name ("hallo, please …")
                       "hallo", "hola", "ciao", "salut", "moin", "servus", "hej", "ahoj", "bonjour", "howdy", "evening",
                       "afternoon", "heya", "sup"}) | FOREIGN_POLITE
CHATTER = frozenset({"thanks", "thank you", "thx", "ty", "cheers", "lol", "nice", "great", "cool",
                     "good morning", "good night", "gm", "brb", "ok", "okay", "yes", "no", "yep", "sure", "hi",
                     "hello", "hey"})

# -- modality: the ways a message mentions an action without asking for it ---------------------------

# Someone else's words: "bob wants me to restart redis", "someone in #general wrote restart postgres".
REPORT_VERBS = frozenset({"wants", "wanted", "asked", "asks", "said", "says", "wrote", "writes", "told", "tells",
                          "mentioned", "mentions", "suggested", "suggests", "posted", "posts", "reported",
                          "claims", "claimed", "thinks", "thought", "requested", "tweeted", "commented",
                          "replied", "messaged", "typed", "proposed", "proposes", "recommended", "recommends",
                          "insists", "insisted", "shouted", "yelled", "complained", "demanded", "demands",
                          # the progressive: "erin keeps saying we need to …", "bob is asking us to …"
                          "saying", "asking", "telling", "suggesting", "requesting", "insisting", "begging",
                          "demanding", "proposing", "recommending", "complaining", "shouting", "yelling",
                          "mentioning", "claiming", "nagging", "pestering", "bugging", "begged", "nagged"})
# Words that put an event in the past ("after yesterday's outage", "after the crash this morning").
PAST_TIME = (TIME_AGO - {"before", "already"}) | {"previous", "overnight", "yesterdays"}
# Short questions after a request that put it up for discussion ("restart n8n on prod? or is that overkill").
UP_FOR_DISCUSSION = ("not sure about it", "not sure about this", "not sure about that", "unsure about it", "idk",
                     "i doubt it", "not convinced", "or is that", "or would that", "or should we", "or should i",
                     "or not", "or is it", "or wait", "why would", "why should", "why on earth",
                     "good idea", "bad idea", "thoughts", "overkill", "too risky", "any objections", "yay or nay",
                     "is that ok", "is that okay", "is that safe", "is that wise", "makes sense", "does that help")
# Someone's request passed on to the bot by the speaker: asked of the bot, not reported ("I was told to
# ask you: …"); and the speaker asking in so many words ("I am asking you to …").
SENT_TO_ME = ("told to ask you", "told me to ask you", "asked me to ask you", "asked to ask you", "told i can ask you",
              "told we can ask you", "said i can ask you", "said we can ask you")
ASKING_MYSELF = ("i am asking", "we are asking", "i am requesting", "we are requesting", "i am begging")
# Gratitude for something done ("thanks for restarting grafana earlier").
THANKS_FOR = ("thanks for", "thank you for", "thx for", "ty for", "cheers for", "appreciate you", "kudos for",
              "nice job", "good job", "great job", "nice work", "good work", "well done")
# Words that say the text is read out or an example, not asked for ("that's step 4 of the onboarding doc").
SHOWN_PHRASES = ("reading it out", "reading out", "reading this out", "just reading", "read it out",
                 "just an example", "as an example", "for example", "for instance", "example only",
                 "just quoting", "i am quoting", "quoting the", "quote from", "that is step", "this is step",
                 "is step one", "from the runbook", "in the runbook", "from the onboarding", "from the docs",
                 "from the wiki", "in the wiki", "copied from", "pasted from")
# Nouns for someone's words: after another person's possessive they report ("bob's message was: …").
REPORT_NOUNS = frozenset({"message", "msg", "note", "comment", "suggestion", "request", "ask", "words", "reply",
                          "answer", "text", "idea", "advice", "proposal", "instructions", "instruction", "dm",
                          "email", "mail", "ticket", "post", "take", "recommendation", "opinion", "plan"})
REPORT_PHRASES = ("according to", "on behalf of", "was told to", "were told to", "been told to",
                  "was asked to", "were asked to", "been asked to", "the alert says", "the runbook says")
# Questions about whether to act: "would it hurt to …", "is now a bad time to …", "should we …".
WHETHER_PHRASES = ("whether", "idk if", "i do not know if", "dunno if", "not sure if", "unsure if", "no idea if",
                   "i wonder if", "wondering if", "not sure whether",
                   "is it safe", "is it ok", "is it okay", "is it fine", "is it wise", "is it smart",
                   "is it risky", "is it dangerous", "is it a good idea", "is it a bad idea", "would it hurt",
                   "would it be bad", "would it be safe", "would it be ok", "would it be okay", "would it break",
                   "will it hurt", "will it break", "does it hurt", "is now a good time", "is now a bad time",
                   "is this a good time", "is this a bad time", "good time to", "bad time to", "any reason not to",
                   "any reason to", "do you think", "do we need to", "do i need to", "should we", "should i",
                   "shall we", "shall i", "ok to", "okay to", "safe to", "good idea to", "bad idea to",
                   "better to", "worth it to", "worth it", "is it worth", "what happens if", "what would happen if",
                   "what happens when", "what if", "what about if", "is there any risk", "any risk in",
                   "would you recommend", "do you recommend", "can it hurt", "could it hurt", "does it make sense",
                   "would it make sense", "is it allowed", "am i allowed to", "are we allowed to",
                   "is it necessary", "necessary to", "need we", "ought we", "ought to", "must we", "do we have to",
                   "do we really", "do we need a", "do we need an", "do i need a", "do i need an", "do we want to",
                   "do we want a",
                   # asking the room's leave for one's own act ("anyone mind if I stop rtmp on dev?")
                   "mind if i", "mind if we", "ok if i", "okay if i", "ok if we", "okay if we", "alright if i",
                   "fine if i", "cool if i", "objections if i", "objection if i", "any objections to",
                   # worth doing?
                   "worth", "would it be worth")
# Auxiliaries that open a yes/no question; with a subject other than "you" and an action after, it asks whether.
QUESTION_AUX = frozenset({"is", "are", "was", "would", "will", "should", "could", "do", "does", "might", "may",
                          "shall", "must"})
QUESTION_SUBJECTS = frozenset({"it", "now", "this", "that", "there", "we", "i", "anyone", "everyone", "they",
                               "he", "she", "one"})
# Conditionals and hypotheticals: "if staging breaks we'd roll chat back".
CONDITIONALS = ("if", "unless", "in case", "suppose", "supposing", "imagine", "assuming", "provided",
                "as soon as", "whenever", "otherwise", "in the event", "hypothetically", "theoretically",
                "worst case", "in the worst case", "plan b", "as a fallback", "failing that")
# Verbs before "if" that make it "whether" ("want to know if …", "check if nginx is up").
WHETHER_VERBS = frozenset({"know", "see", "check", "wonder", "wondering", "wondered", "ask", "asking", "tell",
                           "out", "sure", "unsure", "curious", "verify", "confirm", "determine", "decide", "figure",
                           "idea", "clue", "knows", "checking", "seeing"})
# Words before "if" that make it a remark, not a condition ("it's fine if it drops sessions").
CONCESSIVE = frozenset({"fine", "ok", "okay", "alright", "acceptable", "problem", "worries", "care", "mind", "matter",
                        "cool", "even"})
# Politeness that looks like a condition and is not one.
POLITE_CONDITIONS = ("if you can", "if you could", "if possible", "if you have a sec", "if you have a second",
                     "if you have a minute", "if you have a moment", "if you get a chance", "if you have time",
                     "if you do not mind", "if that is ok", "if that is okay", "if that is fine",
                     "if it is not too much trouble", "if you would", "if you please", "when you get a chance",
                     "when you can", "when you have a moment", "when you have a sec", "when you have time",
                     "when you get a sec", "when you get a minute", "when you are free", "once you have a sec",
                     "once you have a second", "once you have a moment", "once you have a minute", "once you can",
                     "once you get a chance", "once you are free", "as soon as you can", "as soon as possible",
                     "whenever you can", "whenever you get a chance", "whenever you have a moment",
                     "whenever you have time", "whenever convenient", "if you get a sec", "if you get a minute")
# A subject followed by "would" (not "would like"): a hypothetical ("we'd roll chat back").
HYPOTHETICAL_SUBJECTS = frozenset({"we", "i", "they", "he", "she", "you", "it", "that", "someone", "people"})
WOULD_POLITE = frozenset({"like", "love", "appreciate", "prefer", "be", "you"})
# Words that replace the target said before them ("restart redis on test… actually make that dev").
CORRECTION_MARKERS = ("actually make that", "actually make it", "actually", "i mean", "make that", "make it",
                      "sorry", "correction", "rather", "instead of that", "i meant", "err", "erm", "or rather")
# Words before "to" that make the next word a verb ("QA wants to test", "we need to check"): an infinitive.
INFINITIVE_LEADS = frozenset({"want", "wants", "wanted", "need", "needs", "needed", "going", "have", "has", "had",
                              "try", "tries", "trying", "able", "about", "like", "likes", "love", "hope", "hoping",
                              "plan", "plans", "planning", "order", "meant", "supposed", "ready", "used", "got",
                              "gotta", "wish", "is", "are"})
# Verbs that call a running action off: governing a command's noun they ask for nothing we do.
CANCEL_VERBS = frozenset({"scrap", "abort", "cancel", "call off", "kill", "halt", "stop", "nix", "ditch", "pause",
                          "interrupt", "terminate", "postpone", "delay", "skip", "hold", "block", "prevent",
                          "suspend", "freeze", "drop"})
# Verbs that stand for "do the thing the noun names": "n8n needs a restart", "trigger a deploy".
LIGHT_VERBS = frozenset({"appreciate", "do", "run", "trigger", "perform", "kick off", "start", "begin", "launch",
                         "initiate", "need", "needs", "want", "wants", "give", "get", "queue", "fire off",
                         "go ahead with", "proceed with", "execute", "schedule", "make", "take", "could use",
                         "requires", "require", "deserves", "put", "place", "slap", "issue", "do with",
                         "could do with"})
# The last word of a polite lead that makes a past participle a request ("can we get chat deployed",
# "I'd like the gpu-metrics stack deployed to the gpu box", "I want nginx restarted").
CAUSATIVE_VERBS = frozenset({"get", "have", "like", "want", "need"})
# Words between a verb and the noun it governs: "undo the last chat deploy".
DETERMINERS = frozenset({"the", "a", "an", "this", "that", "these", "those", "my", "our", "your", "his", "her",
                         "their", "its", "last", "latest", "previous", "recent", "new", "old", "current",
                         "whole", "entire", "any", "some", "all", "quick", "fresh", "full", "another", "second",
                         "first", "one", "two", "today", "yesterday", "broken", "failed", "bad", "botched", "pending",
                         "running", "ongoing", "planned", "scheduled", "big", "small", "of", "please", "earlier",
                         "prior", "former", "older", "good", "working", "stable", "known", "original", "whatever",
                         "whichever"})
# Prepositions that make a command noun a time or topic reference, not a request ("restart after the deploy").
REFERENCE_PREPOSITIONS = frozenset({"before", "after", "during", "since", "until", "till", "while", "once",
                                    "for", "about", "from", "with", "by", "on", "in", "at", "to", "into",
                                    "without", "like", "than", "between", "regarding", "re"})
# Verbs of showing: governing a change's noun they ask about changes made ("show failed deploys this week").
# Who may be asked about in "did X restart …" / "what has X deployed" besides the team's own names ("I" is the
# asker: `ME`).
PAST_SUBJECTS = ("anyone", "anybody", "someone", "somebody", "you", "we", "they", "i")
DISPLAY_VERBS = ("show", "list", "see", "view", "display", "find", "pull up", "get me", "give me", "check", "look at",
                 "show me", "count")
# Verbs that change things: over what a read command shows, something the bot cannot do ("add 2 more GPUs").
CHANGE_VERBS = frozenset({"add", "remove", "delete", "attach", "detach", "install", "uninstall", "increase",
                          "decrease", "raise", "lower", "buy", "order", "replace", "swap", "upgrade", "downgrade",
                          "resize", "create", "destroy", "drop", "move", "set", "change", "edit", "rename", "assign",
                          "allocate", "plug", "unplug", "disable", "enable"})
# Verbs that hand something to someone: over a read command's noun with someone else as the receiver, a change
# ("give dave admin rights"); with "me"/"us" a request to be shown ("give me the logs").
GIVING_VERBS = frozenset({"give", "grant", "hand", "assign", "award", "lend"})
# Words of quantity between a verb and its noun ("add 2 more GPUs").
QUANTITIES = frozenset({"more", "extra", "additional", "fewer", "less", "several", "many", "few", "couple"})
# Prepositions of place: a read command's noun after one is what is looked into ("waiting in the vllm queue").
LOCATIVES = frozenset({"in", "on", "inside", "within", "into"})
# Words that end a clause: a verb on one side does not govern a noun on the other.
CLAUSE_JOINERS = frozenset({"and", "then", "but", "so", "or", "also", "plus", "because", "although", "though"})
# Pasted material: alerts, log lines, stack traces, shell prompts, code.
LOG_LEVELS = frozenset({"ERROR", "WARN", "WARNING", "INFO", "DEBUG", "FATAL", "CRITICAL", "CRIT", "ERR", "PANIC",
                        "TRACE", "NOTICE", "EMERG", "ALERT"})
# Verbs of beginning and ending: an -ing form after one is an activity, not a request ("the dashboards
# have stopped refreshing").
ASPECTUAL = frozenset({"stopped", "started", "keeps", "kept", "began", "begun", "finished", "quit", "stops",
                       "starts", "keep", "stop", "start", "resumed", "continues", "continued"})
# A dash standing alone between words ("ok — restart grafana"): it breaks the clause as a comma would.
DASHES = frozenset({"—", "–", "-", "--"})
