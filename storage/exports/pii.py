"""PII recognisers for the dumps (`--scrub-pii`): typed spans and their masking.

Regular expressions find candidates; checksums and context words decide. Checksums come from
python-stdnum (IBAN, ИНН, US SSN, Luhn); СНИЛС's is computed here. A cheap trigger search
lets text without digits, "@" or the few other cues through almost for free.

Entities (placeholder `[TYPE]`):
EMAIL    addresses, internationalised ones (имя@почта.рф) and "(at)"/"[at]"/" at … dot …"
         obfuscations; `git@host` (an SSH remote, not a person) is left alone
PHONE    10–15 digits in phone grouping, or 7+ with "+", a trunk "8 (…)" or a word like "tel."
CARD     13–19 digits starting 2–6 that pass Luhn
IBAN     country code, check digits and BBAN that pass the ISO 7064 check
ACCOUNT  Russian 20-digit bank accounts (currency code 810/643/840/978/156 at digits 6–8)
ID       ИНН (checksum; 10 digits need the word ИНН/INN nearby), СНИЛС (checksum), Russian
         passports ("45 06 123456", or 10 digits after "паспорт"/"серия"), US SSN (stdnum rules)
ADDRESS  English street addresses with a house number ("221B Baker Street", "1600
         Pennsylvania Ave NW, Washington, DC 20500"), P.O. boxes, Russian addresses with a
         street word and a house number ("ул. Ленина, д. 5, кв. 12", "Тверская ул., 7")
USER     @handles (not code decorators or CSS at-rules) and t.me/… links
SECRET   API keys (sk-…, ghp_…, github_pat_…, xox?-…, AKIA…, AIza…, hf_…, glpat-…), bearer
         tokens, JWTs, Telegram bot tokens, private-key blocks, passwords in URLs
IP       IPv4 and IPv6 (not loopback, unspecified, netmasks or version numbers)

Public bank codes (БИК, SWIFT) and dates, versions, prices, order numbers are not PII here.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from stdnum import iban as _iban
from stdnum import luhn as _luhn
from stdnum.ru import inn as _inn
from stdnum.us import ssn as _ssn


class Span(NamedTuple):
    start: int
    end: int
    type: str


# Anything a recogniser needs: a digit, "@", a t.me link, an "(at)" or " dot " obfuscation, a
# key block. (API keys are long random strings: they have digits.)
_TRIGGER = re.compile(r"[\d@]|\.(?:me|dog|ME)/|[aA][tT][)\]}]| dot | DOT | собака |PRIVATE KEY")
# Seven digits in a row give or take separators, or six: phones, cards, accounts, IDs and
# IBANs have them.
_LONG_NUMBER = re.compile(r"\d{6}|\d(?:[ ().-]{0,2}\d){6}")
_SECRET_CUE = re.compile(
    r"sk-|[srp]k_|gh[pousr]_|github_pat_|xox|AKIA|ASIA|AIza|hf_|glpat-|eyJ|Bearer |PRIVATE KEY"
    r"|:AA|://"
)
_RU_STREET_CUE = re.compile(r"ул|пр|пер|наб|б-р|бульвар|пл|ш\.|шоссе|туп|аллея|мкр|микрорайон")


_AT = re.compile("@")


def _windows(cores: Iterable[re.Match[str]], lead: int, tail: int) -> list[tuple[int, int]]:
    """Merged (pos, endpos) ranges `lead` characters before and `tail` after each core match.

    Recognisers search only these with `finditer(text, pos, endpos)`; lookbehinds and the
    context words still see the whole text.
    """
    merged: list[tuple[int, int]] = []
    for core in cores:
        start, end = max(0, core.start() - lead), core.end() + tail
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _digits(text: str) -> str:
    """ASCII digits of `text` (any script's decimal digits count)."""
    return "".join(str(int(ch)) for ch in text if ch.isdigit())


def _before(text: str, start: int, width: int = 30) -> str:
    return text[max(0, start - width):start].lower()


# --- EMAIL -----------------------------------------------------------------------------------
_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]*\w@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-])"
)
_EMAIL_OBFUSCATED = re.compile(
    r"(?<![\w.+-])[\w.+-]*\w\s*(?:\((?:at|собака)\)|\[(?:at|собака)\]|\{at\})\s*"
    r"[^\W_][\w-]*(?:\s*(?:\.|\(dot\)|\[dot\]|\(точка\))\s*[^\W_][\w-]*)*"
    r"\s*(?:\.|\(dot\)|\[dot\]|\(точка\))\s*[^\W\d_]{2,24}(?![\w-])",
    re.IGNORECASE,
)
# "john at example dot com": only with the spelt-out dot, a bare " at " is everywhere.
_EMAIL_SPELT = re.compile(
    r"(?<![\w.+-])[\w.+-]*\w\s+(?:at|собака)\s+[^\W_][\w-]*(?:\s+(?:dot|точка)\s+[^\W_][\w-]*)+",
    re.IGNORECASE,
)
_NOT_PEOPLE = frozenset({"git"})  # git@github.com:org/repo — an SSH remote, not a mailbox


