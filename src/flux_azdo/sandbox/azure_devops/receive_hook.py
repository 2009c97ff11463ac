"""The `proc-receive` hook installed in every sandbox repository: per-ref push rules decided by the server.

git's receive-pack hands every pushed ref to this program (`receive.procReceiveRefs = refs/`) after the objects
are in place. The hook passes the commands on to the server over loopback, with the ticket that identifies the
pusher and the repository:

    POST {AZDO_SANDBOX_HOOK_URL}/_sandbox/receive  {"ticket", "commands": [{"old", "new", "ref"}]}
    -> {"results": [{"ref", "ok", "reason"}], "hangUp": true (only with the drop_after_next_push fault, SSH)}

The server works out fast-forwards itself (nothing the hook says about them is trusted), checks the permissions,
applies the accepted updates and answers; the ticket is good for one push. The hook reports `ok <ref>` or
`ng <ref> <reason>` back to receive-pack, which shows the reason to the client as
` ! [remote rejected] main -> main (<reason>)`, as Azure DevOps does.

With `hangUp` the refs are already updated and the client must not learn it: the hook kills its parent, git
receive-pack, before it can write the report, so ssh closes the session mid-protocol (the SSH forced command
waits for receive-pack and reaps this hook, which that leaves without a parent).

It is run as a script (`python -I receive_hook.py`), so it uses the standard library only and no package import.
Environment: AZDO_SANDBOX_HOOK_URL (server base URL) and AZDO_SANDBOX_HOOK_TICKET, set by whoever starts git.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import urllib.error
import urllib.request
from typing import BinaryIO

URL_VARIABLE = "AZDO_SANDBOX_HOOK_URL"
TICKET_VARIABLE = "AZDO_SANDBOX_HOOK_TICKET"
INTERNAL_ERROR = "TF400898: An Internal Error Occurred."


def read_packet(stream: BinaryIO) -> bytes | None:
    """One pkt-line payload without its trailing newline, or None for a flush packet."""
    header = stream.read(4)
    if len(header) < 4:
        raise EOFError("receive-pack closed the protocol stream")
    length = int(header, 16)
    if length == 0:
        return None
    payload = stream.read(length - 4)
    return payload[:-1] if payload.endswith(b"\n") else payload


def write_packet(stream: BinaryIO, payload: bytes | None) -> None:
    if payload is None:
        stream.write(b"0000")
    else:
        data = payload + b"\n"
        stream.write(f"{len(data) + 4:04x}".encode() + data)


def read_until_flush(stream: BinaryIO) -> list[bytes]:
    packets = []
    while (packet := read_packet(stream)) is not None:
        packets.append(packet)
    return packets


def ask_server(commands: list[dict[str, object]]) -> tuple[list[dict[str, object]], bool]:
    """The server's result per ref, and whether the push must end without a report (`hangUp`)."""
    url = os.environ.get(URL_VARIABLE)
    ticket = os.environ.get(TICKET_VARIABLE)
    if not url or not ticket:
        return [{"ref": c["ref"], "ok": False, "reason": f"{INTERNAL_ERROR} (no push ticket)"} for c in commands], False
    body = json.dumps({"ticket": ticket, "commands": commands}).encode()
    request = urllib.request.Request(
        url.rstrip("/") + "/_sandbox/receive", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
            results: list[dict[str, object]] = answer["results"]
            return results, answer.get("hangUp") is True
    except (urllib.error.URLError, OSError, ValueError, KeyError) as error:
        return [{"ref": c["ref"], "ok": False, "reason": f"{INTERNAL_ERROR} ({error})"} for c in commands], False


def hang_up() -> None:
    """Kill receive-pack (this hook's parent) so that the client never gets the report of the applied push."""
    parent = os.getppid()
    if parent > 1:
        os.kill(parent, signal.SIGKILL)


def main() -> int:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    read_until_flush(stdin)  # version=1 and receive-pack's capabilities
    write_packet(stdout, b"version=1")
    write_packet(stdout, None)
    stdout.flush()
    commands: list[dict[str, object]] = []
    for line in read_until_flush(stdin):
        old, new, ref = line.decode().split(" ", 2)
        commands.append({"old": old, "new": new, "ref": ref})
    answers, hang = ask_server(commands) if commands else ([], False)
    if hang:
        hang_up()
        return 0
    results = {str(result["ref"]): result for result in answers}
    for command in commands:
        ref = str(command["ref"])
        result = results.get(ref, {"ok": False, "reason": INTERNAL_ERROR})
        if result.get("ok"):
            write_packet(stdout, f"ok {ref}".encode())
        else:
            reason = " ".join(str(result.get("reason") or INTERNAL_ERROR).split())
            write_packet(stdout, f"ng {ref} {reason}".encode())
    write_packet(stdout, None)
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
