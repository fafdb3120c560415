# ruff: noqa: RUF001  (Cyrillic and Turkish letters are the point of this table)
"""What WhatsApp writes for system lines and placeholders, per phone language (spec 5).

The table is data: one ``Wordings`` per language, each a list of templates. ``{actor}``,
``{target}`` and ``{value}`` stand for names and group subjects; quotes around ``{value}``
may be any of the quote characters WhatsApp uses (``"“”«»„``), so a template writes
``"{value}"``. The classifiers in ``_system`` and ``_body`` are compiled from it, and
docs/IMPORT.md lists it, so adding a language is adding an entry here.

English and German also keep hand-written rules in ``_system`` for the forms with optional
parts (``changed the group name from "a" to "b"``, timers, security codes).

Placeholders are matched after direction marks are removed and, for ``omitted`` and
``deleted``, case-insensitively: Android writes ``<Media omitted>`` and some phones
``<media omitted>``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ._records import MediaType
from ._records import SystemEventKind as K

M = MediaType


class Wordings(NamedTuple):
    """One language's wordings; see the module documentation for the template syntax."""

    encryption: tuple[str, ...]  # a fragment of the end-to-end notice, matched anywhere
    created: tuple[str, ...]  # with {value}: created group "X"
    created_this: tuple[str, ...]  # without a name: created this group
    added: tuple[str, ...]
    removed: tuple[str, ...]
    left: tuple[str, ...]
    subject: tuple[str, ...]
    icon: tuple[str, ...]
    description: tuple[str, ...]
    number: tuple[str, ...]
    deleted: tuple[str, ...]  # whole bodies
    omitted: dict[str, MediaType]  # whole bodies, Android ``<…>`` and iOS ``… omitted``
    poll: str  # the first line of a poll
    option: str  # the start of each option line
    view_once: tuple[str, ...]  # whole bodies
    missed_call: tuple[str, ...]  # starts of missed-call lines