def _emails(text: str) -> Iterator[Span]:
    for pos, endpos in _windows(_AT.finditer(text), 80, 260):
        for m in _EMAIL.finditer(text, pos, endpos):
            if m.group().partition("@")[0].lower() not in _NOT_PEOPLE:
                yield Span(m.start(), m.end(), "EMAIL")
    if ")" in text or "]" in text or "}" in text:
        lowered = text.lower()
        if "at)" in lowered or "at]" in lowered or "at}" in lowered:
            for m in _EMAIL_OBFUSCATED.finditer(text):
                yield Span(m.start(), m.end(), "EMAIL")
    if " dot " in text or " DOT " in text or " точка " in text:
        for m in _EMAIL_SPELT.finditer(text):
            yield Span(m.start(), m.end(), "EMAIL")


# --- USER ------------------------------------------------------------------------------------
_HANDLE = re.compile(r"(?<![\w@./])@([A-Za-z][A-Za-z0-9_]{3,31})(?![\w@/(]|\.\w)")
_TG_LINK = re.compile(
    r"(?:https?://)?(?<![\w.])(?:t|telegram)\.(?:me|dog)/"
    r"(?:\+[\w-]{6,}|joinchat/[\w-]{6,}|[A-Za-z][A-Za-z0-9_]{3,31}\b)",
    re.IGNORECASE,
)
# Decorators and at-rules that look like handles.
_CODE_AT = frozenset((
    "property", "staticmethod", "classmethod", "abstractmethod", "dataclass", "dataclasses",
    "override", "overload", "cached_property", "lru_cache", "cache", "wraps", "contextmanager",
    "asynccontextmanager", "total_ordering", "singledispatch", "pytest", "fixture", "mark",
    "parametrize", "app", "router", "bot", "task", "shared_task", "receiver", "login_required",
    "require_http_methods", "validator", "field_validator", "model_validator", "computed_field",
    "root_validator", "njit", "jit", "torch", "tf", "functools", "typing", "Override",
    "Deprecated", "SuppressWarnings", "FunctionalInterface", "Autowired", "Component", "Service",
    "Repository", "Controller", "RestController", "Bean", "Configuration", "Entity", "Table",
    "Column", "Test", "Before", "After", "BeforeEach", "AfterEach", "Input", "Output",
    "Injectable", "NgModule", "Module", "Get", "Post", "Put", "Delete", "Patch", "Param", "Body",
    "Query", "Inject", "media", "import", "keyframes", "font-face", "supports", "layer",
    "tailwind", "apply", "layer", "charset", "namespace", "page", "container", "everyone", "here",
    "channel", "all", "admin", "admins", "include", "extend", "mixin", "return", "content", "each",
    "else", "if", "while", "function", "use", "forward", "param", "returns", "throws", "author",
    "since", "deprecated", "example", "interface", "implementation", "synthesize", "selector",
    "objc_msgSend", "Published", "State", "Binding", "ObservedObject", "Environment", "MainActor",
    "escaping", "available", "discardableResult", "objc", "IBOutlet", "IBAction", "main",
))


def _users(text: str) -> Iterator[Span]:
    for pos, endpos in _windows(_AT.finditer(text), 0, 40):
        for m in _HANDLE.finditer(text, pos, endpos):
            name = m.group(1)
            if name in _CODE_AT or name.lower() in _CODE_AT:
                continue
            line_start = text.rfind("\n", 0, m.start()) + 1
            rest = text[m.end():m.end() + 1]
            if not text[line_start:m.start()].strip() and rest in ("", "\n"):
                continue  # "@decorator" alone on its line
            yield Span(m.start(), m.end(), "USER")
    if ".me/" in text or ".dog/" in text or ".ME/" in text:
        for m in _TG_LINK.finditer(text):
            yield Span(m.start(), m.end(), "USER")


