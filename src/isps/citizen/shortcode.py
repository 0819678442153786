"""The inbound short code (like BISP's 8171): what a citizen texts and what ISPS answers.

:func:`answer` is the handler ``messaging.inbound.receive`` calls for every inbound text (after it
has stored it, applied the rate limit and taken STOP/START); it returns the reply, which messaging
queues. It reads, and for EMP and COMPLAIN writes, in the caller's transaction.

What a citizen may text (any case, extra spaces and punctuation tolerated, English, Roman Urdu or
Urdu script, Urdu or Arabic-Indic digits):

* a CNIC (13 digits, dashes or not, optionally after ``CNIC``/``STATUS``/``شناختی``): the household's
  status (:mod:`isps.citizen.standing`), but only to a phone registered for that household. To any
  other phone, and for a CNIC not in the registry, the same reply (visit a One Window counter): the
  reply says nothing about whether the CNIC is registered, since a CNIC is not a secret;
* a receipt number (``OW…``/``GR…``): the application's or grievance's status, no personal data;
* ``EMP <status>`` (``KAAM``, ``کام``, ``روزگار``): the quarterly employment self-report of the person
  whose phone this is; ``EMP <CNIC> <status>`` when the phone is shared;
* ``COMPLAIN <text>`` (``SHIKAYAT``, ``شکایت``): a grievance, answered with its receipt;
* ``HELP`` (``MADAD``, ``مدد``) or anything else: the list of keywords.

The reply is in Urdu when the text is in Urdu script (or the phone's holder prefers Urdu), else in
English, and kept to two SMS parts where it can be (programs beyond that are counted, not named).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from isps.access.service import Principal, audit
from isps.catalogue import display_name
from isps.citizen import applications, grievances, receipts, standing as standing_of
from isps.citizen.grievances.models import Grievance
from isps.labour import reports as labour_reports
from isps.labour.models import LabourPerson
from isps.labour.status import LabourError
from isps.messaging import phones
from isps.registry import cnic as cnic_rules
from isps.registry import current
from isps.registry.models import Individual

CHANNEL = "sms"
ROLE = "citizen"

# ---------------------------------------------------------------- parsing

KEYWORDS = {
    "help": ("help", "madad", "maddad", "info", "menu", "?", "مدد", "معلومات"),
    "emp": ("emp", "employment", "kaam", "kam", "rozgar", "روزگار", "کام", "ملازمت"),
    "complain": ("complain", "complaint", "shikayat", "shikayet", "shikait", "shikayt", "شکایت", "شکایات"),
    "status": ("cnic", "status", "nic", "halat", "شناختی", "حالت", "اسٹیٹس"),
}
_KEYWORD_OF = {word: kind for kind, words in KEYWORDS.items() for word in words}

# what may follow EMP: the labour registry's reportable codes (labour.vocab.REPORTABLE), in words
EMP_WORDS = {
    "employed_formal": ("formal", "naukri", "nokri", "salary", "employed_formal", "نوکری", "ملازم", "تنخواہ"),
    "employed_informal": ("job", "work", "employed", "informal", "kaam", "kam", "employed_informal", "کام",
                          "ملازمت"),
    "self_employed": ("self", "business", "karobar", "dukan", "shop", "self_employed", "کاروبار", "دکان", "دوکان"),
    "daily_wager": ("daily", "wager", "dihari", "dihaari", "diharri", "mazdoor", "mazdoori", "labour", "daily_wager",
                    "دیہاڑی", "دیہاڑی", "مزدور", "مزدوری"),
    "unemployed": ("none", "no", "unemployed", "jobless", "berozgar", "berozgaar", "bekar", "بے روزگار",
                   "بیروزگار", "بےروزگار", "بیکار"),
    "not_in_labour_force": ("home", "housework", "ghar", "not_in_labour_force", "گھر", "گھریلو"),
    "student": ("student", "talib", "parhai", "طالب", "طالبعلم", "پڑھائی"),
    "retired": ("retired", "retire", "pension", "ریٹائرڈ", "پنشن"),
}
EMP_NUMBERS = {"1": "employed_formal", "2": "employed_informal", "3": "self_employed", "4": "daily_wager",
               "5": "unemployed", "6": "not_in_labour_force", "7": "student", "8": "retired"}
_EMP_OF = {word: code for code, words in EMP_WORDS.items() for word in words}

# grievance categories a complaint's words point at (anything else is "other")
CATEGORY_WORDS = {
    "agent_deduction": ("deduction", "deducted", "cut", "katoti", "kati", "kaat", "کٹوتی", "کاٹ", "کاٹے"),
    "payment_partial": ("partial", "partly", "less", "kam", "adhi", "aadhi", "کم", "آدھی", "ادھوری"),
    "payment_not_received": ("payment", "paisa", "paise", "paisay", "raqam", "money", "received", "mila",
                             "ادائیگی", "رقم", "پیسے", "ملی", "ملے"),
    "wrong_exclusion": ("excluded", "exclusion", "removed", "nikal", "nikala", "eligible", "اخراج", "نکال", "نکالا"),
    "data_error": ("data", "wrong", "ghalat", "galat", "name", "spelling", "غلط", "نام"),
    "staff_conduct": ("rude", "bribe", "rishwat", "badtameez", "behaviour", "behavior", "رشوت", "بدتمیز", "بدتمیزی"),
}
AGENT_WORDS = ("agent", "ایجنٹ", "retailer", "franchise", "dukandar")
AGENT_CATEGORIES = grievances.service.AGENT_CATEGORIES  # a grievance of these names the agent (its outlet)

# the citizen's word on a resolved grievance: "<receipt> YES" closes it, "<receipt> NO" reopens it
ANSWER_WORDS = {True: ("yes", "y", "ok", "haan", "han", "ji", "theek", "ہاں", "جی", "ٹھیک"),
                False: ("no", "n", "nahi", "nahin", "nai", "نہیں", "نہ")}
_ANSWER_OF = {w: v for v, words in ANSWER_WORDS.items() for w in words}
_RECEIPT_AND_WORD = re.compile(r"^((?:OW|GR)[\s-]*\d{2,12})[\s,.:;!-]+(\S+)$", re.IGNORECASE)
_URDU = re.compile(r"[\u0600-\u06FF]")
_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_CNIC_LIKE = re.compile(r"^[\d\s\-–.]+$")
_CNIC_IN = re.compile(r"(?<![\d])(\d{5}[\s\-–.]?\d{7}[\s\-–.]?\d)(?![\d])")
_EDGES = " \t\r\n.,;:!'\"()[]{}<>*#،۔؛"


@dataclass(frozen=True)
class Parsed:
    kind: str            # cnic | bad_cnic | receipt | answer | emp | complain | help
    arg: str = ""        # the CNIC digits, the receipt text, the complaint, or what was wrong
    urdu: bool = False
    status: str | None = None   # EMP: the reportable code (None when it was not understood); answer: yes | no
    cnic: str | None = None     # EMP: a CNIC given with it


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "").translate(_DIGITS)
    text = text.replace("\u200c", " ").replace("\u200f", "").replace("\u200e", "")
    return re.sub(r"\s+", " ", text).strip(_EDGES)


def _word(token: str) -> str:
    return token.strip(_EDGES).lower()


def parse(text: str) -> Parsed:
    """What a text asks for (see the module docstring). Never raises."""
    clean = _clean(text)
    urdu = bool(_URDU.search(clean))
    if not clean:
        return Parsed("help", urdu=urdu)
    if receipts.looks_like(clean):
        return Parsed("receipt", clean, urdu)
    said = _RECEIPT_AND_WORD.match(clean)
    if said and _word(said.group(2)) in _ANSWER_OF:
        return Parsed("answer", said.group(1), urdu, "yes" if _ANSWER_OF[_word(said.group(2))] else "no")
    tokens = clean.split(" ")
    first = _word(tokens[0])
    kind = _KEYWORD_OF.get(first)
    # Urdu keywords written as two words ("بے روزگار" is a status, "شکایت درج" a complaint)
    rest = " ".join(tokens[1:]).strip(_EDGES)
    if kind == "status":
        clean, kind = rest, None
        if receipts.looks_like(clean):
            return Parsed("receipt", clean, urdu)
    if kind is None:
        if _CNIC_LIKE.match(clean) and sum(ch.isdigit() for ch in clean) >= 5:
            return _cnic(clean, urdu)
        return Parsed("help", urdu=urdu)
    if kind == "help":
        return Parsed("help", urdu=urdu)
    if kind == "complain":
        return Parsed("complain", rest, urdu)
    # EMP [CNIC] <status> | EMP <status> [CNIC]
    cnic = None
    found = _CNIC_IN.search(rest)
    if found:
        cnic = re.sub(r"\D", "", found.group(1))
        rest = (rest[:found.start()] + " " + rest[found.end():]).strip(_EDGES + " ")
    stray = re.search(r"\d[\d\-–.]{3,}\d", rest)  # a number that is not a CNIC: say so, record nothing
    if stray:
        return _cnic(stray.group(0), urdu) if cnic is None else Parsed("help", urdu=urdu)
    return Parsed("emp", rest, urdu, _emp_status(rest), cnic)


def _emp_status(words: str) -> str | None:
    words = words.strip(_EDGES).lower()
    if not words:
        return None
    if words in EMP_NUMBERS:
        return EMP_NUMBERS[words]
    if words in _EMP_OF:
        return _EMP_OF[words]
    for phrase, code in sorted(_EMP_OF.items(), key=lambda kv: -len(kv[0])):  # "بے روزگار" before "روزگار"
        if " " in phrase and phrase in words:
            return code
    codes = {_EMP_OF[w] for w in (_word(t) for t in words.split(" ")) if w in _EMP_OF}
    return codes.pop() if len(codes) == 1 else None


def _cnic(clean: str, urdu: bool) -> Parsed:
    digits = re.sub(r"\D", "", clean)
    try:
        return Parsed("cnic", cnic_rules.validate(digits), urdu)
    except cnic_rules.CnicError:
        if len(digits) != 13:
            return Parsed("bad_cnic", f"length:{len(digits)}", urdu)
        return Parsed("bad_cnic", "first_digit", urdu)


def category_of(description: str) -> str:
    """The grievance category a complaint's words point at, or ``other``."""
    words = {_word(t) for t in _clean(description).split(" ")}
    low = _clean(description).lower()
    for category, hints in CATEGORY_WORDS.items():
        if any(h in words or (" " in h and h in low) for h in hints):
            if category == "staff_conduct" and words & set(AGENT_WORDS):
                return "agent_conduct"
            return category
    return "other"


