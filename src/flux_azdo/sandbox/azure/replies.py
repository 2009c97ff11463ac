"""What a handler of the sandbox Azure server returns: status, JSON body and headers (the server writes them)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    status: int
    document: Any
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        return json.dumps(self.document, separators=(",", ":")).encode()


class ReplyError(Exception):
    """Raised by handlers to answer with an error `Reply` at once."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply.status}: {reply.document}")
        self.reply = reply
