"""The mail that comes back for a notice, written the way real MTAs and people write it.

Each function takes an Answered: a notice the simulated relay accepted (its envelope
sender is the notice's return path, e.g. `bounces+<token>@hotline.example`), the desk
address that failed or answers, a time and a serial number; the same inputs give the same
bytes (Date, Message-ID, queue ids and MIME boundaries come from them, never from the
clock or a random draw).

    kind        format    what it is, modelled on tests/data/mail/           addressed to
    bounce      postfix   RFC 3464 multipart/report: the mail system's text,  envelope sender
                          message/delivery-status (Action: failed, Status
                          5.1.1), the original's headers (text/rfc822-headers)
    bounce      exim      plain text "This message was created automatically  envelope sender
                          by mail delivery software", X-Failed-Recipients, the
                          failed address indented, a copy of the message inline
    bounce      exchange  Exchange Online's NDR: multipart/report with "Delivery  envelope sender
                          has failed to these recipients or groups" (plain and
                          HTML), message/delivery-status, the original attached
    delay       postfix   "Delayed Mail (still being retried)": Action: delayed,  envelope sender
                          Status 4.4.7
    auto_reply  outlook   "Automatic reply:", Auto-Submitted: auto-replied,       envelope sender
                          In-Reply-To the notice (RFC 3834 §3.1.5: to the
                          Return-Path)
    reply       a person  "Removed, thanks", In-Reply-To and References the       the notice's From
                          notice, the notice quoted

Every message carries the headers the hotline's own MTA adds on final delivery
(Return-Path, Delivered-To), as a message read from the mailbox or piped by the MTA does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage, Message, MIMEPart
from email.policy import default as POLICY
from email.utils import format_datetime, getaddresses

from workflows.sim.smtp import Received, message_id

FORMATS = ("postfix", "exim", "exchange")
KINDS = ("bounce", "delay", "auto_reply", "reply")
REMOTE_IP = "192.0.2.25"  # RFC 5737 documentation address: text only, nothing connects
USER_UNKNOWN = "Recipient address rejected: User unknown in virtual mailbox table"
EXCHANGE_NOT_FOUND = "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
QUOTED_LINES = 12  # lines of the notice a person's reply quotes


@dataclass(frozen=True)
class Answered:
    """A notice the relay accepted, the desk address concerned, and when it answers."""

    received: Received
    recipient: str  # the desk address that failed or answers
    when: dt.datetime  # Date of the answer (aware)
    serial: int  # makes ids unique: the same notice may be answered twice

    @property
    def return_path(self) -> str:
        """Return the notice's envelope sender: where bounces and auto-replies go."""
        return self.received.sender

    @property
    def relay(self) -> str:
        """Return the host name of the hotline's relay, which writes its bounces."""
        return "mail." + self.return_path.rpartition("@")[2]

    @property
    def desk_domain(self) -> str:
        """Return the domain of the desk address."""
        return self.recipient.rpartition("@")[2]

    @property
    def notice_id(self) -> str:
        """Return the notice's Message-ID ("" for none)."""
        return message_id(self.received.message)

    @property
    def subject(self) -> str:
        """Return the notice's subject on one line (unfolded, RFC 5322 §2.2.3)."""
        return " ".join(str(self.received.message.get("Subject", "")).split())

    def token(self, length: int) -> str:
        """Return LENGTH upper-case hex digits fixed by the notice and the serial."""
        seed = self.received.raw + f"|{self.recipient}|{self.serial}".encode()
        return hashlib.sha256(seed).hexdigest()[:length].upper()

    def date(self, before: float = 0.0) -> str:
        """Return the RFC 5322 date of the answer, BEFORE seconds earlier."""
        return format_datetime(self.when - dt.timedelta(seconds=before))