TABLE: dict[str, Wordings] = {
    "en": Wordings(
        encryption=("end-to-end encrypted",),
        created=('{actor} created group "{value}"', '{actor} created the group "{value}"'),
        created_this=("{actor} created this group",),
        added=("{actor} added {target}",),
        removed=("{actor} removed {target}",),
        left=("{actor} left",),
        subject=('{actor} changed the subject to "{value}"',),
        icon=("{actor} changed this group's icon",),
        description=("{actor} changed the group description",),
        number=("{actor} changed their phone number to a new number",),
        deleted=("This message was deleted", "You deleted this message"),
        omitted={
            "<Media omitted>": M.UNKNOWN,
            "<Video message omitted>": M.VIDEO_NOTE,
            "<Video note omitted>": M.VIDEO_NOTE,
            "image omitted": M.IMAGE,
            "video omitted": M.VIDEO,
            "audio omitted": M.AUDIO,
            "sticker omitted": M.STICKER,
            "GIF omitted": M.GIF,
            "Contact card omitted": M.CONTACT,
            "document omitted": M.DOCUMENT,
        },
        poll="POLL:",
        option="OPTION:",
        view_once=("View once message", "<View once message omitted>"),
        missed_call=("Missed voice call", "Missed video call", "Missed group voice call"),
    ),
    "de": Wordings(
        encryption=("Ende-zu-Ende-verschlüsselt",),
        created=('{actor} hat die Gruppe "{value}" erstellt',),
        created_this=("{actor} hat diese Gruppe erstellt", "{actor} hat die Gruppe erstellt"),
        added=("{actor} hat {target} hinzugefügt",),
        removed=("{actor} hat {target} entfernt",),
        left=("{actor} hat die Gruppe verlassen",),
        subject=('{actor} hat den Betreff zu "{value}" geändert',),
        icon=("{actor} hat das Gruppenbild geändert",),
        description=("{actor} hat die Gruppenbeschreibung geändert",),
        number=("{actor} hat zu einer neuen Nummer gewechselt",),
        deleted=("Diese Nachricht wurde gelöscht", "Du hast diese Nachricht gelöscht"),
        omitted={
            "<Medien ausgeschlossen>": M.UNKNOWN,
            "Bild weggelassen": M.IMAGE,
            "Video weggelassen": M.VIDEO,
            "Audio weggelassen": M.AUDIO,
            "Sticker weggelassen": M.STICKER,
            "GIF weggelassen": M.GIF,
            "Kontaktkarte weggelassen": M.CONTACT,
            "Dokument weggelassen": M.DOCUMENT,
        },
        poll="UMFRAGE:",
        option="OPTION:",
        view_once=("Einmalansicht",),
        missed_call=("Verpasster Sprachanruf", "Verpasster Videoanruf"),
    ),
    "es": Wordings(
        encryption=("cifrados de extremo a extremo",),
        created=('{actor} creó el grupo "{value}"',),
        created_this=("{actor} creó este grupo",),
        added=("{actor} añadió a {target}", "{actor} agregó a {target}"),
        removed=("{actor} eliminó a {target}",),
        left=("{actor} salió del grupo", "{actor} salió"),
        subject=('{actor} cambió el asunto a "{value}"',),
        icon=("{actor} cambió el ícono de este grupo", "{actor} cambió el icono de este grupo"),
        description=("{actor} cambió la descripción del grupo",),
        number=("{actor} cambió su número de teléfono a uno nuevo",),
        deleted=("Se eliminó este mensaje", "Eliminaste este mensaje"),
        omitted={
            "<Multimedia omitido>": M.UNKNOWN,
            "imagen omitida": M.IMAGE,
            "video omitido": M.VIDEO,
            "audio omitido": M.AUDIO,
            "sticker omitido": M.STICKER,
            "GIF omitido": M.GIF,
            "tarjeta de contacto omitida": M.CONTACT,
            "documento omitido": M.DOCUMENT,
        },
        poll="ENCUESTA:",
        option="OPCIÓN:",
        view_once=("Ver una vez",),
        missed_call=("Llamada perdida", "Videollamada perdida"),
    ),
    "pt": Wordings(
        encryption=("criptografia de ponta a ponta",),
        created=('{actor} criou o grupo "{value}"',),
        created_this=("{actor} criou este grupo",),
        added=("{actor} adicionou {target}",),
        removed=("{actor} removeu {target}",),
        left=("{actor} saiu",),
        subject=('{actor} mudou o assunto para "{value}"',),
        icon=("{actor} mudou a imagem deste grupo",),
        description=("{actor} mudou a descrição do grupo",),
        number=("{actor} mudou seu número de telefone para um novo número",),
        deleted=("Mensagem apagada", "Esta mensagem foi apagada", "Você apagou esta mensagem"),
        omitted={
            "<Arquivo de mídia oculto>": M.UNKNOWN,
            "imagem ocultada": M.IMAGE,
            "vídeo omitido": M.VIDEO,
            "áudio ocultado": M.AUDIO,
            "figurinha omitida": M.STICKER,
            "GIF omitido": M.GIF,
            "cartão do contato omitido": M.CONTACT,
            "documento omitido": M.DOCUMENT,
        },
        poll="ENQUETE:",
        option="OPÇÃO:",
        view_once=("Visualização única",),
        missed_call=("Chamada de voz perdida", "Chamada de vídeo perdida"),
    ),
    "fr": Wordings(
        encryption=("chiffrés de bout en bout",),
        created=('{actor} a créé le groupe "{value}"',),
        created_this=("{actor} a créé ce groupe",),
        added=("{actor} a ajouté {target}",),
        removed=("{actor} a retiré {target}",),
        left=("{actor} est parti", "{actor} est partie"),
        subject=('{actor} a changé le sujet en "{value}"',),
        icon=("{actor} a changé l'icône de ce groupe",),
        description=("{actor} a modifié la description du groupe",),
        number=("{actor} a changé son numéro de téléphone",),
        deleted=("Ce message a été supprimé", "Vous avez supprimé ce message"),
        omitted={
            "<Médias omis>": M.UNKNOWN,
            "image absente": M.IMAGE,
            "vidéo absente": M.VIDEO,
            "audio omis": M.AUDIO,
            "sticker omis": M.STICKER,
            "GIF retiré": M.GIF,
            "fiche contact omise": M.CONTACT,
            "document omis": M.DOCUMENT,
        },
        poll="SONDAGE :",
        option="OPTION :",
        view_once=("Vue unique",),
        missed_call=("Appel vocal manqué", "Appel vidéo manqué"),
    ),
    "it": Wordings(
        encryption=("crittografati end-to-end",),
        created=('{actor} ha creato il gruppo "{value}"',),
        created_this=("{actor} ha creato questo gruppo",),
        added=("{actor} ha aggiunto {target}",),
        removed=("{actor} ha rimosso {target}",),
        left=("{actor} è uscito", "{actor} è uscita"),
        subject=('{actor} ha cambiato l\'oggetto in "{value}"',),
        icon=("{actor} ha cambiato l'immagine di questo gruppo",),
        description=("{actor} ha cambiato la descrizione del gruppo",),
        number=("{actor} ha cambiato il suo numero di telefono",),
        deleted=("Questo messaggio è stato eliminato", "Hai eliminato questo messaggio"),
        omitted={
            "<Media omessi>": M.UNKNOWN,
            "immagine omessa": M.IMAGE,
            "video omesso": M.VIDEO,
            "audio omesso": M.AUDIO,
            "sticker omesso": M.STICKER,
            "GIF omessa": M.GIF,
            "scheda contatto omessa": M.CONTACT,
            "documento omesso": M.DOCUMENT,
        },
        poll="SONDAGGIO:",
        option="OPZIONE:",
        view_once=("Visualizzazione singola",),
        missed_call=("Chiamata vocale persa", "Videochiamata persa"),
    ),
    "nl": Wordings(
        encryption=("end-to-end versleuteld",),
        created=('{actor} heeft groep "{value}" aangemaakt',),
        created_this=("{actor} heeft deze groep aangemaakt",),
        added=("{actor} heeft {target} toegevoegd",),
        removed=("{actor} heeft {target} verwijderd",),
        left=("{actor} heeft de groep verlaten", "{actor} is vertrokken"),
        subject=('{actor} heeft de groepsnaam gewijzigd naar "{value}"',),
        icon=("{actor} heeft de groepsafbeelding gewijzigd",),
        description=("{actor} heeft de groepsbeschrijving gewijzigd",),
        number=("{actor} heeft een nieuw telefoonnummer",),
        deleted=("Dit bericht is verwijderd", "Je hebt dit bericht verwijderd"),
        omitted={
            "<Media weggelaten>": M.UNKNOWN,
            "afbeelding weggelaten": M.IMAGE,
            "video weggelaten": M.VIDEO,
            "audio weggelaten": M.AUDIO,
            "sticker weggelaten": M.STICKER,
            "GIF weggelaten": M.GIF,
            "contactkaart weggelaten": M.CONTACT,
            "document weggelaten": M.DOCUMENT,
        },
        poll="PEILING:",
        option="OPTIE:",
        view_once=("Eenmalig bekijken",),
        missed_call=("Gemiste spraakoproep", "Gemiste video-oproep"),
    ),
    "ru": Wordings(
        encryption=("защищены сквозным шифрованием",),
        created=('{actor} создал(-а) группу "{value}"', '{actor} создал группу "{value}"'),
        created_this=("{actor} создал(-а) эту группу", "{actor} создал эту группу"),
        added=("{actor} добавил(-а) {target}", "{actor} добавил {target}"),
        removed=("{actor} удалил(-а) {target}", "{actor} удалил {target}"),
        left=("{actor} вышел(-ла) из группы", "{actor} вышел из группы"),
        subject=('{actor} изменил(-а) тему на "{value}"',),
        icon=("{actor} изменил(-а) изображение этой группы",),
        description=("{actor} изменил(-а) описание группы",),
        number=("{actor} сменил(-а) номер телефона",),
        deleted=("Данное сообщение удалено", "Вы удалили данное сообщение"),
        omitted={
            "<Без медиафайлов>": M.UNKNOWN,
            "изображение отсутствует": M.IMAGE,
            "видео отсутствует": M.VIDEO,
            "аудиофайл отсутствует": M.AUDIO,
            "стикер отсутствует": M.STICKER,
            "GIF отсутствует": M.GIF,
            "карточка контакта отсутствует": M.CONTACT,
            "документ отсутствует": M.DOCUMENT,
        },
        poll="ОПРОС:",
        option="ВАРИАНТ:",
        view_once=("Одноразовый просмотр",),
        missed_call=("Пропущенный аудиозвонок", "Пропущенный видеозвонок"),
    ),
    "tr": Wordings(
        encryption=("uçtan uca şifrelidir",),
        created=('{actor} "{value}" grubunu oluşturdu',),
        created_this=("{actor} bu grubu oluşturdu",),
        added=("{actor}, {target} kişisini ekledi", "{actor} {target} kişisini ekledi"),
        removed=("{actor}, {target} kişisini çıkardı", "{actor} {target} kişisini çıkardı"),
        left=("{actor} ayrıldı",),
        subject=('{actor} grup konusunu "{value}" olarak değiştirdi',),
        icon=("{actor} bu grubun simgesini değiştirdi",),
        description=("{actor} grup açıklamasını değiştirdi",),
        number=("{actor} telefon numarasını değiştirdi",),
        deleted=("Bu mesaj silindi", "Bu mesajı sildiniz"),
        omitted={
            "<Medya dahil edilmedi>": M.UNKNOWN,
            "görüntü dahil edilmedi": M.IMAGE,
            "video dahil edilmedi": M.VIDEO,
            "ses dahil edilmedi": M.AUDIO,
            "çıkartma dahil edilmedi": M.STICKER,
            "GIF dahil edilmedi": M.GIF,
            "kişi kartı dahil edilmedi": M.CONTACT,
            "belge dahil edilmedi": M.DOCUMENT,
        },
        poll="ANKET:",
        option="SEÇENEK:",
        view_once=("Tek seferlik görüntüleme",),
        missed_call=("Cevapsız sesli arama", "Cevapsız görüntülü arama"),
    ),
    "hi": Wordings(
        encryption=("एंड-टू-एंड एन्क्रिप्टेड",),
        created=('{actor} ने समूह "{value}" बनाया', '{actor} ने ग्रुप "{value}" बनाया'),
        created_this=("{actor} ने यह समूह बनाया", "{actor} ने यह ग्रुप बनाया"),
        added=("{actor} ने {target} को जोड़ा",),
        removed=("{actor} ने {target} को हटाया",),
        left=("{actor} ने समूह छोड़ दिया", "{actor} चले गए"),
        subject=('{actor} ने विषय बदलकर "{value}" किया',),
        icon=("{actor} ने इस समूह का आइकन बदला", "{actor} ने इस ग्रुप का आइकन बदला"),
        description=("{actor} ने समूह का विवरण बदला", "{actor} ने ग्रुप का विवरण बदला"),
        number=("{actor} ने अपना फ़ोन नंबर बदला",),
        deleted=("यह संदेश हटा दिया गया था", "आपने यह संदेश हटा दिया"),
        omitted={
            "<मीडिया के बिना>": M.UNKNOWN,
            "छवि छोड़ी गई": M.IMAGE,
            "वीडियो छोड़ा गया": M.VIDEO,
            "ऑडियो छोड़ा गया": M.AUDIO,
            "स्टिकर छोड़ा गया": M.STICKER,
            "GIF छोड़ा गया": M.GIF,
            "संपर्क कार्ड छोड़ा गया": M.CONTACT,
            "दस्तावेज़ छोड़ा गया": M.DOCUMENT,
        },
        poll="पोल:",
        option="विकल्प:",
        view_once=("एक बार देखें",),
        missed_call=("मिस्ड वॉइस कॉल", "मिस्ड वीडियो कॉल"),
    ),
    "id": Wordings(
        encryption=("terenkripsi secara end-to-end",),
        created=('{actor} membuat grup "{value}"',),
        created_this=("{actor} membuat grup ini",),
        added=("{actor} menambahkan {target}",),
        removed=("{actor} mengeluarkan {target}",),
        left=("{actor} keluar",),
        subject=('{actor} mengubah subjek menjadi "{value}"',),
        icon=("{actor} mengubah ikon grup ini",),
        description=("{actor} mengubah deskripsi grup",),
        number=("{actor} mengganti nomor teleponnya ke nomor baru",),
        deleted=("Pesan ini telah dihapus", "Anda menghapus pesan ini"),
        omitted={
            "<Media tidak disertakan>": M.UNKNOWN,
            "gambar tidak disertakan": M.IMAGE,
            "video tidak disertakan": M.VIDEO,
            "audio tidak disertakan": M.AUDIO,
            "stiker tidak disertakan": M.STICKER,
            "GIF tidak disertakan": M.GIF,
            "kartu kontak tidak disertakan": M.CONTACT,
            "dokumen tidak disertakan": M.DOCUMENT,
        },
        poll="POLLING:",
        option="OPSI:",
        view_once=("Sekali lihat",),
        missed_call=("Panggilan suara tak terjawab", "Panggilan video tak terjawab"),
    ),
    "ar": Wordings(
        encryption=("مشفرة تمامًا بين الطرفين", "مشفّرة تمامًا بين الطرفين"),
        created=('{actor} أنشأ المجموعة "{value}"',),
        created_this=("{actor} أنشأ هذه المجموعة",),
        added=("{actor} أضاف {target}",),
        removed=("{actor} أزال {target}",),
        left=("{actor} غادر",),
        subject=('{actor} غيّر الموضوع إلى "{value}"',),
        icon=("{actor} غيّر صورة هذه المجموعة",),
        description=("{actor} غيّر وصف المجموعة",),
        number=("{actor} غيّر رقم هاتفه",),
        deleted=("تم حذف هذه الرسالة", "لقد حذفت هذه الرسالة"),
        omitted={
            "<تم استبعاد الوسائط>": M.UNKNOWN,
            "الصورة محذوفة": M.IMAGE,
            "الفيديو محذوف": M.VIDEO,
            "الصوت محذوف": M.AUDIO,
            "الملصق محذوف": M.STICKER,
            "GIF محذوف": M.GIF,
            "بطاقة جهة الاتصال محذوفة": M.CONTACT,
            "المستند محذوف": M.DOCUMENT,
        },
        poll="استطلاع:",
        option="خيار:",
        view_once=("عرض لمرة واحدة",),
        missed_call=("مكالمة صوتية فائتة", "مكالمة فيديو فائتة"),
    ),
    "fa": Wordings(
        encryption=("سرتاسر رمزگذاری",),
        created=('{actor} گروه "{value}" را ایجاد کرد',),
        created_this=("{actor} این گروه را ایجاد کرد",),
        added=("{actor} {target} را اضافه کرد",),
        removed=("{actor} {target} را حذف کرد",),
        left=("{actor} خارج شد", "{actor} گروه را ترک کرد"),
        subject=('{actor} موضوع را به "{value}" تغییر داد',),
        icon=("{actor} تصویر این گروه را تغییر داد",),
        description=("{actor} شرح گروه را تغییر داد",),
        number=("{actor} شماره تلفن خود را تغییر داد",),
        deleted=("این پیام حذف شد", "شما این پیام را حذف کردید"),
        omitted={
            "<رسانه حذف شد>": M.UNKNOWN,
            "تصویر حذف شد": M.IMAGE,
            "ویدیو حذف شد": M.VIDEO,
            "صوت حذف شد": M.AUDIO,
            "استیکر حذف شد": M.STICKER,
            "GIF حذف شد": M.GIF,
            "کارت مخاطب حذف شد": M.CONTACT,
            "سند حذف شد": M.DOCUMENT,
        },
        poll="نظرسنجی:",
        option="گزینه:",
        view_once=("یک‌بار مشاهده",),
        missed_call=("تماس صوتی بی‌پاسخ", "تماس تصویری بی‌پاسخ"),
    ),
}