# --- SECRET ----------------------------------------------------------------------------------
_SECRET = re.compile(
    r"(?<![\w-])(?:"
    r"sk-(?:proj-|ant-(?:api\d\d-)?|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|glpat-[A-Za-z0-9_-]{20,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    r"|\d{8,10}:AA[A-Za-z0-9_-]{33}"
    r")(?![\w-])"
    r"|(?<=Bearer )[A-Za-z0-9._~+/-]{20,}=*"
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
)
# scheme://user:password@host — the credentials are masked, the host is kept.
_URL_CREDENTIALS = re.compile(r"://[^\s:/@]+:([^\s/@]+)@")


def _secrets(text: str) -> Iterator[Span]:
    for pos, endpos in _windows(_SECRET_CUE.finditer(text), 12, 400):
        for m in _SECRET.finditer(text, pos, endpos):
            token = m.group()
            # "sk-your-api-key-here-xxxxxx" is a placeholder: real keys mix letters and digits.
            if token.startswith("sk-") and not (re.search(r"\d", token)
                                                and re.search(r"[A-Za-z]{2}", token[3:])):
                continue
            yield Span(m.start(), m.end(), "SECRET")
    if "PRIVATE KEY" in text:
        for m in _PRIVATE_KEY.finditer(text):
            yield Span(m.start(), m.end(), "SECRET")
    if "://" in text:
        for m in _URL_CREDENTIALS.finditer(text):
            yield Span(m.start(1), m.end(1), "SECRET")


# --- IP --------------------------------------------------------------------------------------
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.\-]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d|\w|-\d)")
_IPV4_CORE = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")  # starts with \d: a fast scan
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|"
                   rf"{_OCTET}(?:\.{_OCTET}){{3}})?(?:%\w+)?(?![\w:])")
_VERSION_WORDS = ("version", "версия", "версии", "ver.", "release", "build", "v.")
_PINS = frozenset({"==", ">=", "<=", "~=", "!=", "@v"})


