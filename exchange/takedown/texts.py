"""The words of a notice, per language: English, Dutch and German; English for any other.

A notice is read by an abuse desk, often in its own language, so the human part is written in
the contact's language (``language`` in the directory) when there is a translation here. The
machine-readable parts (X-ARF, JSON) are the same in every language. Each text is a
``str.format`` template; the renderer fills in the fields named in braces.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

DEFAULT_LANGUAGE = "en"

_EN = {
    "subject": "Notice: child sexual abuse material on your network [{ref}]",
    "subject_escalated": "Escalation: child sexual abuse material still online [{ref}]",
    "greeting": "Dear abuse team,",
    "greeting_named": "Dear {name},",
    "intro": (
        "We are writing on behalf of {hotline}, a hotline that receives reports of child "
        "sexual abuse material on the internet. Our analysts assessed the content at the "
        "URLs below as child sexual abuse material, which is illegal. Our checks place it "
        "on your network, and it was online when this notice was written."
    ),
    "request": (
        "Please remove it without delay, and preserve any data law enforcement may ask for."
    ),
    "urls": "URLs ({count}):",
    "since": "online since {since}",
    "since_unknown": "online",
    "hosted_by": "hosted by {hoster}",
    "case": "case {case}",
    "baseline": "category: baseline (illegal under INTERPOL's baseline criteria)",
    "national": "category: national (illegal under national law)",
    "reminder": (
        "{previous} earlier notice(s) about these URLs did not lead to their removal: the "
        "content was still online at our last check."
    ),
    "escalation": (
        "Our notices to {address} have not led to the removal of this content, so we are "
        "writing to you as the escalation contact."
    ),
    "reply": (
        "You can reply to this message ({reply_to}); please keep the reference {ref} in the "
        "subject."
    ),
    "machine": (
        "The machine-readable parts of this message list the same URLs: one X-ARF report "
        "(report.txt) per URL, and a JSON file (notice.json)."
    ),
    "recheck": (
        "We check the URLs again regularly and will notify you again while the content "
        "stays online."
    ),
    "closing": "Kind regards,",
}

_NL = {
    "subject": "Melding: materiaal van seksueel misbruik van kinderen op uw netwerk [{ref}]",
    "subject_escalated": (
        "Escalatie: materiaal van seksueel misbruik van kinderen nog steeds online [{ref}]"
    ),
    "greeting": "Geachte heer/mevrouw,",
    "greeting_named": "Geachte {name},",
    "intro": (
        "Wij schrijven u namens {hotline}, een meldpunt voor materiaal van seksueel misbruik "
        "van kinderen op internet. Onze analisten hebben de inhoud op de onderstaande URL's "
        "beoordeeld als materiaal van seksueel misbruik van kinderen; dit is strafbaar. "
        "Volgens onze controles staat deze inhoud op uw netwerk, en deze was online toen "
        "deze melding werd opgesteld."
    ),
    "request": (
        "Wij verzoeken u de inhoud onverwijld te verwijderen en gegevens te bewaren die de "
        "politie kan opvragen."
    ),
    "urls": "URL's ({count}):",
    "since": "online sinds {since}",
    "since_unknown": "online",
    "hosted_by": "gehost door {hoster}",
    "case": "dossier {case}",
    "baseline": "categorie: baseline (strafbaar volgens de INTERPOL-criteria)",
    "national": "categorie: nationaal (strafbaar volgens nationaal recht)",
    "reminder": (
        "{previous} eerdere melding(en) over deze URL's hebben niet tot verwijdering geleid: "
        "bij onze laatste controle was de inhoud nog online."
    ),
    "escalation": (
        "Onze meldingen aan {address} hebben niet tot verwijdering van deze inhoud geleid. "
        "Daarom wenden wij ons tot u als escalatiecontact."
    ),
    "reply": (
        "U kunt op dit bericht antwoorden ({reply_to}); vermeld daarbij het kenmerk {ref} in "
        "het onderwerp."
    ),
    "machine": (
        "De machineleesbare delen van dit bericht bevatten dezelfde URL's: per URL een "
        "X-ARF-rapport (report.txt), en een JSON-bestand (notice.json)."
    ),
    "recheck": (
        "Wij controleren de URL's regelmatig opnieuw en sturen u een nieuwe melding zolang "
        "de inhoud online blijft."
    ),
    "closing": "Met vriendelijke groet,",
}

_DE = {
    "subject": "Hinweis: Darstellungen sexuellen Kindesmissbrauchs in Ihrem Netz [{ref}]",
    "subject_escalated": (
        "Eskalation: Darstellungen sexuellen Kindesmissbrauchs weiterhin abrufbar [{ref}]"
    ),
    "greeting": "Sehr geehrte Damen und Herren,",
    "greeting_named": "Sehr geehrte Damen und Herren ({name}),",
    "intro": (
        "wir schreiben Ihnen im Namen von {hotline}, einer Beschwerdestelle für Darstellungen "
        "sexuellen Kindesmissbrauchs im Internet. Unsere Analystinnen und Analysten haben "
        "die Inhalte unter den folgenden URLs als Darstellungen sexuellen Kindesmissbrauchs "
        "eingestuft; sie sind strafbar. Nach unseren Prüfungen liegen sie in Ihrem Netz und "
        "waren bei Erstellung dieses Hinweises abrufbar."
    ),
    "request": (
        "Bitte entfernen Sie die Inhalte unverzüglich und sichern Sie Daten, die "
        "Strafverfolgungsbehörden anfordern könnten."
    ),
    "urls": "URLs ({count}):",
    "since": "abrufbar seit {since}",
    "since_unknown": "abrufbar",
    "hosted_by": "gehostet von {hoster}",
    "case": "Fall {case}",
    "baseline": "Kategorie: Baseline (strafbar nach den INTERPOL-Kriterien)",
    "national": "Kategorie: national (strafbar nach nationalem Recht)",
    "reminder": (
        "{previous} frühere(r) Hinweis(e) zu diesen URLs haben nicht zur Entfernung geführt: "
        "bei unserer letzten Prüfung waren die Inhalte weiterhin abrufbar."
    ),
    "escalation": (
        "Unsere Hinweise an {address} haben nicht zur Entfernung dieser Inhalte geführt. "
        "Deshalb wenden wir uns an Sie als Eskalationskontakt."
    ),
    "reply": (
        "Sie können auf diese Nachricht antworten ({reply_to}); bitte behalten Sie dabei die "
        "Referenz {ref} im Betreff."
    ),
    "machine": (
        "Die maschinenlesbaren Teile dieser Nachricht enthalten dieselben URLs: je URL einen "
        "X-ARF-Bericht (report.txt) sowie eine JSON-Datei (notice.json)."
    ),
    "recheck": (
        "Wir prüfen die URLs regelmäßig erneut und benachrichtigen Sie wieder, solange die "
        "Inhalte abrufbar bleiben."
    ),
    "closing": "Mit freundlichen Grüßen",
}

TEXTS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "en": MappingProxyType(_EN),
        "nl": MappingProxyType(_NL),
        "de": MappingProxyType(_DE),
    }
)


def texts_for(language: str) -> tuple[str, Mapping[str, str]]:
    """The language a notice is written in, and its texts (English when there is none)."""
    found = TEXTS.get(language.lower())
    if found is None:
        return DEFAULT_LANGUAGE, TEXTS[DEFAULT_LANGUAGE]
    return language.lower(), found
