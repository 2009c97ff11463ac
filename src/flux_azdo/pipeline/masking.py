"""Secrets registered with the agent (`##vso[task.setsecret]`) before anything could print them, in every form
they take on the wire, and masked in our own lines as well.

The agent masks a registered value in each log line, plus the forms its encoders derive (JSON-escaped,
`Uri.EscapeDataString`, backslash-escaped: `HostContext.CreateSecretMasker`), but never base64. A PAT travels as
`Authorization: Basic base64("<user>:<pat>")` (git's trace, an HTTP error dump) and a key or token sits inside a
base64 blob (a kubeconfig's `client-key-data`, a Secret's `data`), so those forms are registered here:

- base64 of the value at the three byte offsets a blob can put it at, each cut to the characters that depend on
  the value alone (so it is found inside any larger base64 text);
- base64 of `<user>:<value>` for each user name that may be sent with it, and for the empty one;
- the URL-encoded form, when it differs (a PAT in a URL's user info);
- for a multi-line value (an SSH private key), each line of at least 8 characters: logs are masked line by line,
  so the whole value would never match (`task.setvariable` refuses multi-line secrets for that reason). PEM armour
  lines (`-----BEGIN ...-----`) are no secret and would mask every certificate in the log, so they are skipped.

A single-line value is registered without surrounding white space (an input or a file's line carries it by
accident). Each form is printed once. A value shorter than 4 characters is not registered: masking it would blank
out ordinary words, and the agent may ignore short secrets anyway (knob AZP_IGNORE_SECRETS_SHORTER_THAN). That does
not stop the run (a short password is the user's choice), but `warnings` records it, by name and never by value,
and `PipelineReporter` shows it as a warning on the run.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from collections.abc import Callable, Iterable
from typing import TextIO
from urllib.parse import quote

from flux_azdo.pipeline.commands import command

MASK = "***"
#: Shortest secret registered (shorter ones are left unmasked, with a warning).
MIN_SECRET_LENGTH = 4
#: Shortest line of a multi-line secret registered on its own (shorter lines would mask ordinary text).
MIN_LINE_LENGTH = 8
#: Shortest derived form (a base64 cut) registered: fewer characters would match unrelated base64.
MIN_FORM_LENGTH = 6
#: The start of a PEM armour line (`-----BEGIN CERTIFICATE-----`): public, and in every certificate.
PEM_ARMOUR = "-----"


def base64_cuts(value: str) -> list[str]:
    """The base64 characters that encode `value` alone, for each of the 3 offsets it can have in a larger blob.

    With `k` unknown bytes before it, characters whose 6 bits overlap those bytes (the first ceil(8k/6)) or the
    bytes after it (those past floor(8(k+n)/6)) change with the surroundings; the rest is always the same.
    """
    data = value.encode("utf-8")
    cuts: list[str] = []
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data).decode("ascii")
        start = math.ceil(8 * offset / 6)
        end = (8 * (offset + len(data))) // 6
        cut = encoded[start:end]
        if cut not in cuts:
            cuts.append(cut)
    return cuts


def basic_credentials(user: str, value: str) -> str:
    """What an HTTP Basic header carries: base64 of `<user>:<value>`, padding included."""
    return base64.b64encode(f"{user}:{value}".encode()).decode("ascii")


class Masker:
    """Registers secrets with the agent through `stream` (the task's standard output) and masks them locally."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._forms: set[str] = set()
        #: Also masked locally, never sent (the agent derives them itself): the JSON-escaped value, the value whole.
        self._local: set[str] = set()
        self._lock = threading.Lock()
        #: Secrets that could not be masked (too short), by name; `take_warnings` hands the new ones out once.
        self.warnings: list[str] = []
        self._shown = 0

    @property
    def forms(self) -> frozenset[str]:
        """Every form registered with the agent (for tests and for callers that check their own output)."""
        return frozenset(self._forms)

    def register(self, secret: str, *, usernames: Iterable[str] = (), name: str = "a secret") -> None:
        """Register `secret` and its forms, once each, before it is used anywhere.

        `usernames`: the user names it may be sent with in HTTP Basic (the empty one is always added).
        `name` says in a warning which secret it is (never its value): a value shorter than `MIN_SECRET_LENGTH`
        is not registered, and the warning says it cannot be masked.
        """
        multi_line = "\n" in secret.strip() or "\r" in secret.strip()
        value = secret if multi_line else secret.strip()
        if len(value.strip()) < MIN_SECRET_LENGTH:
            if value.strip():
                self._warn(f"{name} is shorter than {MIN_SECRET_LENGTH} characters and cannot be masked in the log")
            return
        forms: list[str] = []
        if multi_line:
            for line in value.splitlines():
                text = line.strip()
                if len(text) >= MIN_LINE_LENGTH and not text.startswith(PEM_ARMOUR):
                    forms.append(text)
        else:
            forms.append(value)
            url_encoded = quote(value, safe="")
            if url_encoded != value:
                forms.append(url_encoded)
        # A file's text may be embedded with or without its final newline (a key in a kubeconfig or a Secret).
        whole = [value, value.rstrip("\r\n"), value.rstrip("\r\n") + "\n"] if multi_line else [value]
        for variant in whole:
            forms += [cut for cut in base64_cuts(variant) if len(cut) >= MIN_FORM_LENGTH]
        for user in ("", *usernames):
            forms.append(basic_credentials(user, value))
        local = {value, json.dumps(value)[1:-1]}
        with self._lock:
            for form in forms:
                if form and form not in self._forms:
                    self._forms.add(form)
                    self.stream.write(command("task.setsecret", form) + "\n")
            self.stream.flush()
            self._local.update(text for text in local if len(text) >= MIN_SECRET_LENGTH)

    def _warn(self, message: str) -> None:
        with self._lock:
            if message not in self.warnings:
                self.warnings.append(message)

    def take_warnings(self) -> list[str]:
        """The warnings recorded since the last call (the reporter shows each once)."""
        with self._lock:
            new = self.warnings[self._shown :]
            self._shown = len(self.warnings)
        return new

    @property
    def known(self) -> frozenset[str]:
        """Every text `mask` replaces: the registered forms and the local ones (the value, JSON-escaped)."""
        with self._lock:
            return frozenset(self._forms | self._local)

    def mask(self, text: str, *, escape: Callable[[str], Iterable[str]] | None = None) -> str:
        """`text` with every registered form replaced by `***`, longest first (a form inside another is covered).

        `escape` gives, for a form, the ways a format writes it (Markdown, HTML): those are masked as well, for text
        that was escaped before it could be masked.
        """
        forms = set(self.known)
        if escape is not None:
            forms |= {written for form in list(forms) for written in escape(form) if len(written) >= MIN_SECRET_LENGTH}
        for form in sorted(forms, key=len, reverse=True):
            if form in text:
                text = text.replace(form, MASK)
        return text