# ---------------------------------------------------------------- the replies

REPLIES = {
    "en": {
        "help": "ISPS: send your CNIC (13 digits) for your status; a receipt no. (OW.. or GR..) for its status; "
                "EMP JOB / EMP DAILY / EMP SELF / EMP NONE for your quarterly work report; COMPLAIN and your "
                "complaint; STOP to stop messages.",
        "bad_cnic.length": "That CNIC has {n} digits. Send the 13 digits of the CNIC, e.g. 35202-1234567-1.",
        "bad_cnic.first_digit": "A CNIC cannot begin with 0. Send the 13 digits of the CNIC, e.g. 35202-1234567-1.",
        "not_here": "No status for CNIC {cnic} can be sent to this phone. Text from the phone registered with "
                    "your household, or visit a One Window counter with the CNIC (also to register).",
        "status": "CNIC {cnic}: registered.",
        "band": " PMT score band {low}-{high}.",
        "no_band": " Not scored yet.",
        "enrolled": " Enrolled: {names}.",
        "waiting": " Waiting list: {names}.",
        "listed": " On partner lists: {names}.",
        "eligible": " Eligible: {names}.",
        "none_eligible": " Not eligible for other programs.",
        "more": " +{n} more",
        "next_payment": " Next payment: Rs {amount} ({program}){pickup}.",
        "pickup": ", pickup {when}",
        "details": " Details: One Window or /my.",
        "receipt.bad": "{problem}. Please check the number on your receipt.",
        "receipt.unknown": "No application or grievance has receipt {receipt}. Please check the number.",
        "receipt.status": "Receipt {receipt} ({kind}): {status}.",
        "receipt.step": " Step: {step}.",
        "receipt.due": " Due by {due}.",
        "receipt.reason": " {reason}.",
        "kind.application": "application",
        "kind.grievance": "grievance",
        "state.open": "open", "state.disposed": "decided", "state.resolved": "resolved", "state.closed": "closed",
        "state.reopened": "reopened", "state.registered": "registered", "state.enrolled": "enrolled",
        "state.waiting": "on the waiting list", "state.refused": "refused", "state.approved": "approved",
        "state.rejected": "rejected", "state.withdrawn": "withdrawn",
        "step.receive": "received", "step.verify": "verification", "step.score": "scoring",
        "step.decide": "decision", "step.review": "review",
        "emp.status_missing": "Send EMP and your work: EMP JOB, EMP DAILY (daily wage), EMP SELF (own business), "
                              "EMP NONE (no work), EMP STUDENT, EMP HOME, EMP RETIRED.",
        "emp.no_person": "This phone is not registered for a worker. Send EMP, your CNIC and your work "
                         "from your registered phone, or visit a One Window counter.",
        "emp.ambiguous": "This phone is registered for {n} people. Send EMP, your CNIC and your work, "
                         "e.g. EMP 35202-1234567-1 JOB.",
        "emp.not_registered": "CNIC {cnic} is not on a labour register; visit a One Window counter to register.",
        "emp.done": "Thank you. Work report for {cnic} recorded: {status}. Next report due {due}.",
        "emp.refused": "Your work report could not be recorded: {problem}.",
        "complain.empty": "Send COMPLAIN and your complaint in words, e.g. COMPLAIN payment not received.",
        "complain.done": "Your complaint is registered. Receipt {receipt}: text it to this number for its status.",
        "complain.refused": "Your complaint could not be registered: {problem}. Please visit a One Window counter.",
        "answer.not_grievance": "Only a complaint (GR..) is confirmed this way. Text the receipt alone for its status.",
        "answer.not_yours": "Complaint {receipt} was not made from this phone. Please visit a One Window counter.",
        "answer.not_resolved": "Complaint {receipt} is not resolved yet, so it cannot be closed or reopened.",
        "answer.closed": "Thank you. Complaint {receipt} is closed.",
        "answer.reopened": "Complaint {receipt} is reopened and will be looked at again. Due by {due}.",
        "labour.employed_formal": "job (salaried)", "labour.employed_informal": "job",
        "labour.self_employed": "own business", "labour.daily_wager": "daily wage",
        "labour.unemployed": "no work", "labour.not_in_labour_force": "housework or not working",
        "labour.student": "student", "labour.retired": "retired",
    },
    "ur": {
        "help": "ISPS: اپنی حیثیت کے لیے شناختی کارڈ نمبر (13 ہندسے) بھیجیں؛ رسید نمبر (OW یا GR) بھیجیں؛ "
                "سہ ماہی کام کی رپورٹ: کام نوکری / کام دیہاڑی / کام کاروبار / کام بے روزگار؛ شکایت کے لیے "
                "شکایت اور اپنی بات؛ پیغامات بند کرنے کے لیے STOP",
        "bad_cnic.length": "اس شناختی کارڈ نمبر میں {n} ہندسے ہیں۔ 13 ہندسے بھیجیں، مثلاً 35202-1234567-1",
        "bad_cnic.first_digit": "شناختی کارڈ نمبر 0 سے شروع نہیں ہوتا۔ 13 ہندسے بھیجیں، مثلاً 35202-1234567-1",
        "not_here": "شناختی کارڈ {cnic} کی معلومات اس فون پر نہیں بھیجی جا سکتیں۔ اپنے گھرانے کے رجسٹرڈ "
                    "فون سے بھیجیں یا شناختی کارڈ کے ساتھ ون ونڈو کاؤنٹر پر آئیں۔",
        "status": "شناختی کارڈ {cnic}: رجسٹرڈ۔",
        "band": " PMT اسکور {low} تا {high}۔",
        "no_band": " ابھی اسکور نہیں ہوا۔",
        "enrolled": " شامل: {names}۔",
        "waiting": " انتظار کی فہرست: {names}۔",
        "listed": " شراکت دار فہرست: {names}۔",
        "eligible": " اہل: {names}۔",
        "none_eligible": " دوسرے پروگراموں کے اہل نہیں۔",
        "more": " +{n} مزید",
        "next_payment": " اگلی ادائیگی: {amount} روپے ({program}){pickup}۔",
        "pickup": "، وصولی {when}",
        "details": " تفصیل: ون ونڈو یا /my",
        "receipt.bad": "{problem}۔ براہ کرم رسید پر نمبر دیکھیں۔",
        "receipt.unknown": "رسید {receipt} کی کوئی درخواست یا شکایت نہیں۔ نمبر دوبارہ دیکھیں۔",
        "receipt.status": "رسید {receipt} ({kind}): {status}۔",
        "receipt.step": " مرحلہ: {step}۔",
        "receipt.due": " آخری تاریخ {due}۔",
        "receipt.reason": " {reason}۔",
        "kind.application": "درخواست",
        "kind.grievance": "شکایت",
        "state.open": "زیر کارروائی", "state.disposed": "فیصلہ ہو گیا", "state.resolved": "حل شدہ",
        "state.closed": "بند", "state.reopened": "دوبارہ کھلی", "state.registered": "رجسٹرڈ",
        "state.enrolled": "شامل", "state.waiting": "انتظار کی فہرست میں", "state.refused": "نامنظور",
        "state.approved": "منظور", "state.rejected": "مسترد", "state.withdrawn": "واپس لی گئی",
        "step.receive": "موصول", "step.verify": "تصدیق", "step.score": "اسکورنگ", "step.decide": "فیصلہ",
        "step.review": "جائزہ",
        "emp.status_missing": "کام اور اپنا کام بھیجیں: کام نوکری، کام دیہاڑی، کام کاروبار، کام بے روزگار، "
                              "کام طالب علم، کام گھر، کام ریٹائرڈ",
        "emp.no_person": "یہ فون کسی کارکن کے نام رجسٹرڈ نہیں۔ رجسٹرڈ فون سے کام، شناختی کارڈ نمبر اور "
                         "اپنا کام بھیجیں یا ون ونڈو کاؤنٹر پر آئیں۔",
        "emp.ambiguous": "یہ فون {n} افراد کے نام ہے۔ کام، اپنا شناختی کارڈ نمبر اور کام بھیجیں، مثلاً "
                         "کام 35202-1234567-1 نوکری",
        "emp.not_registered": "شناختی کارڈ {cnic} کسی لیبر رجسٹر پر نہیں؛ اندراج کے لیے ون ونڈو کاؤنٹر پر آئیں۔",
        "emp.done": "شکریہ۔ {cnic} کی کام کی رپورٹ درج: {status}۔ اگلی رپورٹ {due} تک۔",
        "emp.refused": "کام کی رپورٹ درج نہ ہو سکی: {problem}",
        "complain.empty": "شکایت اور اپنی بات لکھ کر بھیجیں، مثلاً: شکایت رقم نہیں ملی",
        "complain.done": "آپ کی شکایت درج ہو گئی۔ رسید {receipt}: حیثیت کے لیے یہی نمبر بھیجیں۔",
        "complain.refused": "آپ کی شکایت درج نہ ہو سکی: {problem}۔ ون ونڈو کاؤنٹر پر آئیں۔",
        "answer.not_grievance": "اس طرح صرف شکایت (GR) کی تصدیق ہوتی ہے۔ حیثیت کے لیے صرف رسید نمبر بھیجیں۔",
        "answer.not_yours": "شکایت {receipt} اس فون سے درج نہیں ہوئی۔ ون ونڈو کاؤنٹر پر آئیں۔",
        "answer.not_resolved": "شکایت {receipt} ابھی حل نہیں ہوئی، اس لیے بند یا دوبارہ نہیں کھولی جا سکتی۔",
        "answer.closed": "شکریہ۔ شکایت {receipt} بند کر دی گئی۔",
        "answer.reopened": "شکایت {receipt} دوبارہ کھول دی گئی، اس پر پھر غور ہو گا۔ آخری تاریخ {due}۔",
        "labour.employed_formal": "نوکری (تنخواہ)", "labour.employed_informal": "کام",
        "labour.self_employed": "اپنا کاروبار", "labour.daily_wager": "دیہاڑی",
        "labour.unemployed": "بے روزگار", "labour.not_in_labour_force": "گھریلو کام یا کام نہیں",
        "labour.student": "طالب علم", "labour.retired": "ریٹائرڈ",
    },
}