def _public_enough(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not (address.is_loopback or address.is_unspecified or address.is_multicast)


def _ips(text: str) -> Iterator[Span]:
    for pos, endpos in _windows(_IPV4_CORE.finditer(text), 0, 4):
        for m in _IPV4.finditer(text, pos, endpos):
            if m.group().startswith("255.") or m.group().startswith("0."):
                continue  # netmasks, 0.x
            before = _before(text, m.start(), 12)
            if any(w in before for w in _VERSION_WORDS) or before[-2:] in _PINS:
                continue
            if _public_enough(ipaddress.IPv4Address(m.group())):
                yield Span(m.start(), m.end(), "IP")
    if "::" in text or text.count(":") >= 5:
        for m in _IPV6.finditer(text):
            candidate = m.group().split("%")[0]
            if sum(ch.isdigit() for ch in candidate) < 1 or len(candidate) < 6:
                continue
            try:
                address = ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            if _public_enough(address):
                yield Span(m.start(), m.end(), "IP")


# --- IBAN, ACCOUNT, CARD ---------------------------------------------------------------------
_IBAN_CORE = re.compile(r"[A-Z]{2}\d\d")
_IBAN = re.compile(r"(?<![\w])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?!\w)")
_ACCOUNT = re.compile(r"(?<![\d.,-])(?:\d[ .-]?){19}\d(?![\d]|[.,-]\d)")
_ACCOUNT_CURRENCIES = frozenset({"810", "643", "840", "978", "156", "826", "756", "398", "933"})
_CARD = re.compile(r"(?<![\d.,+/-])(?:\d[ -]?){12,18}\d(?![\d]|[.,/-]\d)")


def _ibans(text: str) -> Iterator[Span]:
    for m in (m for pos, endpos in _windows(_IBAN_CORE.finditer(text), 0, 48)
              for m in _IBAN.finditer(text, pos, endpos)):
        value = m.group()
        # The greedy tail may have swallowed a following word: shorten until it checks out.
        while value:
            if _iban.is_valid(value, check_country=False):  # ISO 7064 only: no bank rules
                yield Span(m.start(), m.start() + len(value), "IBAN")
                break
            cut = value.rfind(" ")
            if cut < 15:
                break
            value = value[:cut]


def _accounts(text: str, pos: int, endpos: int) -> Iterator[Span]:
    for m in _ACCOUNT.finditer(text, pos, endpos):
        digits = _digits(m.group())
        # 30101…: a bank's correspondent account, printed on every invoice — public.
        if len(digits) == 20 and digits[5:8] in _ACCOUNT_CURRENCIES and digits[0] != "0" \
                and not digits.startswith("30101"):
            yield Span(m.start(), m.end(), "ACCOUNT")


def _cards(text: str, pos: int, endpos: int) -> Iterator[Span]:
    for m in _CARD.finditer(text, pos, endpos):
        raw = m.group()
        digits = _digits(raw)
        if not (13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn.is_valid(digits)):
            continue
        groups = re.split(r"[ -]", raw)
        # Grouped numbers must look like card grouping (4-4-4-4, 4-6-5, …), not thousands.
        if (len(groups) > 1 and not all(3 <= len(g) <= 6 for g in groups)) or (
                len(groups) > 1 and all(len(g) == 3 for g in groups[1:])):
            continue
        yield Span(m.start(), m.end(), "CARD")


# --- ID --------------------------------------------------------------------------------------
_INN_CONTEXT = ("инн", "inn", "tin", "taxpayer", "налог")
_PASSPORT_CONTEXT = ("паспорт", "passport", "серия", "серии", "series")
_SSN_CONTEXT = ("ssn", "social security")
_SNILS_CONTEXT = ("снилс", "snils", "страхов")
_NUMBER = re.compile(r"(?<![\w.,/+-])\d[\d -]{7,14}\d(?![\w]|[.,-]\d)")  # "ИНН/КПП 1…/2…"
_SNILS = re.compile(r"(?<![\w.,/+-])\d{3}-\d{3}-\d{3}[ -]\d{2}(?![\w]|[.,/-]\d)")
_PASSPORT = re.compile(
    r"(?<![\w.,/+-])\d{2} ?\d{2}(?: ?№ ?| номер | N )?\d{6}(?![\w]|[.,/-]\d)"
)
_SSN = re.compile(r"(?<![\w.,/+-])\d{3}-\d{2}-\d{4}(?![\w]|[.,/-]\d)")


def _snils_valid(digits: str) -> bool:
    if len(digits) != 11 or digits[:9] <= "001001998":
        return False
    total = sum(int(d) * (9 - i) for i, d in enumerate(digits[:9]))
    check = total % 101 if total > 101 else total
    return (0 if check == 100 or check == 101 else check) == int(digits[9:])


def _id_number(digits: str, unbroken: bool, before: str) -> bool:
    """A bare number that is an ID by its checksum and the words before it."""
    def near(words: tuple[str, ...]) -> bool:
        return any(w in before for w in words)

    n = len(digits)
    if n in (10, 12) and _inn.is_valid(digits):
        return (n == 12 and unbroken) or near(_INN_CONTEXT)
    if n == 11 and near(_SNILS_CONTEXT):
        return _snils_valid(digits)
    if n == 9 and near(_SSN_CONTEXT):
        return _ssn.is_valid(digits)
    return n in (9, 10) and near(_PASSPORT_CONTEXT)


def _ids(text: str, pos: int, endpos: int) -> Iterator[Span]:
    for m in _SNILS.finditer(text, pos, endpos):
        if _snils_valid(_digits(m.group())):
            yield Span(m.start(), m.end(), "ID")
    for m in _SSN.finditer(text, pos, endpos):
        if _ssn.is_valid(m.group()):
            yield Span(m.start(), m.end(), "ID")
    for m in _PASSPORT.finditer(text, pos, endpos):
        raw = m.group()
        spaced = re.fullmatch(r"\d{2} \d{2} \d{6}", raw)
        if spaced or any(w in _before(text, m.start(), 40) for w in _PASSPORT_CONTEXT):
            yield Span(m.start(), m.end(), "ID")
    for m in _NUMBER.finditer(text, pos, endpos):
        raw = m.group()
        if " " in raw.strip() and "-" in raw:
            continue
        if _id_number(_digits(raw), raw.isdigit(), _before(text, m.start())):
            yield Span(m.start(), m.end(), "ID")


# --- PHONE -----------------------------------------------------------------------------------
_PHONE = re.compile(
    r"(?<![\w+.,/:-])\+\d{1,3}[ .-]?(?:\(\d{1,5}\)|\d{1,5})(?:[ .-]?\d{1,8}){1,5}"
    r"(?![\w]|[.,:/-]\d)"
    r"|(?<![\w+.,/:-])"
    r"(?:\+\d{1,3}[ .-]?|8[ .-]?(?=\(|\d{3}[ .-]))?"
    r"(?:\(\d{2,5}\)[ .-]?)?"
    r"\d{2,5}(?:[ .-]\d{2,4}){1,4}"
    r"(?![\w]|[.,:/-]\d)"
    r"|(?<![\w+.,/:-])\+\d{9,14}(?![\w]|[.,:/-]\d)"
    r"|(?<![\w+.,/:-])\d{7,12}(?![\w]|[.,:/-]\d)"
)
_PHONE_CONTEXT = ("тел", "phone", "call", "звон", "whatsapp", "viber", "mobile", "моб",
                  "номер", "номеру", "fax", "факс", "sms", "смс", "cell", "contact", "контакт",
                  "tel", "☎", "📞", "reach me", "number")
# Numbers introduced by these words are references, not phones.
_NOT_PHONE_CONTEXT = ("заказ", "order", "invoice", "артикул", "трек", "tracking", "лот", "lot ",
                      "serial", "серийн", "ticket", "билет", "счёт №", "чек", "range", "isbn",
                      # an ID that failed its checksum is not a phone either
                      "инн", "inn", "снилс", "snils", "ssn", "паспорт", "passport")
_DATE_LIKE = re.compile(r"(?:19|20)\d\d[-./](?:0?[1-9]|1[0-2])[-./]\d{1,2}"
                        r"|\d{1,2}[-./](?:0?[1-9]|1[0-2])[-./](?:19|20)\d\d")


def _phones(text: str, pos: int, endpos: int) -> Iterator[Span]:
    for m in _PHONE.finditer(text, pos, endpos):
        raw = m.group()
        digits = _digits(raw)
        n = len(digits)
        plus = raw.startswith("+")
        trunk = raw.startswith("8") and ("(" in raw or re.match(r"8[ .-]\d{3}[ .-]", raw))
        before = _before(text, m.start())
        context = any(w in before for w in _PHONE_CONTEXT)
        if _DATE_LIKE.search(raw) or any(w in before[-16:] for w in _NOT_PHONE_CONTEXT):
            continue
        if raw.isdigit():  # an unbroken run: a mobile number or a phone by context
            ok = plus or (context and 7 <= n <= 12) or (n == 11 and digits[:2] in ("79", "89"))
        elif plus or trunk:
            ok = 8 <= n <= 15
        else:
            groups = re.split(r"[ .\-()]+", raw.strip("()"))
            thousands = (all(len(g) == 3 for g in groups[1:]) and len(groups[0]) <= 3
                         and " " in raw and "(" not in raw)
            # 1 1 2 3 5 8 13 21 34 (phones in pairs start with a trunk 0: 01 23 45 67 89)
            pairs = all(len(g) <= 2 for g in groups) and not raw.startswith("0")
            blocks = len(groups) >= 3 and all(len(g) == 4 for g in groups)  # 1234-5678-9012
            ok = not (thousands or pairs or blocks) and (
                10 <= n <= 12 or (context and 7 <= n <= 12))
        if ok:
            yield Span(m.start(), m.end(), "PHONE")


# --- ADDRESS ---------------------------------------------------------------------------------
_EN_SUFFIX = (r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct"
              r"|Place|Pl|Square|Sq|Terrace|Way|Parkway|Pkwy|Highway|Hwy|Close|Crescent"
              r"|Row|Circle|Cir|Gardens|Mews|Alley|Trail|Plaza)\b"
              r"(?:\.(?=,|\s+(?:NW|NE|SW|SE|N|S|E|W|Apt|Apartment|Suite|Ste|Unit|Flat)\b))?")
_EN_ADDRESS = re.compile(
    r"(?<![\w.,-])\d{1,5}[A-Za-z]?(?:-\d{1,4})?,?\s+"
    r"(?:(?:[NSEW]|North|South|East|West)\.?\s+)?"
    r"(?:[A-Z][a-z'’]+\.?\s+|\d{1,3}(?:st|nd|rd|th)\s+){1,3}"
    + _EN_SUFFIX +
    r"(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?"
    r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Fl)\.?\s*#?\s*[\w-]{1,6})?"
    r"(?:,\s*(?:[A-Z][a-z]+(?:\s[A-Z][a-z]+){0,2})"
    r"(?:,?\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?|\s+[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2})"
    r"|,?\s+[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2})?"
)
_EN_HOUSE = re.compile(r"\d[A-Za-z]?,?\s+[A-Z\d]")  # "221B Baker", "1 5th Ave": where to look
_PO_BOX = re.compile(r"\b(?:P\.\s?O\.|PO)\s+Box\s+\d{1,6}\b", re.IGNORECASE)
_RU_STREET = (r"(?:ул\.|улица|пр-т|пр-кт|просп\.|проспект|пр\.|пер\.|переулок|наб\.|набережная"
              r"|б-р|бульвар|пл\.|площадь|ш\.|шоссе|проезд|туп\.|тупик|аллея|мкр\.?|микрорайон)")