def returned_mail(kind: str, answered: Answered, bounce_format: str = "postfix") -> EmailMessage:
    """Return the KIND of answer (a bounce in BOUNCE_FORMAT) to ANSWERED's notice."""
    if kind == "bounce":
        if bounce_format not in BOUNCES:
            raise ValueError(f"bounce format must be one of {FORMATS}, not {bounce_format!r}")
        return BOUNCES[bounce_format](answered)
    if kind not in OTHERS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return OTHERS[kind](answered)


def postfix_bounce(answered: Answered) -> EmailMessage:
    """Return Postfix's "Undelivered Mail Returned to Sender" (RFC 3464)."""
    a, queue = answered, answered.token(11)
    rejected = f"550 5.1.1 <{a.recipient}>: {USER_UNKNOWN}"
    text = _postfix_text(
        a,
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below.\n",
        f"host mx.{a.desk_domain}[{REMOTE_IP}] said: {rejected} (in reply to RCPT TO command)",
    )
    status = _status_blocks(
        a,
        {"X-Postfix-Queue-ID": queue, "X-Postfix-Sender": f"rfc822; {a.return_path}"},
        {"Action": "failed", "Status": "5.1.1", "Remote-MTA": f"dns; mx.{a.desk_domain}",
         "Diagnostic-Code": f"smtp; {rejected}"},
    )  # fmt: skip
    return _postfix_report(a, queue, "Undelivered Mail Returned to Sender", text, status)


def postfix_delay(answered: Answered) -> EmailMessage:
    """Return Postfix's "Delayed Mail (still being retried)" warning (RFC 3464)."""
    a, queue = answered, answered.token(11)
    rule = "#" * 68
    text = _postfix_text(
        a,
        f"{rule}\n# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
        f"{rule}\n\nYour message could not be delivered for more than 4 hour(s).\n"
        "It will be retried until it is 5 day(s) old.\n",
        f"connect to mx.{a.desk_domain}[{REMOTE_IP}]:25: Connection timed out",
    )
    until = format_datetime(a.when + dt.timedelta(days=5))
    status = _status_blocks(
        a,
        {"X-Postfix-Queue-ID": queue, "X-Postfix-Sender": f"rfc822; {a.return_path}"},
        {"Action": "delayed", "Status": "4.4.7",
         "Diagnostic-Code": f"X-Postfix; connect to mx.{a.desk_domain}[{REMOTE_IP}]:25: "
                            "Connection timed out",
         "Will-Retry-Until": until},
    )  # fmt: skip
    return _postfix_report(a, queue, "Delayed Mail (still being retried)", text, status)


def exim_bounce(answered: Answered) -> EmailMessage:
    """Return Exim's "Mail delivery failed: returning message to sender" (plain text)."""
    a, digits = answered, answered.token(12)
    exim_id = f"1t{digits[:4]}-{digits[4:10]}-{digits[10:]}"
    local = f"from mail by {a.relay} with local (Exim 4.96) id {exim_id}"
    sender = f"Mail Delivery System <Mailer-Daemon@{a.relay}>"
    message = _delivered(a, sender, a.return_path, via=local)
    message["X-Failed-Recipients"] = a.recipient
    message["Auto-Submitted"] = "auto-replied"
    message["Subject"] = "Mail delivery failed: returning message to sender"
    message["Message-ID"] = f"<E{exim_id}@{a.relay}>"
    if a.notice_id:
        message["References"] = a.notice_id
    original = _text_of(a.received.raw)
    body = (
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        f"  {a.recipient}\n"
        f"    host mx.{a.desk_domain} [{REMOTE_IP}]\n"
        f"    SMTP error from remote mail server after RCPT TO:<{a.recipient}>:\n"
        f"    550 5.1.1 <{a.recipient}>: {USER_UNKNOWN}\n\n"
        "------ This is a copy of the message, including all the headers. ------\n\n"
        f"Return-path: <{a.return_path}>\n"
        f"Received: from [198.51.100.13] (helo=worker.{a.relay.removeprefix('mail.')})\n"
        f"\tby {a.relay} with esmtps (Exim 4.96)\n"
        f"\t(envelope-from <{a.return_path}>)\n"
        f"\tid {exim_id}\n\tfor {a.recipient};\n\t{a.date(3)}\n"
        f"{original}"
    )
    message.set_content(body, charset="us-ascii" if body.isascii() else "utf-8", cte=_cte(body))
    return message


