"""A small SMTP server on loopback (RFC 5321 subset) that keeps every message it accepts.

Python 3.12 drops ``smtpd``; this one is built on ``socketserver`` and speaks what a mail client
needs for plain delivery: EHLO/HELO, MAIL FROM, RCPT TO, DATA (with dot-unstuffing), RSET, NOOP, QUIT.
It offers no STARTTLS or AUTH, so clients must be told not to use them. Use as a context manager::

    with SmtpTestServer() as server:
        ...  # send to 127.0.0.1:server.port
    server.messages  # [(mail_from, [rcpt, ...], email.message.EmailMessage)]
"""

from __future__ import annotations

import email
import email.policy
import socketserver
import threading


class _Handler(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        self.reply("220 holdcast-test ESMTP ready")
        sender, recipients = None, []
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line[:4].upper()
            if verb == "EHLO":
                self.reply("250-holdcast-test greets you")
                self.reply("250 8BITMIME")
            elif verb == "HELO":
                self.reply("250 holdcast-test")
            elif line.upper().startswith("MAIL FROM:"):
                sender, recipients = _address(line), []
                self.reply("250 OK")
            elif line.upper().startswith("RCPT TO:"):
                if sender is None:
                    self.reply("503 need MAIL before RCPT")
                    continue
                recipients.append(_address(line))
                self.reply("250 OK")
            elif verb == "DATA":
                if not recipients:
                    self.reply("503 need RCPT before DATA")
                    continue
                self.reply("354 end data with <CR><LF>.<CR><LF>")
                self.server.received.append((sender, recipients, self._read_data()))
                sender, recipients = None, []
                self.reply("250 OK queued")
            elif verb == "RSET":
                sender, recipients = None, []
                self.reply("250 OK")
            elif verb == "NOOP":
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 command not implemented")

    def _read_data(self):
        lines = []
        while True:
            raw = self.rfile.readline()
            if raw in (b".\r\n", b".\n", b""):
                break
            lines.append(raw[1:] if raw.startswith(b"..") else raw)
        return email.message_from_bytes(b"".join(lines), policy=email.policy.default)


def _address(line: str) -> str:
    value = line.split(":", 1)[1].strip()
    return value.split()[0].strip("<>")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class SmtpTestServer:
    """Runs the server on 127.0.0.1 on a free port while the ``with`` block lasts."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.received = []
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def messages(self) -> list:
        return list(self._server.received)

    def __enter__(self) -> SmtpTestServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