# --- compiled views ------------------------------------------------------------------------

_QUOTE = '["“”«»„]'
_SLOTS = {
    "{actor}": r"(?P<actor>.+?)",
    "{target}": r"(?P<target>.+?)",
    "{value}": r"(?P<value>.*)",
}
_SLOT = re.compile(r"\{actor\}|\{target\}|\{value\}|\"")


def template_regex(template: str) -> str:
    """A template as a regex: literal parts escaped, slots as named groups, any quote."""
    out: list[str] = []
    pos = 0
    for m in _SLOT.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        out.append(_QUOTE if m[0] == '"' else _SLOTS[m[0]])
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return "".join(out) + r"\.?$"


def _literal_words(template: str) -> list[str]:
    return [w for w in _SLOT.sub(" ", template).split() if len(w) > 2]


# Kinds in the order their rules are tried: specific wordings before the generic ones, and
# whether a rule is safe on an authored line whoever wrote it (see ``_system``).
SYSTEM_FIELDS: tuple[tuple[str, K, bool], ...] = (
    ("created", K.GROUP_CREATED, True),
    ("subject", K.SUBJECT_CHANGED, True),
    ("icon", K.ICON_CHANGED, True),
    ("description", K.DESCRIPTION_CHANGED, True),
    ("number", K.NUMBER_CHANGED, True),
    ("created_this", K.GROUP_CREATED, False),
    ("added", K.ADDED, False),
    ("removed", K.REMOVED, False),
    ("left", K.LEFT, False),
)