def exchange_bounce(answered: Answered) -> EmailMessage:
    """Return Exchange Online's "Undeliverable:" non-delivery report (NDR)."""
    a, digits = answered, answered.token(12)
    server = f"AM0PR01MB{int(digits[:4], 16) % 10000:04d}.eurprd01.prod.outlook.example"
    sender = f"Microsoft Outlook <postmaster@{a.desk_domain}>"
    message = _delivered(a, sender, a.return_path, via=_from_outlook(a, server))
    message["Subject"] = f"Undeliverable: {a.subject}"
    message["Thread-Topic"] = a.subject
    message["Content-Language"] = "en-US"
    message["Message-ID"] = f"<{digits[:8]}-{digits[8:]}@{server}>"
    _thread(message, a)
    message["Auto-Submitted"] = "auto-replied"
    message["X-MS-Exchange-Message-Is-Ndr"] = ""
    diagnostic = f"550 5.1.10 {EXCHANGE_NOT_FOUND}"
    plain = (
        f"Your message to {a.recipient} couldn't be delivered.\n\n"
        f"{a.recipient} wasn't found at {a.desk_domain}.\n\n"
        "Delivery has failed to these recipients or groups:\n\n"
        f"{a.recipient}\n\n"
        "Diagnostic information for administrators:\n\n"
        f"Generating server: {server}\n\n{a.recipient}\nRemote server returned '{diagnostic}'\n"
    )
    html = (
        "<html><head><style>.title { color: #C00000; font-size: 16pt; }</style></head>\n"
        '<body dir="ltr" lang="en-US">\n'
        f'<p class="title">Your message to {a.recipient} couldn\'t be delivered.</p>\n'
        "<p>Delivery has failed to these recipients or groups:</p>\n"
        f'<p><a href="mailto:{a.recipient}">{a.recipient}</a><br></p>\n'
        f"<p><b>Remote server returned '{diagnostic}'</b></p>\n"
        f"<p>Generating server: {server}</p>\n</body></html>\n"
    )
    notification = MIMEPart(policy=POLICY)
    notification.set_content(plain, cte="quoted-printable")
    notification.add_alternative(html, subtype="html", cte="quoted-printable")
    notification.set_boundary(f"_000_{a.token(24)}_")
    status = _status_blocks(
        a,
        {"Reporting-MTA": f"dns;{server}", "Received-From-MTA": f"dns;{a.relay}"},
        {"Action": "failed", "Status": "5.1.10", "Diagnostic-Code": f"smtp;{diagnostic}",
         "X-Display-Name": a.recipient},
        mta=False,
    )  # fmt: skip
    attached = MIMEPart(policy=POLICY)  # message/rfc822: the whole original, parsed anew
    attached.set_content(message_from_bytes(a.received.raw, policy=POLICY))
    return _report(message, f"{digits[:8]}-{digits[8:]}", [notification, status, attached])


def out_of_office(answered: Answered) -> EmailMessage:
    """Return an Outlook-style "Automatic reply:" sent to the notice's return path."""
    a = answered
    server = f"DB9PR02MB{int(a.token(4), 16) % 10000:04d}.eurprd02.prod.outlook.example"
    # RFC 3834 §3.3: an automatic response goes out with a null envelope sender.
    message = _delivered(
        a, f"Abuse Desk <{a.recipient}>", a.return_path, via=_from_outlook(a, server)
    )
    message["Subject"] = f"Automatic reply: {a.subject}"
    message["Thread-Topic"] = a.subject
    message["Message-ID"] = f"<{a.token(16)}@{a.desk_domain}>"
    _thread(message, a)
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "All"
    back = (a.when + dt.timedelta(days=14)).strftime("%d %B %Y").lstrip("0")
    text = (
        f"I am out of the office until {back} with no access to e-mail.\n"
        f"Your message will be read when I return.\n"
    )
    markup = text.rstrip("\n").replace("\n", "<br>\n")
    message.set_content(text, charset="us-ascii")
    message.add_alternative(f"<html><body><div>{markup}</div></body></html>\n", subtype="html")
    message.set_boundary(f"_000_{a.token(24)}_")
    return message


