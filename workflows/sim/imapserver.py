"""A real IMAP server for the tests and the demo: Dovecot, from Debian's packages.

DovecotServer writes a configuration of its own under a folder (one user, a static
password, Maildir under the folder, plain IMAP on 127.0.0.1: a loopback test server),
runs `dovecot -F` in the foreground as a child process and stops it with the block.
Dovecot starts as root and runs the mail processes as its own `dovecot` user, which owns
the mail folder. `deliver` puts a message in the mailbox as an MTA would (IMAP APPEND).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from imap_tools import MailBoxUnencrypted

DOVECOT = "/usr/sbin/dovecot"
CONFIG = """\
base_dir = {folder}/run
instance_name = takedown-{port}
protocols = imap
listen = 127.0.0.1
log_path = {folder}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{folder}/mail/%u
default_login_user = dovenull
default_internal_user = dovecot
default_internal_group = dovecot
first_valid_uid = 1
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={folder}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


class DovecotServer:
    """Dovecot serving one mailbox on 127.0.0.1 for as long as the with-block runs."""

    def __init__(self, folder: Path, user: str = "hotline", password: str = "imap-secret"):
        """Keep everything under FOLDER; log in as USER with PASSWORD."""
        self.folder, self.user, self.password = folder, user, password
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the TAKEDOWN_IMAP_URL of the mailbox (the password goes separately)."""
        return f"imap://{self.user}@127.0.0.1:{self.port}/INBOX"

    def start(self) -> Self:
        """Write the configuration, start Dovecot and wait until it accepts logins."""
        if not Path(DOVECOT).exists():
            raise RuntimeError("Dovecot is not installed: apt-get install dovecot-imapd")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        (self.folder / "run").mkdir(parents=True, exist_ok=True)
        (self.folder / "mail").mkdir(exist_ok=True)
        shutil.chown(self.folder / "mail", "dovecot", "dovecot")
        self.folder.chmod(0o755)
        config = self.folder / "dovecot.conf"
        config.write_text(CONFIG.format(folder=self.folder, port=self.port, password=self.password))
        self._process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with MailBoxUnencrypted("127.0.0.1", self.port, timeout=2).login(
                    self.user, self.password
                ):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Dovecot did not start: see {self.folder / 'dovecot.log'}")

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        """Put one message in the mailbox, as the hotline's MTA would."""
        with MailBoxUnencrypted("127.0.0.1", self.port, timeout=10).login(
            self.user, self.password
        ) as box:
            box.append(raw, folder)

    def stop(self) -> None:
        """Stop Dovecot (its children go with it); safe to call twice."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> Self:
        """Start on entering the with-block."""
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Stop on leaving the with-block."""
        self.stop()