_RU_NAME = r"(?:[А-ЯЁ\d][\w-]*(?:\s+(?:[А-ЯЁ][\w-]*|им\.|имени|реки|канала))*)"
_RU_HOUSE = (r",?\s*(?:(?:д\.|дом)\s*)?\d{1,4}(?:\s?[а-яА-Я](?![а-яё]))?(?:/\d{1,4})?"
             r"(?:,?\s*(?:корп\.|корпус|к\.|стр\.|строение|лит\.)\s*\w{1,3})*"
             r"(?:,?\s*(?:кв\.|квартира|оф\.|офис|пом\.)\s*\d{1,4})?")
_RU_CITY = (r"(?:\d{6},\s*)?(?:(?:г\.|город)\s*[А-ЯЁ][\w-]+(?:[ -][А-ЯЁ][\w-]+)?,?\s*"
            r"(?:[А-ЯЁ][\w-]*\s+(?:район|р-н)\.?,?\s*)?)?")
_RU_ADDRESS = re.compile(
    r"(?<![\w-])" + _RU_CITY
    + r"(?:" + _RU_STREET + r"\s*" + _RU_NAME
    + r"|[А-ЯЁ][\w-]*(?:\s+[А-ЯЁ][\w-]*)?\s+" + _RU_STREET + r"(?!\w))"
    + _RU_HOUSE + r"(?![\w-]|\s+(?:[а-яё]|%))"
)