def human_reply(answered: Answered) -> EmailMessage:
    """Return a person's "Removed, thanks" to the notice's From, quoting the notice."""
    a, notice, digits = answered, answered.received.message, answered.token(20).lower()
    sender = next(iter(getaddresses([str(notice.get("From", ""))])), ("", ""))[1]
    to = sender or a.return_path
    via = f"from mx.{a.desk_domain} (mx.{a.desk_domain} [{REMOTE_IP}]) by {a.relay} (Postfix)"
    message = _delivered(a, f"Abuse Desk <{a.recipient}>", to, a.recipient, via=via)
    message["Subject"] = a.subject if a.subject.lower().startswith("re:") else f"Re: {a.subject}"
    message["Message-ID"] = f"<{digits[:8]}-{digits[8:]}@{a.desk_domain}>"
    _thread(message, a)
    quoted = "\n".join(f"> {line}".rstrip() for line in _notice_text(notice)[:QUOTED_LINES])
    text = (
        "Hello,\n\nRemoved, thanks. The account has been suspended.\n\nRegards\n"
        f"Abuse Desk\n\nOn {notice.get('Date', a.date(60))}, {notice.get('From', sender)} wrote:\n"
        f"{quoted}\n"
    )
    message.set_content(text, charset="utf-8", cte=_cte(text))
    return message


BOUNCES: dict[str, Callable[[Answered], EmailMessage]] = {
    "postfix": postfix_bounce,
    "exim": exim_bounce,
    "exchange": exchange_bounce,
}
OTHERS: dict[str, Callable[[Answered], EmailMessage]] = {
    "delay": postfix_delay,
    "auto_reply": out_of_office,
    "reply": human_reply,
}


def _delivered(
    a: Answered, sender: str, to: str, envelope: str = "", via: str | None = None
) -> EmailMessage:
    """Start a message from SENDER to TO, as the hotline's MTA delivered it to TO.

    ENVELOPE is its envelope sender ("" for the null sender of bounces, RFC 5321 §4.5.5);
    VIA the start of the Received field its MTA adds (default: the relay wrote it itself).
    """
    message = EmailMessage(policy=POLICY)
    message["Return-Path"] = f"<{envelope}>"
    message["Delivered-To"] = to
    via = via or f"by {a.relay} (Postfix) id {a.token(11)}"
    message["Received"] = f"{via} for <{to}>; {a.date()}"
    message["Date"] = a.date()
    message["From"] = sender
    message["To"] = to
    message["MIME-Version"] = "1.0"
    return message


def _from_outlook(a: Answered, server: str) -> str:
    """Return the Received field's start for mail from the desk's Exchange Online server."""
    outbound = "EUR02-AM0-obe.outbound.protection.outlook.example"
    return f"from {outbound} ({server} [{REMOTE_IP}]) by {a.relay} (Postfix) with ESMTPS"


def _thread(message: EmailMessage, a: Answered) -> None:
    """Make MESSAGE answer the notice (RFC 5322 §3.6.4): In-Reply-To and References."""
    if not a.notice_id:
        return
    earlier = str(a.received.message.get("References", "")).split()
    message["In-Reply-To"] = a.notice_id
    message["References"] = " ".join([*earlier, a.notice_id])