def system_templates() -> list[tuple[K, str, bool]]:
    """Every system template of every language, in rule order."""
    out: list[tuple[K, str, bool]] = []
    for field, kind, distinctive in SYSTEM_FIELDS:
        for words in TABLE.values():
            out += [(kind, t, distinctive) for t in getattr(words, field)]
    return out


def encryption_fragments() -> tuple[str, ...]:
    return tuple(f for w in TABLE.values() for f in w.encryption)


def system_keywords() -> tuple[str, ...]:
    """One literal word of every system template: a line without any skips the rules."""
    words: set[str] = set(encryption_fragments())
    for _kind, template, _d in system_templates():
        literal = _literal_words(template)
        # The longest word is the rarest in ordinary text: the best pre-filter.
        words.add(max(literal, key=len) if literal else template)
    return tuple(sorted(words))


def deleted_bodies() -> frozenset[str]:
    """Deleted-message notices, case-folded, with and without the iOS full stop."""
    out: set[str] = set()
    for w in TABLE.values():
        for d in w.deleted:
            out |= {d.casefold(), d.casefold() + "."}
    return frozenset(out)


def omitted_bodies() -> dict[str, MediaType]:
    """Media placeholders, case-folded."""
    return {k.casefold(): v for w in TABLE.values() for k, v in w.omitted.items()}


def poll_heads() -> frozenset[str]:
    return frozenset(w.poll for w in TABLE.values())


def option_prefixes() -> tuple[str, ...]:
    return tuple(sorted({w.option for w in TABLE.values()}))


def view_once_bodies() -> frozenset[str]:
    return frozenset(v.casefold() for w in TABLE.values() for v in w.view_once)


def missed_call_starts() -> tuple[str, ...]:
    return tuple(c for w in TABLE.values() for c in w.missed_call)