def say(lang: str, key: str, **values: object) -> str:
    text = REPLIES[lang].get(key) or REPLIES["en"][key]
    return text.format(**values) if values else text


_GSM = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
           "¿abcdefghijklmnopqrstuvwxyzäöñüà")


def sms_parts(text: str) -> int:
    """How many SMS parts a text takes: GSM 7-bit (160, or 153 a part) or UCS-2 (70, or 67 a part)."""
    single, part = (160, 153) if all(ch in _GSM for ch in text) else (70, 67)
    n = len(text)
    return 1 if n <= single else -(-n // part)


# ---------------------------------------------------------------- answering

def mask_phone(phone: str) -> str:
    """``92300*****67``, as messaging masks a phone in lists and logs."""
    return phones.mask(phone)


def _who(phone: str, district_id: int | None = None) -> Principal:
    return Principal(f"sms:{mask_phone(phone)}", ROLE, district_id)


def _lang(parsed: Parsed, session: Session, phone: str) -> str:
    if parsed.urdu:
        return "ur"
    return "ur" if preferred_lang(session, phone) == "ur" else "en"


def preferred_lang(session: Session, phone: str) -> str | None:
    """The language the phone's holder chose for messages, when messaging records one."""
    return None


def answer(session: Session, phone: str, text: str, received_at: datetime) -> str | None:
    """The reply to one inbound text from ``phone`` (normalised, ``923001234567``)."""
    parsed = parse(text)
    lang = _lang(parsed, session, phone)
    if parsed.kind == "help":
        return say(lang, "help")
    if parsed.kind == "bad_cnic":
        what, _, n = parsed.arg.partition(":")
        return say(lang, "bad_cnic.length", n=n) if what == "length" else say(lang, "bad_cnic.first_digit")
    if parsed.kind == "cnic":
        return _status_reply(session, phone, parsed.arg, lang)
    if parsed.kind == "receipt":
        return _receipt_reply(session, phone, parsed.arg, lang)
    if parsed.kind == "answer":
        return _answer_reply(session, phone, parsed.arg, parsed.status == "yes", lang)
    if parsed.kind == "emp":
        return _emp_reply(session, phone, parsed, lang, received_at)
    if parsed.kind == "complain":
        return _complain_reply(session, phone, parsed.arg, lang)
    return say(lang, "help")


def household_for(session: Session, phone: str, number: str) -> Individual | None:
    """The current member holding CNIC ``number`` whose household ``phone`` is registered for, or None
    (someone who died or left the household is no longer told its status)."""
    people = session.scalars(select(Individual).where(Individual.cnic == number, current.clause())
                             .order_by(Individual.id))
    for person in people:
        if standing_of.phone_registered(session, person.household_id, phone):
            return person
    return None


def _names(codes: list[str], lang: str) -> list[str]:
    return [display_name(c, lang) for c in codes]


def _status_reply(session: Session, phone: str, number: str, lang: str) -> str:
    masked = cnic_rules.mask(number)
    person = household_for(session, phone, number)
    if person is None:
        audit(session, _who(phone), CHANNEL, "lookup_cnic", "individual", None, outcome="denied",
              detail=f"status of {masked} asked from a phone not registered for it (or not registered)")
        return say(lang, "not_here", cnic=masked)
    s = standing_of.standing(session, person.household_id, lang=lang)
    audit(session, _who(phone, s.district_id), CHANNEL, "read", "household", person.household_id, s.district_id,
          detail=f"status by SMS for {masked}")
    return compose_status(s, masked, lang, limit=2 if lang == "en" else 3)


def compose_status(s: standing_of.Standing, masked: str, lang: str, limit: int = 2) -> str:
    """The status in a few words, naming as many programs as fit in ``limit`` SMS parts."""
    head = say(lang, "status", cnic=masked)
    head += say(lang, "band", low=s.band[0], high=s.band[1]) if s.band else say(lang, "no_band")
    groups = [("enrolled", [p.code for p in s.enrolled if p.status in ("enrolled", "suspended")]),
              ("waiting", [p.code for p in s.enrolled if p.status == "waiting"]),
              ("listed", [p.code for p in s.enrolled if p.status == "listed"]),
              ("eligible", [p.code for p in s.eligible])]
    tail = ""
    if s.next_payment:
        p = s.next_payment
        pickup = say(lang, "pickup", when=p.pickup.strftime("%d-%m %H:%M")) if p.pickup else ""
        tail = say(lang, "next_payment", amount=f"{p.amount:,.0f}", program=display_name(p.program, lang),
                   pickup=pickup)
    if not any(codes for _, codes in groups):
        return head + say(lang, "none_eligible") + tail
    # name programs one at a time while the reply still fits; count the rest
    names = {key: _names(codes, lang) for key, codes in groups}
    shown = {key: 0 for key, _ in groups}

    def build() -> str:
        out = head
        for key, _ in groups:
            every = names[key]
            if not every:
                continue
            listed = ", ".join(every[:shown[key]])
            hidden = len(every) - shown[key]
            if hidden:
                listed = (listed + say(lang, "more", n=hidden)).strip(" ,")
            out += say(lang, key, names=listed)
        return out + tail

    for key, _ in groups:
        while shown[key] < len(names[key]):
            shown[key] += 1
            if sms_parts(build()) > limit:
                shown[key] -= 1
                break
    text = build()
    if any(shown[k] < len(names[k]) for k, _ in groups):
        text += say(lang, "details")
    return text


def _receipt_reply(session: Session, phone: str, raw: str, lang: str) -> str:
    try:
        kind, record_id = receipts.parse(raw)
    except receipts.ReceiptError as exc:
        return say(lang, "receipt.bad", problem=str(exc).rstrip("."))
    number = receipts.make(kind, record_id)
    owner = applications if kind == "application" else grievances
    found = owner.status_of(session, record_id)
    audit(session, _who(phone), CHANNEL, "read", kind, record_id, outcome="ok" if found else "not_found",
          detail=f"status of receipt {number} by SMS")
    if not found:
        return say(lang, "receipt.unknown", receipt=number)
    return compose_receipt(found, number, kind, lang)


def _label(lang: str, prefix: str, code: object) -> str:
    return REPLIES[lang].get(f"{prefix}.{code}") or REPLIES["en"].get(f"{prefix}.{code}") or str(code)


def compose_receipt(found: dict, number: str, kind: str, lang: str) -> str:
    """A receipt's status in words: what it is, where it stands, by when, how it ended (no personal data)."""
    status = found.get("disposal") or found.get("status") or "?"
    text = say(lang, "receipt.status", receipt=number, kind=say(lang, f"kind.{kind}"),
               status=_label(lang, "state", status))
    if found.get("step"):
        text += say(lang, "receipt.step", step=_label(lang, "step", found["step"]))
    due = found.get("step_due") or (found.get("due") if found.get("status") in ("open", "reopened") else None)
    if due:
        text += say(lang, "receipt.due", due=str(due)[:10])
    reason = found.get("disposal_reason") or found.get("resolution")
    if reason:
        text += say(lang, "receipt.reason", reason=str(reason)[:120])
    return text


def _emp_reply(session: Session, phone: str, parsed: Parsed, lang: str, received_at: datetime) -> str:
    if parsed.status is None:
        return say(lang, "emp.status_missing")
    if parsed.cnic:
        try:
            number = cnic_rules.validate(parsed.cnic)
        except cnic_rules.CnicError:
            return say(lang, "bad_cnic.first_digit")
        person = household_for(session, phone, number)
        if person is None:
            audit(session, _who(phone), CHANNEL, "record", "individual", None, outcome="denied",
                  detail=f"work report for {cnic_rules.mask(number)} from a phone not registered for it")
            return say(lang, "not_here", cnic=cnic_rules.mask(number))
    else:
        people = standing_of.people_with_phone(session, phone)
        on_register = [p for p in people if session.get(LabourPerson, p.id) is not None]
        if len(on_register) > 1:
            return say(lang, "emp.ambiguous", n=len(on_register))
        if not on_register and len(people) > 1:
            return say(lang, "emp.ambiguous", n=len(people))
        if not people:
            return say(lang, "emp.no_person")
        person = (on_register or people)[0]
    masked = cnic_rules.mask(person.cnic) if person.cnic else f"#{person.id}"
    if session.get(LabourPerson, person.id) is None:
        return say(lang, "emp.not_registered", cnic=masked)
    who = _who(phone, person.district_id)
    try:
        with session.begin_nested():
            labour_reports.report_status(session, person.id, parsed.status, received_at.date(), who.username,
                                         channel="sms")
    except LabourError as exc:
        return say(lang, "emp.refused", problem=str(exc))
    audit(session, who, CHANNEL, "record", "individual", person.id, person.district_id,
          detail=f"quarterly work report by SMS: {parsed.status}")
    due = labour_reports.next_due(session, person.id)
    return say(lang, "emp.done", cnic=masked, status=say(lang, f"labour.{parsed.status}"),
               due=due.isoformat() if due else "-")


def _complain_reply(session: Session, phone: str, description: str, lang: str) -> str:
    if len(description.strip(_EDGES)) < 3:
        return say(lang, "complain.empty")
    people = standing_of.people_with_phone(session, phone)
    district_id = people[0].district_id if people and len({p.district_id for p in people}) == 1 else None
    who = _who(phone, district_id)
    category = category_of(description)
    if category not in grievances.CATEGORIES:
        category = "other"
    household_id = people[0].household_id if len({p.household_id for p in people}) == 1 else None
    outlet = standing_of.last_outlet(session, household_id) if household_id is not None else None
    if category in AGENT_CATEGORIES and outlet is None:
        # a complaint about an agent names the agent; by SMS, the household's last pickup outlet, or else
        # what the citizen says happened without naming one
        category = "payment_partial" if category == "agent_deduction" else "other"
    try:
        with session.begin_nested():
            g = grievances.file_grievance(session, None, channel="sms", category=category,
                                          description=description[:1000], phone=phone, district_id=district_id,
                                          household_id=household_id,
                                          outlet_id=outlet if category in AGENT_CATEGORIES
                                          else None, actor=who.username, lang=lang)
    except grievances.GrievanceError as exc:
        return say(lang, "complain.refused", problem=str(exc)[:120])
    audit(session, who, CHANNEL, "file", "grievance", g.id, g.district_id, detail=f"grievance {category} by SMS")
    return say(lang, "complain.done", receipt=receipts.make("grievance", g.id))


def _answer_reply(session: Session, phone: str, raw: str, satisfied: bool, lang: str) -> str:
    """``GR… YES`` / ``GR… NO`` from the phone the complaint was made from: closed or reopened."""
    try:
        kind, record_id = receipts.parse(raw)
    except receipts.ReceiptError as exc:
        return say(lang, "receipt.bad", problem=str(exc).rstrip("."))
    number = receipts.make(kind, record_id)
    if kind != "grievance":
        return say(lang, "answer.not_grievance")
    g = session.get(Grievance, record_id)
    if g is None:
        return say(lang, "receipt.unknown", receipt=number)
    who = _who(phone, g.district_id)
    if g.phone != phone:
        audit(session, who, CHANNEL, "confirm" if satisfied else "reopen", "grievance", g.id, g.district_id,
              outcome="denied", detail=f"{number} answered from a phone it was not made from")
        return say(lang, "answer.not_yours", receipt=number)
    if g.status != "resolved":
        return say(lang, "answer.not_resolved", receipt=number)
    try:
        with session.begin_nested():
            g = grievances.confirm(session, g.id, who.username, satisfied, None)
    except grievances.GrievanceError as exc:
        return say(lang, "complain.refused", problem=str(exc)[:120])
    audit(session, who, CHANNEL, "confirm" if satisfied else "reopen", "grievance", g.id, g.district_id,
          detail=f"{number} {'closed' if satisfied else 'reopened'} by SMS")
    if satisfied:
        return say(lang, "answer.closed", receipt=number)
    return say(lang, "answer.reopened", receipt=number, due=f"{g.due_at:%Y-%m-%d}")
