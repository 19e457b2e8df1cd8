"""Writes tests/data/pii_labelled.jsonl: EN/RU snippets with labelled PII spans.

    python tests/data/make_pii_labelled.py

Positive snippets hold one or more entities (`{"type", "start", "end"}`); negative snippets
hold none and are the hard cases a scrubber gets wrong: dates, times, versions, prices, order
numbers that fail checksums, maths, code, ISBNs, street names without a house, model names.
Values are drawn with a fixed seed, so the file is reproducible. Checksummed values (cards,
IBANs, ИНН, СНИЛС, SSN) are computed here, independently of the scrubber.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

from stdnum import iban as stdnum_iban

OUT = Path(__file__).with_name("pii_labelled.jsonl")
SEED = 20261205
rng = random.Random(SEED)


def digits(n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


# --- checksummed values ----------------------------------------------------------------------
def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + digits(length - len(prefix) - 1)
    for check in string.digits:
        number = body + check
        total = 0
        for i, ch in enumerate(reversed(number)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return number
    raise AssertionError


def card() -> str:
    kind = rng.choice(("visa", "mc", "mir", "amex", "visa", "mc"))
    if kind == "amex":
        n = luhn_complete(rng.choice(("34", "37")), 15)
        return f"{n[:4]} {n[4:10]} {n[10:]}"
    prefix = {
        "visa": "4",
        "mc": rng.choice(("51", "53", "55")),
        "mir": "220" + str(rng.randint(0, 4)),
    }[kind]
    n = luhn_complete(prefix, 16)
    style = rng.choice((" ", "-", "", " "))
    return style.join(n[i : i + 4] for i in range(0, 16, 4))


def iban() -> str:
    country, length = rng.choice(
        (("DE", 18), ("GB", 18), ("FR", 23), ("NL", 14), ("ES", 20), ("IT", 23), ("CH", 17))
    )
    if country == "GB":
        bban = rng.choice(("NWBK", "WEST", "BARC", "LOYD")) + digits(14)
    elif country == "NL":
        bban = rng.choice(("ABNA", "INGB", "RABO")) + digits(10)
    elif country == "IT":
        bban = rng.choice(string.ascii_uppercase) + digits(22)
    elif country == "FR":
        bban = digits(21) + "".join(rng.choice(string.digits) for _ in range(2))
    else:
        bban = digits(length)
    check = stdnum_iban.calc_check_digits(country + "00" + bban)
    value = country + check + bban
    if rng.random() < 0.6:
        value = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return value


def inn(length: int) -> str:
    def check(ds: str, weights: tuple[int, ...]) -> str:
        return str(sum(int(d) * w for d, w in zip(ds, weights, strict=False)) % 11 % 10)

    if length == 10:
        body = str(rng.randint(10, 99)) + digits(7)
        return body + check(body, (2, 4, 10, 3, 5, 9, 4, 6, 8))
    body = str(rng.randint(10, 99)) + digits(8)
    body += check(body, (7, 2, 4, 10, 3, 5, 9, 4, 6, 8))
    return body + check(body, (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8))


def snils(formatted: bool = True) -> str:
    body = str(rng.randint(100, 999)) + digits(6)
    total = sum(int(d) * (9 - i) for i, d in enumerate(body))
    c = total % 101 if total > 101 else total
    c = 0 if c in (100, 101) else c
    n = f"{body}{c:02d}"
    return f"{n[:3]}-{n[3:6]}-{n[6:9]} {n[9:]}" if formatted else n


def ssn() -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def account() -> str:
    n = (
        rng.choice(("40817", "40702", "40802", "42301"))
        + rng.choice(("810", "810", "840", "978"))
        + digits(12)
    )
    return n if rng.random() < 0.7 else " ".join((n[:5], n[5:8], n[8], n[9:13], n[13:]))


# --- other values ----------------------------------------------------------------------------
EN_FIRST = ("john", "mary", "alex", "kate", "peter", "linda", "sam", "olivia", "james", "emma")
EN_LAST = ("smith", "jones", "brown", "taylor", "wilson", "clark", "lewis", "walker")
RU_FIRST = ("ivan", "olga", "sergey", "anna", "dmitry", "elena", "pavel", "maria")
RU_LAST = ("petrov", "ivanova", "smirnov", "kuznetsova", "popov", "sokolova", "volkov")
DOMAINS = (
    "gmail.com",
    "yandex.ru",
    "mail.ru",
    "outlook.com",
    "company.co.uk",
    "uni-bonn.de",
    "example.org",
    "proton.me",
    "corp.example.com",
    "bk.ru",
)
IDN = (
    "иван@почта.рф",
    "ольга.смирнова@пример.рус",
    "директор@завод-авангард.рф",
    "пётр@компания.рф",
    "bücher@bücher.de",
    "info@москва.рф",
    "маша_2001@почта.рус",
    "заказы@магазин.рф",
)


def email() -> str:
    first, last = rng.choice(EN_FIRST + RU_FIRST), rng.choice(EN_LAST + RU_LAST)
    local = rng.choice(
        (
            f"{first}.{last}",
            f"{first}{rng.randint(1, 99)}",
            f"{first[0]}{last}",
            f"{first}_{last}",
            f"{first}+news",
            f"{last}.{first}{rng.randint(70, 99)}",
        )
    )
    domain = rng.choice(DOMAINS)
    style = rng.random()
    if style < 0.12:
        return rng.choice(IDN)
    if style < 0.22:
        return f"{local}(at){domain}"
    if style < 0.28:
        return f"{local} [at] {domain}"
    if style < 0.33:
        name, _, tld = domain.rpartition(".")
        return f"{local} at {name.replace('.', ' dot ')} dot {tld}"
    if style < 0.36:
        name, _, tld = domain.rpartition(".")
        return f"{local} собака {name} точка {tld}"
    return f"{local}@{domain}"


def phone(lang: str) -> str:
    if lang == "ru":
        op = rng.choice(("912", "916", "903", "925", "985", "999", "495", "812"))
        a, b, c = digits(3), digits(2), digits(2)
        return rng.choice(
            (
                f"+7 {op} {a}-{b}-{c}",
                f"8 ({op}) {a}-{b}-{c}",
                f"+7({op}){a}{b}{c}",
                f"8{op}{a}{b}{c}" if op.startswith("9") else f"8 {op} {a} {b} {c}",
                f"+7{op}{a}{b}{c}",
                f"8-{op}-{a}-{b}-{c}",
                f"+7 ({op}) {a} {b} {c}",
            )
        )
    area, a, b = str(rng.randint(201, 989)), digits(3), digits(4)
    return rng.choice(
        (
            f"({area}) {a}-{b}",
            f"+1 {area} {a} {b}",
            f"{area}-{a}-{b}",
            f"+1-{area}-{a}-{b}",
            f"+44 20 {digits(4)} {digits(4)}",
            f"020 {digits(4)} {digits(4)}",
            f"+49 30 {digits(7)}",
            f"{area}.{a}.{b}",
            f"+33 1 {digits(2)} {digits(2)} {digits(2)} {digits(2)}",
        )
    )


EN_STREETS = (
    "Baker",
    "Oak",
    "Maple",
    "Pennsylvania",
    "Elm",
    "Sunset",
    "Park",
    "Main",
    "High",
    "King",
    "Victoria",
    "Cedar",
    "Lincoln",
    "Abbey",
    "Church",
    "Mill",
    "Old Kent",
    "Martin Luther King",
)
EN_SUFFIX = (
    "Street",
    "St.",
    "Avenue",
    "Ave",
    "Road",
    "Rd.",
    "Boulevard",
    "Blvd",
    "Lane",
    "Drive",
    "Court",
    "Place",
    "Way",
    "Terrace",
)
EN_CITIES = (
    ("Springfield", "IL", "62704"),
    ("Austin", "TX", "78701"),
    ("Portland", "OR", "97205"),
    ("Boston", "MA", "02116"),
    ("Denver", "CO", "80202"),
    ("Seattle", "WA", "98101"),
)


def address_en() -> str:
    house = rng.choice((str(rng.randint(1, 9999)), f"{rng.randint(1, 300)}{rng.choice('AB')}"))
    street = f"{house} {rng.choice(EN_STREETS)} {rng.choice(EN_SUFFIX)}"
    r = rng.random()
    if r < 0.2:
        street += f" {rng.choice(('NW', 'SE', 'NE'))}"
    if rng.random() < 0.3:
        street += rng.choice(
            (
                f", Apt {rng.randint(1, 40)}",
                f", Suite {rng.randint(100, 900)}",
                f" Apt. {rng.randint(1, 9)}{rng.choice('ABC')}",
            )
        )
    r = rng.random()
    if r < 0.4:
        city, state, zip_ = rng.choice(EN_CITIES)
        street += f", {city}, {state} {zip_}"
    elif r < 0.55:
        street += f", London {rng.choice(('NW1 6XE', 'SW1A 1AA', 'E1 6AN', 'W1D 3QF'))}"
    elif r < 0.6:
        return f"P.O. Box {rng.randint(10, 9999)}"
    return street


RU_STREET_NAMES = (
    "Ленина",
    "Пушкина",
    "Гагарина",
    "Мира",
    "Льва Толстого",
    "Садовая",
    "Советская",
    "Красных Зорь",
    "Маршала Жукова",
    "Невский",
    "8 Марта",
)
RU_CITIES = ("Москва", "Санкт-Петербург", "Казань", "Новосибирск", "Екатеринбург", "Тверь")


def address_ru() -> str:
    name = rng.choice(RU_STREET_NAMES)
    house = rng.choice(
        (
            f"д. {rng.randint(1, 150)}",
            f"дом {rng.randint(1, 99)}",
            str(rng.randint(1, 120)),
            f"{rng.randint(1, 60)}{rng.choice('АБК')}",
            f"д. {rng.randint(1, 40)}/{rng.randint(1, 9)}",
        )
    )
    form = rng.random()
    if form < 0.45:
        street = (
            f"{rng.choice(('ул.', 'улица', 'пр-т', 'проспект', 'пер.', 'б-р'))} {name}, {house}"
        )
    elif form < 0.7:
        adj = rng.choice(("Тверская", "Садовая", "Большая Никитская", "Новая", "Лесная"))
        street = f"{adj} {rng.choice(('ул.', 'улица'))}, {house}"
    elif form < 0.85:
        street = (
            f"{rng.choice(('наб.', 'шоссе', 'пл.', 'мкр.'))} "
            f"{rng.choice(('Энтузиастов', 'Победы', 'Фонтанки', 'Северный'))}, {house}"
        )
    else:
        street = f"Невский пр., {house}"
    if rng.random() < 0.4:
        street += rng.choice(
            (
                f", кв. {rng.randint(1, 300)}",
                f", корп. {rng.randint(1, 5)}",
                f", офис {rng.randint(1, 50)}",
                f", стр. 2, кв. {rng.randint(1, 99)}",
            )
        )
    if rng.random() < 0.45:
        prefix = f"г. {rng.choice(RU_CITIES)}, "
        if rng.random() < 0.3:
            prefix = f"{rng.randint(100000, 199999)}, " + prefix
        street = prefix + street
    return street


HANDLE_WORDS = ("durov", "alex", "masha", "crypto", "dev", "news", "kot", "anna", "boris", "shop")


def user() -> str:
    name = (
        rng.choice(HANDLE_WORDS)
        + rng.choice(("_", "", ""))
        + rng.choice(("fan", "2000", "official", "bot", "ru", "pro", "x", "_dev"))
    )
    return rng.choice(
        (
            f"@{name}",
            f"@{name}",
            f"t.me/{name}",
            f"https://t.me/{name}",
            f"telegram.me/{name}",
            f"https://t.me/+{''.join(rng.choices(string.ascii_letters + string.digits, k=16))}",
        )
    )


def token(alphabet: str, n: int) -> str:
    while True:
        t = "".join(rng.choice(alphabet) for _ in range(n))
        if any(c.isdigit() for c in t) and any(c.isalpha() for c in t):
            return t


ALNUM = string.ascii_letters + string.digits


def secret() -> str:
    return rng.choice(
        (
            f"sk-{token(ALNUM, 48)}",
            f"sk-proj-{token(ALNUM + '_-', 64)}",
            f"ghp_{token(ALNUM, 36)}",
            f"xoxb-{digits(12)}-{digits(13)}-{token(ALNUM, 24)}",
            f"AKIA{token(string.ascii_uppercase + string.digits, 16)}",
            f"hf_{token(ALNUM, 34)}",
            f"sk-ant-api03-{token(ALNUM + '-_', 80)}",
            f"glpat-{token(ALNUM, 20)}",
            f"{digits(10)}:AA{token(ALNUM + '_-', 33)}",
        )
    )


def ipv4() -> str:
    first = rng.choice((5, 31, 46, 77, 85, 91, 95, 178, 185, 194, 203, 212, 8, 10, 172, 192))
    rest = (168 if first == 192 else rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254))
    return ".".join(map(str, (first, *rest)))


def ipv6() -> str:
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    if rng.random() < 0.5:
        return f"2001:db8::{groups[5]}:{groups[6]}"
    return ":".join(["2a02", *groups[1:]])


# --- templates -------------------------------------------------------------------------------
# "{E}" is the entity slot; a template may have one or two (E1, E2).
POSITIVE = {
    "EMAIL": (
        {
            "en": (
                "Please reply to {E} by Friday.",
                "My email is {E}",
                "Contact: {E}, ask for the invoice.",
                "Send the draft to {E} and cc me.",
                "Reach the landlord at {E} — he answers fast.",
                "Sign it: Kate, {E}",
            ),
            "ru": (
                "Мой адрес: {E}, пишите.",
                "Отправьте резюме на {E} до пятницы.",
                "Почта для связи — {E}",
                "Ответь, пожалуйста, на {E}, там ждут.",
                "Подпись: Ольга, {E}",
            ),
        },
        email,
    ),
    "PHONE": (
        {
            "en": (
                "Call me at {E} after six.",
                "My number is {E}.",
                "Phone: {E}",
                "You can text {E} any time.",
                "Reach the office on {E}, ext. 12",
                "The plumber's number is {E}, he is cheap.",
            ),
            "ru": (
                "Позвоните мне по номеру {E} вечером.",
                "Мой телефон {E}.",
                "тел. {E}",
                "Звоните: {E}, спросите Ивана.",
                "Напиши в вотсап {E}",
                "Курьер оставил номер {E}, перезвони ему.",
            ),
        },
        "phone",
    ),
    "CARD": (
        {
            "en": (
                "My card is {E}, expiry 09/28.",
                "Charge {E} please.",
                "card number: {E}",
                "I paid with {E} but the money is gone.",
            ),
            "ru": (
                "Номер карты {E}, срок 11/27.",
                "Переведи на карту {E}.",
                "Карта: {E}",
                "Списали деньги с {E}, что делать?",
            ),
        },
        card,
    ),
    "IBAN": (
        {
            "en": (
                "Wire the deposit to IBAN {E}.",
                "My IBAN: {E}",
                "Pay into {E} (Barclays).",
                "Bank details: {E}, ref. rent",
            ),
            "ru": (
                "Реквизиты: IBAN {E}.",
                "Переведите на {E}, это мой счёт в Германии.",
                "IBAN получателя {E}",
            ),
        },
        iban,
    ),
    "ACCOUNT": (
        {
            "en": ("Russian account: {E}, Sberbank.", "Send roubles to account {E}."),
            "ru": (
                "Мой р/с {E} в Сбербанке.",
                "Расчётный счёт {E}, БИК 044525225.",
                "Номер счёта: {E}",
                "Переведите зарплату на счёт {E}.",
            ),
        },
        account,
    ),
    "ID": (
        {
            "en": (
                "My INN is {E}.",
                "SSN {E}, please keep it private.",
                "Social security number: {E}",
                "passport {E}, issued 2019",
            ),
            "ru": (
                "ИНН {E}",
                "Мой ИНН: {E}, проверьте.",
                "СНИЛС {E}",
                "Паспорт {E}, выдан ОВД.",
                "паспорт серия {E}",
                "ИНН организации {E}, КПП 773601001.",
            ),
        },
        "id",
    ),
    "ADDRESS": (
        {
            "en": (
                "Ship it to {E}.",
                "I live at {E}, second floor.",
                "Our office: {E}",
                "Deliver to {E} before noon.",
                "The party is at {E}, bring snacks.",
            ),
        },
        address_en,
    ),
    "ADDRESS_RU": (
        {
            "ru": (
                "Доставьте на адрес: {E}.",
                "Я живу по адресу {E}, домофон не работает.",
                "Адрес офиса — {E}",
                "Привезите посылку: {E}",
                "Встречаемся у дома: {E}.",
            ),
        },
        address_ru,
    ),
    "USER": (
        {
            "en": (
                "Ping {E} about it.",
                "Follow {E} for updates",
                "DM me: {E}",
                "ask {E}, he knows",
            ),
            "ru": (
                "Напиши {E}, он поможет.",
                "Мой телеграм: {E}",
                "Подпишись на {E}",
                "Контакт в телеге — {E}",
            ),
        },
        user,
    ),
    "SECRET": (
        {
            "en": (
                "OPENAI_API_KEY={E}",
                "My key is {E}, why does it fail?",
                'client = OpenAI(api_key="{E}")',
                "token: {E}",
            ),
            "ru": ("Вот мой ключ {E}, почему 401?", "Токен бота: {E}", "export TOKEN={E}"),
        },
        secret,
    ),
    "IP": (
        {
            "en": (
                "My server is at {E}, can't ssh in.",
                "ping {E} times out",
                "Allow {E} in the firewall.",
                "The log shows requests from {E}.",
            ),
            "ru": (
                "Мой сервер {E}, не пускает по ssh.",
                "Заблокируй IP {E}.",
                "Запросы идут с адреса {E}",
            ),
        },
        "ip",
    ),
}


def value_for(kind: str, lang: str, template: str) -> str:
    if kind == "phone":
        return phone(lang)
    if kind == "ip":
        return ipv4() if rng.random() < 0.75 else ipv6()
    if kind == "id":
        lowered = template.lower()
        if "инн" in lowered or "inn" in lowered:
            return inn(rng.choice((10, 12)))
        if "снилс" in lowered:
            return snils(rng.random() < 0.8)
        if "ssn" in lowered or "social" in lowered:
            return ssn()
        if "серия" in lowered:
            return f"{digits(4)} {digits(6)}"
        return f"{digits(2)} {digits(2)} {digits(6)}"
    return kind


SNIPPETS_PER = {
    "EMAIL": 34,
    "PHONE": 36,
    "CARD": 20,
    "IBAN": 20,
    "ACCOUNT": 16,
    "ID": 36,
    "ADDRESS": 22,
    "ADDRESS_RU": 24,
    "USER": 24,
    "SECRET": 22,
    "IP": 24,
}


def positives() -> list[dict]:
    rows = []
    for kind, (templates, make) in POSITIVE.items():
        label = kind.removesuffix("_RU")
        for i in range(SNIPPETS_PER[kind]):
            lang = list(templates)[i % len(templates)]
            template = rng.choice(templates[lang])
            value = make() if callable(make) else value_for(make, lang, template)
            start = template.index("{E}")
            text = template.replace("{E}", value)
            rows.append(
                {
                    "lang": lang,
                    "text": text,
                    "entities": [{"type": label, "start": start, "end": start + len(value)}],
                }
            )
    # Mixed snippets: several entities in one message, as in real requests.
    for i in range(30):
        lang = "ru" if i % 2 else "en"
        parts = (
            [
                ("Меня зовут Анна, почта ", None),
                (email(), "EMAIL"),
                (", телефон ", None),
                (phone("ru"), "PHONE"),
                (", адрес: ", None),
                (address_ru(), "ADDRESS"),
                (".", None),
            ]
            if lang == "ru"
            else [
                ("Hi, I'm Sam (", None),
                (email(), "EMAIL"),
                ("), call ", None),
                (phone("en"), "PHONE"),
                (" or drop by ", None),
                (address_en(), "ADDRESS"),
                (".", None),
            ]
        )
        if i % 3 == 0:
            parts[-1:] = [
                (" Карта " if lang == "ru" else " Card ", None),
                (card(), "CARD"),
                (".", None),
            ]
        text, entities = "", []
        for chunk, label in parts:
            if label:
                entities.append({"type": label, "start": len(text), "end": len(text) + len(chunk)})
            text += chunk
        rows.append({"lang": lang, "text": text, "entities": entities})
    return rows


NEGATIVE_EN = (
    "The meeting moved to 2026-11-23 at 10:30.",
    "Deadline: 23.11.2026, 18:00 Moscow time.",
    "Upgrade to v1.2.3.4 before Monday.",
    "pip install torch==2.5.1 transformers==4.56.0",
    "It costs $1,299.99 or 1 299 999 rubles in total.",
    "Order #4829173650 was shipped.",
    "Your order number is 100234987612 — keep it.",
    "Compute 3.14159 * 2.71828 / 1.41421.",
    "color: #ff00aa; background: #1e1e1e;",
    "id = '550e8400-e29b-41d4-a716-446655440000'",
    "ISBN 978-3-16-148410-0, second edition.",
    "In 1905 the population was 1 250 000.",
    "Sherlock Holmes lived on Baker Street in the stories.",
    "Try gpt-4o-mini or Llama-3.1-8B-Instruct.",
    "git clone git@github.com:openai/openai-python.git",
    "@property\ndef name(self):\n    return self._name",
    "@media (max-width: 600px) { body { margin: 0 } }",
    "npm i @types/node react@18.2.0",
    "Chrome 120.0.6099.109 crashed again.",
    "The ratio is 16:9 and the score was 3:1.",
    "Set the netmask to 255.255.255.0 and bind 0.0.0.0.",
    "curl http://127.0.0.1:8000/health",
    "Commit 9fceb02d0ae598e95dc970b74767f19372d61af8 fixed it.",
    "The answer is 42, not 24.",
    "Between 1990 and 2020 GDP grew 3.5% a year.",
    "Use sk-learn? No, it's scikit-learn.",
    "Set OPENAI_API_KEY=sk-... in your .env file.",
    "Authorization: Bearer <your token here>",
    "The train leaves at 07:45 from platform 9 3/4.",
    "Room 1204, floor 12, building B.",
    "std::vector<int> v; v.push_back(1);",
    "MAC 00:1A:2B:3C:4D:5E is on the list.",
    "Coordinates: 55.7558, 37.6173.",
    "Timestamp 1732406400 is in seconds.",
    "Page 212 of 1,024; see footnote 17.",
    "Running Python 3.11.4 on Ubuntu 24.04.",
    "The model has 70,000,000,000 parameters.",
    "A 4K monitor is 3840x2160 pixels.",
    "Tracking code AB123456789CD arrives Tuesday.",
    "matrix = [[1, 2, 3], [4, 5, 6]]",
    "for i in range(10_000_000): total += i",
    "Invoice INV-2026-000123 is overdue.",
    "Meet me at the station at noon.",
    "Look at example.com for the docs.",
    "Lot 4111111111111112 failed QA.",
    "Serial 1234567890123456 on the label.",
    "He ran 10 000 metres in 27:43.12.",
    "Fibonacci: 1 1 2 3 5 8 13 21 34 55 89 144",
    "Our API is at https://api.example.com/v1/chat.",
    "Version 10.0.19045.3693 of Windows.",
    "Use port 5432 for Postgres and 6379 for Redis.",
    "Population 8 336 817 (2020 census).",
    "C:\\Users\\Public\\Documents\\report_2026.docx",
    "Flight SU 1234 departs 06:15.",
    "Set timeout=30 and retries=5.",
    "The bus 42 stops at Oak Street.",
    "Section 4.2.1 covers the details.",
    "Temperature range: -40 to 85 C.",
    "decorators like @staticmethod and @classmethod",
    "Email validation regex: \\w+@\\w+\\.\\w+",
    "The product code is 4006381333931.",
    "SHA256: e3b0c44298fc1c149afbf4c8996fb924",
    "Run docker run -p 8080:80 nginx:1.25.3",
    "In base64 that is aGVsbG8gd29ybGQ=",
    "A 15% tip on $84.50 is $12.68.",
    "Model qwen2.5-72b-instruct scores 85.3 on MMLU.",
    "The patch is 2.4.1-rc2.",
    "Budget: 12 500 000 for 2027.",
)
NEGATIVE_RU = (
    "Встреча перенесена на 23.11.2026 в 10:30.",
    "Срок сдачи — 1 декабря 2026 г.",
    "Цена 1 999 ₽, со скидкой 1 499 ₽.",
    "Заказ № 4829173650 отправлен курьером.",
    "В 2026 году выручка выросла на 15,5%.",
    "Дом был построен в 1905 году.",
    "На улице Ленина было тихо и пусто.",
    "Улица была пустой, только ветер.",
    "Решите уравнение 3x + 5 = 20.",
    "Население города 12 655 050 человек.",
    "Версия 1.2.3.4 уже вышла.",
    "Установи torch==2.5.1 и transformers.",
    "Поезд отходит в 07:45 с третьего пути.",
    "Курс доллара 92,45 рубля.",
    "Температура от -5 до +3 градусов.",
    "Он пробежал 42 км за 3:05:12.",
    "Глава 4, страница 212.",
    "Номер рейса SU 1234, вылет в 06:15.",
    "Код товара 4006381333931 на упаковке.",
    "Используй @dataclass для этой модели.",
    "В Москве 12 миллионов жителей.",
    "Счёт в матче 3:1 в пользу Спартака.",
    "Площадь квартиры 54,3 кв. м.",
    "Процентная ставка 16% годовых.",
    "Бюджет на 2027 год — 12 500 000 рублей.",
    "Сравни модели gpt-4o и Llama-3.1-70B.",
    "Перейди на сайт example.com и скачай.",
    "Номер заказа 100234987612, сохраните.",
    "Ответ: 2 + 2 = 4, а 7 * 8 = 56.",
    "Приходи в 19:00 к памятнику Пушкину.",
    "С 1990 по 2020 год ВВП вырос вдвое.",
    "Переменная x = 3.14159 — это число пи.",
    "Ключ API храните в переменной окружения, не в коде.",
    "Токен выглядит как sk-...",
    "Протокол 802.11ac поддерживает 5 ГГц.",
    "Файл report_2026-11-23.pdf приложен.",
    "Тираж книги — 5 000 экземпляров.",
    "В классе 28 учеников, из них 15 девочек.",
    "Серия фильмов из 8 частей.",
    "Паспортный стол работает с 9 до 18.",
    "ИНН можно узнать на сайте налоговой.",
    "Номер телефона указывать не нужно.",
    "БИК банка 044525225.",
    "Индекс выпуска 7.2.1 стабилен.",
    "Семинар пройдёт в ауд. 1204 корпуса Б.",
    "Масса 2,5 кг, объём 1,2 л.",
    "Скорость 120 км/ч, расстояние 350 км.",
    "Решено в 2024, пересмотрено в 2025.",
    "Чек № 000123 от 12.03.2026 на 3 450 ₽.",
    "Мой любимый проспект — Невский, там красиво.",
    "Сумма 1 000 000 000 рублей — это миллиард.",
    "Артикул 123-456-789 нет на складе.",
    "Номер ошибки 0x80070005 в Windows.",
    "Разрешение 1920x1080, 60 Гц.",
    "Год основания — 1147, Москве 879 лет.",
    "Код региона 77, 97, 99, 177.",
    "Лот 4111111111111112 не прошёл проверку.",
    "Серийный номер 1234567890123456.",
    "Частота 2.4 ГГц и 5.8 ГГц.",
    "Смотри раздел 4.2.1 документации.",
    "Гагарин полетел 12 апреля 1961 года.",
    "Цена акции 285,40 ₽ за штуку.",
    "Прогрессия: 2, 4, 8, 16, 32, 64, 128.",
    "Запусти docker run -p 8080:80 nginx.",
    "Напиши функцию на Python 3.12 с @lru_cache.",
    "Время ответа 250 мс, p99 — 1,2 с.",
)
EN_FILLERS = ("Quick question:", "FYI,", "Note:", "Hmm.", "As discussed,", "Reminder:", "")
RU_FILLERS = ("Вопрос:", "Кстати,", "Заметка:", "Хм.", "Как договорились,", "Напоминаю:", "")


def negatives() -> list[dict]:
    rows = []
    for lang, pool, fillers in (("en", NEGATIVE_EN, EN_FILLERS), ("ru", NEGATIVE_RU, RU_FILLERS)):
        for text in pool:
            rows.append({"lang": lang, "text": text, "entities": []})
        # Generated hard cases: numbers shaped like PII that are not.
        for _ in range(40):
            kind = rng.choice(
                ("date", "order", "price", "version", "time", "math", "card_bad", "inn_bad", "year")
            )
            if kind == "date":
                y, m, d = rng.randint(2000, 2030), rng.randint(1, 12), rng.randint(1, 28)
                iso = f"{y}-{m:02d}-{d:02d}"
                d, m, y = rng.randint(1, 28), rng.randint(1, 12), rng.randint(1990, 2030)
                dotted = f"{d:02d}.{m:02d}.{y}"
                m, d, y = rng.randint(1, 12), rng.randint(1, 28), rng.randint(1990, 2030)
                value = rng.choice((iso, dotted, f"{m}/{d}/{y}"))
            elif kind == "order":
                value = f"#{rng.randint(10000, 99999999)}"
            elif kind == "price":
                currency = "₽" if lang == "ru" else "USD"
                value = f"{rng.randint(1, 999)} {rng.randint(100, 999)} {currency}"
            elif kind == "version":
                value = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}"
            elif kind == "time":
                value = (
                    f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
                )
            elif kind == "math":
                value = f"{rng.randint(100, 9999)} * {rng.randint(100, 9999)} = ?"
            elif kind == "card_bad":
                good = luhn_complete("4", 16)
                bad = good[:-1] + str((int(good[-1]) + rng.randint(1, 9)) % 10)
                value = " ".join(bad[i : i + 4] for i in range(0, 16, 4))
            elif kind == "inn_bad":
                good = inn(12)
                value = good[:-1] + str((int(good[-1]) + rng.randint(1, 9)) % 10)
            else:
                value = str(rng.randint(1800, 2030))
            label = {
                "date": ("date", "дата"),
                "order": ("order", "заказ"),
                "price": ("total", "итого"),
                "version": ("version", "версия"),
                "time": ("elapsed", "время"),
                "math": ("compute", "посчитай"),
                "card_bad": ("reference", "номер документа"),
                "inn_bad": ("batch", "партия"),
                "year": ("since", "с"),
            }[kind]
            word = label[1] if lang == "ru" else label[0]
            rows.append(
                {
                    "lang": lang,
                    "text": f"{rng.choice(fillers)} {word} {value}".strip(),
                    "entities": [],
                }
            )
    return rows


# Written by hand from real-looking messages, not from the templates above; "[[TYPE:value]]"
# marks an entity. Some are formats the recognisers are known to miss (see the README).
HAND_POSITIVE = (
    ("en", "ssh root@[[IP:203.0.113.54]] -p 2222 hangs"),
    ("en", "my ip is [[IP:10.0.0.12]], the router is [[IP:10.0.0.1]]"),
    ("en", "reach me: [[EMAIL:ivan.petrov at gmail.com]]"),
    ("en", "my number is [[PHONE:555-0142]], landline"),
    ("en", "Write to [[EMAIL:JOHN.SMITH@EXAMPLE.COM]] in caps, it works"),
    ("en", "she lives at [[ADDRESS:12 Hill Road]], flat 3"),
    ("en", "address: [[ADDRESS:350 Fifth Avenue, New York, NY 10118]]"),
    ("en", "Our HQ moved to [[ADDRESS:One Infinite Loop, Cupertino]]."),
    ("en", "curl -H 'Authorization: Bearer [[SECRET:4f9a8c2e1b7d6053a9e8f7c6b5a4d3e2f1]]'"),
    ("en", "DATABASE_URL=postgres://app:[[SECRET:S3cr3tPass]]@db.internal:5432/app"),
    ("en", "card [[CARD:4111111111111111]] exp 12/29"),
    ("en", "IPv6 of the box: [[IP:2a00:1450:4001:82b::200e]]"),
    ("en", "tg: [[USER:@kate_mills]] / mail [[EMAIL:kate.mills@outlook.com]]"),
    ("en", "SSN is [[ID:536 22 8726]] according to the form"),
    ("en", "Fax [[PHONE:+1 212 555 0199]] is dead, use [[EMAIL:office@lawfirm.us]]"),
    ("ru", "пишите на [[EMAIL:Иван.Петров@почта.рф]]"),
    ("ru", "мой номер [[PHONE:8 916 123 45 67]], звонить после 18"),
    ("ru", "д. 5 по [[ADDRESS:ул. Ленина]], кв. 12 — там и встретимся"),
    ("ru", "Москва, [[ADDRESS:ул. Арбат 10]], второй подъезд"),
    ("ru", "адрес [[ADDRESS:Ленинский проспект, 32А]], офис 5"),
    ("ru", "мой инн [[ID:773601001287]] для чека"),
    ("ru", "паспорт: [[ID:4510 123456]], выдан 01.02.2015"),
    ("ru", "Карта Мир [[CARD:2200 7001 2345 6781]]"),
    ("ru", "ссылка на канал [[USER:https://t.me/durov]]"),
    ("ru", "ключ [[SECRET:sk-proj-9fKx2LmQ7vT1bN4cR8sW3yH6jD0pZ5aE]] не работает"),
    ("ru", "сервер [[IP:95.163.240.17]] не отвечает на 443"),
    ("ru", "номер телефона [[PHONE:+375 29 123-45-67]] (Беларусь)"),
    ("ru", "р/с [[ACCOUNT:40702810938000012345]], к/с 30101810400000000225"),
)
HAND_NEGATIVE = (
    ("en", "Release 2.0.0.1 fixes the crash."),
    ("en", "pip install numpy==1.26.4.1"),
    ("en", "See RFC 5737: use 192.0.2.x in docs."),
    ("en", "It happened on 12/03/2026 at 9:41."),
    ("en", "Call the function at line 1024 of main.py."),
    ("en", "Lakers won 112-104 tonight."),
    ("en", "The range 1000-2000-3000 is invalid."),
    ("en", "Order 8 800 units by Monday."),
    ("en", "@everyone please read the pinned message"),
    ("en", "We met at the corner of Oak and Main."),
    ("en", "UUIDs like 123e4567-e89b-12d3-a456-426614174000 are fine."),
    ("en", "email me later, I'm at work"),
    ("en", "Dial 911 or 112 in an emergency."),
    ("ru", "Звоните 112 в экстренных случаях."),
    ("ru", "Скидка 8 800 рублей до 2026-12-31."),
    ("ru", "Версия 2.0.0.1 исправляет ошибку."),
    ("ru", "Счёт 2:1, матч окончен в 21:45."),
    ("ru", "Номер заказа 1234-5678-9012 в письме."),
    ("ru", "На ул. Ленина сегодня ярмарка."),
    ("ru", "Дом 5 на этой улице снесли в 2019 году."),
    ("ru", "г. выпуска 2015, пробег 120 000 км."),
    ("ru", "Пишите в личку, ник не скажу."),
    ("ru", "Ссылку t.me пришлю позже."),
    ("ru", "Индекс 101000 — это Москва."),
    ("ru", "ИНН бывает 10 или 12 цифр."),
)

# Held out: written after the recognisers were last changed and not used to change them.
HELDOUT_POSITIVE = (
    ("en", "Please invoice [[EMAIL:accounts.payable@northwind-traders.com]] monthly."),
    ("en", "text me on [[PHONE:+1 (415) 555-2671]] when you land"),
    ("en", "The venue is [[ADDRESS:77 Massachusetts Ave, Cambridge, MA 02139]]."),
    ("en", "My flat: [[ADDRESS:14 Queen's Gate Terrace]], London."),
    ("en", "Visa [[CARD:4012888888881881]], CVV is on the back"),
    ("en", "Transfer to [[IBAN:FR76 3000 6000 0112 3456 7890 189]], thanks!"),
    ("en", "Leaked key: [[SECRET:AKIAJ7Q2XH4LMNB5OPQR]] — rotate it"),
    ("en", "Follow [[USER:@nasa_jpl_news]] for the launch"),
    ("en", "connection refused from [[IP:198.51.100.23]]:51234"),
    ("en", "my SSN: [[ID:412-61-3987]]"),
    ("en", "GitHub token [[SECRET:ghp_16C7e42F292c6912E7710c838347Ae178B4a]] expired"),
    ("en", "e-mail: [[EMAIL:tom[at]smith-family.net]]"),
    ("ru", "Пришлите договор на [[EMAIL:buh@roga-i-kopyta.ru]], пожалуйста."),
    ("ru", "Мобильный: [[PHONE:+7 (926) 555-12-34]]"),
    ("ru", "Живу на [[ADDRESS:ул. Малая Бронная, д. 24, кв. 7]], код домофона 45"),
    ("ru", "Офис: [[ADDRESS:г. Казань, ул. Баумана, 58]]"),
    ("ru", "СНИЛС [[ID:123-456-789 64]], полис ОМС потом"),
    ("ru", "ИНН ИП [[ID:7707083893]]"),
    ("ru", "Карта [[CARD:5469 3800 4123 4567]] Сбера"),
    ("ru", "счёт получателя [[ACCOUNT:40817810500001234567]]"),
    ("ru", "мой тг [[USER:t.me/vasya_pupkin]], пиши"),
    ("ru", "VPS на [[IP:45.89.127.204]], root-пароль сбросил"),
    ("ru", "паспорт [[ID:46 08 765432]], прописка московская"),
    ("ru", "вот токен HF: [[SECRET:hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789]]"),
    ("ru", "звони [[PHONE:89161234567]] после обеда"),
)
HELDOUT_NEGATIVE = (
    ("en", "Set the learning rate to 3e-4 and batch size to 256."),
    ("en", "The 737 MAX 8 was grounded in 2019."),
    ("en", "Use f-strings: f'{x:08.3f}'"),
    ("en", "Apartment 5B is on the fifth floor."),
    ("en", "Kernel 6.8.0-49-generic boots fine."),
    ("en", "The invoice total was 12,345.67 EUR."),
    ("en", "On 1/2/2026 the price was 19.99."),
    ("en", "Use `ssh -p 2222 localhost`."),
    ("en", "HTTP 404 on /api/v2/users/12345."),
    ("en", "PEP 8 says lines up to 79 chars."),
    ("en", "Street Fighter 6 is out."),
    ("en", "vector<int> a(1000000, 0);"),
    ("ru", "Установи CUDA 12.4 и драйвер 550.54.15."),
    ("ru", "Рост 182 см, вес 78 кг."),
    ("ru", "Сдача 3 450 руб. с 5 000."),
    ("ru", "Квартира 54 находится на 3 этаже."),
    ("ru", "В 14:30 созвон, в 16:00 ревью."),
    ("ru", "Маршрут 904 ходит каждые 15 минут."),
    ("ru", "ГОСТ Р 52872-2019 про доступность сайтов."),
    ("ru", "Номер ошибки 0xC000021A."),
    ("ru", "У нас 2 500 000 пользователей и 120 серверов."),
    ("ru", "На проспекте пробки."),
    ("ru", "Пропорция 1:2:4 для бетона."),
    ("ru", "Улица Ленина есть в каждом городе."),
)


def hand_rows(rows: tuple[tuple[str, str], ...], split: str = "dev") -> list[dict]:
    out = []
    for lang, marked in rows:
        text, entities, rest = "", [], marked
        while "[[" in rest:
            head, _, tail = rest.partition("[[")
            body, _, rest = tail.partition("]]")
            label, _, value = body.partition(":")
            text += head
            entities.append({"type": label, "start": len(text), "end": len(text) + len(value)})
            text += value
        out.append({"lang": lang, "text": text + rest, "entities": entities, "split": split})
    return out


def build() -> list[dict]:
    """Every snippet, drawn afresh from the seed."""
    rng.seed(SEED)
    rows = (
        positives()
        + hand_rows(HAND_POSITIVE)
        + negatives()
        + hand_rows(HAND_NEGATIVE)
        + hand_rows(HELDOUT_POSITIVE, "heldout")
        + hand_rows(HELDOUT_NEGATIVE, "heldout")
    )
    for row in rows:
        row.setdefault("split", "dev")
    return rows


def main() -> None:
    rows = build()
    with OUT.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    pos = sum(bool(r["entities"]) for r in rows)
    print(f"{OUT}: {pos} positive, {len(rows) - pos} negative snippets")


if __name__ == "__main__":
    main()
