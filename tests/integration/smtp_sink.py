"""A real SMTP server for the tests (aiosmtpd), with what the plain
`python3 -m aiosmtpd` lacks:

- `--hold SECONDS`: each message is kept in the maildir as soon as its data has
  arrived (as a real server commits it), then the 250 reply is held back for that
  long while the file named by `--marker` exists, so a test can kill the client at
  exactly that moment;
- `--tls starttls|implicit` with `--cert`/`--key`: STARTTLS required before MAIL, or
  TLS from the first byte;
- `--user`/`--password`: AUTH required (only over TLS).

Runs until killed.
"""

import argparse
import asyncio
import os
import ssl
import threading
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Keep:
    def __init__(self, maildir, hold, marker):
        self.maildir = maildir
        self.hold = hold
        self.marker = marker
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)

    async def handle_DATA(self, server, session, envelope):
        name = uuid.uuid4().hex
        tmp = os.path.join(self.maildir, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(self.maildir, "new", name))
        if self.hold > 0:
            if self.marker:
                with open(self.marker, "w") as f:
                    f.write(name)
            await asyncio.sleep(self.hold)
            if self.marker and os.path.exists(self.marker):
                os.remove(self.marker)
        return "250 Message accepted for delivery"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--maildir", required=True)
    p.add_argument("--hold", type=float, default=0)
    p.add_argument("--marker")
    p.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()

    kwargs = {}
    if a.tls != "none":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        if a.tls == "starttls":
            kwargs.update(tls_context=ctx, require_starttls=True)
        else:
            kwargs.update(ssl_context=ctx)
    if a.user:

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == a.user
                and auth_data.password.decode() == a.password
            )
            # handled=False: aiosmtpd answers 535 itself on a failure.
            return AuthResult(success=ok, handled=False)

        kwargs.update(
            auth_required=True,
            # Under implicit TLS aiosmtpd does not see the session as encrypted;
            # the whole connection is, so AUTH is offered anyway.
            auth_require_tls=a.tls != "implicit",
            authenticator=authenticator,
        )
    c = Controller(
        Keep(a.maildir, a.hold, a.marker),
        hostname="127.0.0.1",
        port=a.port,
        **kwargs,
    )
    c.start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