def _addresses(text: str) -> Iterator[Span]:
    for pos, endpos in _windows(_EN_HOUSE.finditer(text), 6, 200):
        for m in _EN_ADDRESS.finditer(text, pos, endpos):
            yield Span(m.start(), m.end(), "ADDRESS")
    if "Box" in text or "BOX" in text or "box" in text:
        for m in _PO_BOX.finditer(text):
            yield Span(m.start(), m.end(), "ADDRESS")
    if not text.isascii():
        for pos, endpos in _windows(_RU_STREET_CUE.finditer(text), 80, 120):
            for m in _RU_ADDRESS.finditer(text, pos, endpos):
                yield Span(m.start(), m.end(), "ADDRESS")


# Earlier recognisers win overlaps: a checked number beats a phone-shaped one.
_Recogniser = Callable[[str], Iterator[Span]]
_NumberRecogniser = Callable[[str, int, int], Iterator[Span]]
_BEFORE_NUMBERS: tuple[_Recogniser, ...] = (_secrets, _emails)
_NUMBERS: tuple[_NumberRecogniser, ...] = (_accounts, _cards, _ids)
_AFTER_NUMBERS: tuple[_Recogniser, ...] = (_ips, _addresses)
# … then _phones, then _users.


def find_pii(text: str) -> list[Span]:
    """Non-overlapping PII spans of `text`, in text order."""
    if not _TRIGGER.search(text):
        return []
    taken: list[Span] = []  # disjoint, sorted

    def take(spans: Iterator[Span]) -> None:
        for span in spans:
            i = bisect.bisect_left(taken, span)
            if (i == 0 or taken[i - 1].end <= span.start) and (
                    i == len(taken) or span.end <= taken[i].start):
                taken.insert(i, span)

    for recognise in _BEFORE_NUMBERS:
        take(recognise(text))
    # Numbers are searched for only around runs of digits; the lead covers "+7 (" or "4506 номер"
    # and the tail the lookaheads after the last run.
    windows = _windows(_LONG_NUMBER.finditer(text), 12, 24)
    if windows:
        take(_ibans(text))
    for recognise_number in _NUMBERS:
        for pos, endpos in windows:
            take(recognise_number(text, pos, endpos))
    for recognise in _AFTER_NUMBERS:
        take(recognise(text))
    for pos, endpos in windows:
        take(_phones(text, pos, endpos))
    take(_users(text))
    return taken


def scrub_pii(text: str) -> str:
    """`text` with each PII span replaced by its typed placeholder ("[EMAIL]", "[ID]", …)."""
    spans = find_pii(text)
    if not spans:
        return text
    parts, last = [], 0
    for start, end, kind in spans:
        parts.append(text[last:start])
        parts.append(f"[{kind}]")
        last = end
    parts.append(text[last:])
    return "".join(parts)