def _postfix_text(a: Answered, said: str, why: str) -> MIMEPart:
    """Return the text part of a Postfix report: SAID, then the recipient and WHY."""
    text = (
        f"This is the mail system at host {a.relay}.\n\n{said}\n"
        "For further assistance, please send mail to postmaster.\n\n"
        "If you do so, please include this problem report. You can\n"
        "delete your own text from the attached returned message.\n\n"
        "                   The mail system\n\n"
        + textwrap.fill(f"<{a.recipient}>: {why}", width=78, subsequent_indent="    ")
        + "\n"
    )
    part = MIMEPart(policy=POLICY)
    part.set_content(text, charset="utf-8", cte="8bit")
    part["Content-Description"] = "Notification"
    return part


def _postfix_report(
    a: Answered, queue: str, subject: str, text: MIMEPart, status: MIMEPart
) -> EmailMessage:
    """Return a Postfix report: TEXT, STATUS and the original's headers."""
    message = _delivered(a, f"MAILER-DAEMON@{a.relay} (Mail Delivery System)", a.return_path)
    message["Subject"] = subject
    message["Auto-Submitted"] = "auto-replied"
    message["Message-ID"] = f"<{a.when.strftime('%Y%m%d%H%M%S')}.{queue}@{a.relay}>"
    status["Content-Description"] = "Delivery report"
    received = (
        f"Return-Path: <{a.return_path}>\n"
        f"Received: from worker.{a.relay.removeprefix('mail.')} (worker [198.51.100.12])\n"
        f"\tby {a.relay} (Postfix) with ESMTPS id {queue}\n\tfor <{a.recipient}>; {a.date(2)}\n"
    )
    headers = MIMEPart(policy=POLICY)
    headers["Content-Description"] = "Undelivered Message Headers"
    headers["Content-Type"] = "text/rfc822-headers"
    headers["Content-Transfer-Encoding"] = "8bit"
    headers.set_payload(received + _text_of(a.received.raw).partition("\n\n")[0] + "\n")
    return _report(message, f"{queue}.{int(a.when.timestamp())}/{a.relay}", [text, status, headers])


def _status_blocks(
    a: Answered, per_message: dict[str, str], per_recipient: dict[str, str], mta: bool = True
) -> MIMEPart:
    """Return a message/delivery-status part: the per-message block, then the recipient's."""
    first = Message(policy=POLICY)
    if mta:
        first["Reporting-MTA"] = f"dns; {a.relay}"
    for name, value in per_message.items():
        first[name] = value
    first["Arrival-Date"] = a.date(2)
    second = Message(policy=POLICY)
    second["Final-Recipient"] = f"rfc822; {a.recipient}"
    if mta:
        second["Original-Recipient"] = f"rfc822;{a.recipient}"
    for name, value in per_recipient.items():
        second[name] = value
    part = MIMEPart(policy=POLICY)
    part["Content-Type"] = "message/delivery-status"
    part.set_payload([first, second])
    return part


def _report(message: EmailMessage, boundary: str, parts: list[MIMEPart]) -> EmailMessage:
    """Make MESSAGE a multipart/report of PARTS (RFC 6522) with a fixed boundary."""
    message["Content-Type"] = (
        f'multipart/report; report-type=delivery-status; boundary="{boundary}"'
    )
    message.preamble = "This is a MIME-encapsulated message.\n"
    message.set_payload(list(parts))
    return message


def _text_of(raw: bytes) -> str:
    """Return a message's bytes as text with LF line ends (a notice is 7-bit)."""
    return raw.decode("utf-8", "replace").replace("\r\n", "\n")


def _notice_text(notice: EmailMessage) -> list[str]:
    """Return the lines of the notice's plain text ([] when it has none)."""
    part = notice.get_body(("plain",))
    return str(part.get_content()).splitlines() if isinstance(part, EmailMessage) else []


def _cte(text: str) -> str:
    """Return 7bit for ASCII text with short lines, else quoted-printable."""
    short = all(len(line) <= 998 for line in text.splitlines())
    return "7bit" if text.isascii() and short else "quoted-printable"
