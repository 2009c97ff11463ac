"""The program sshd runs for every login (`command=` in authorized_keys): one git operation, or a refusal.

Usage (written by SshServer, run as `python -I -S forced_command.py CONTROL_FILE IDENTITY_ID`): sshd puts what the
client asked for in SSH_ORIGINAL_COMMAND, e.g. `git-upload-pack '/v3/org/project/repo'`. This program accepts only
the git services, asks the sandbox's Azure DevOps server (`POST /_sandbox/git-access`) whether the identity may use
that repository, and then replaces itself with the git service on the repository the server names, with the
environment the server returns (it carries the ticket the push hook needs). Everything else is refused with a
message on stderr, which ssh shows to the user as Azure DevOps' own messages are shown (`remote: ...`).

Fetches replace this program with git. A push runs git receive-pack as a child instead, and this program waits
as the session's process and as a child subreaper (Linux): the push hook kills receive-pack when a test asked
for a push whose reply is lost (`drop_after_next_push`), and the hook, left without a parent, is then reaped
here instead of by init (which in a container may never reap it). The session ends when receive-pack does.

It runs once per git operation, so it starts in a few milliseconds: isolated Python without site-packages, the
standard library only (no package imports: it works without PYTHONPATH), and a hand-written HTTP request over a
plain socket instead of http.client, which would import email and ssl.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys

#: The services Azure DevOps serves over SSH and the access each one needs from the server.
SERVICES = {
    "git-upload-pack": "git-upload-pack",
    "git-receive-pack": "git-receive-pack",
    # `git archive --remote` only reads, so it needs what a fetch needs.
    "git-upload-archive": "git-upload-pack",
}
PATH_FORM = "v3/<organization>/<project>/<repository>"
HTTP_TIMEOUT = 60.0
#: The git service must not depend on the account's or machine's git configuration; the server's env may override.
HERMETIC_GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
#: prctl(2) option that makes orphaned descendants this process's children.
PR_SET_CHILD_SUBREAPER = 36


class Refusal(Exception):
    """The operation is not allowed; the message is for the user."""


def parse_request(original_command: str | None) -> tuple[str, str]:
    """(service, path as the client sent it) from SSH_ORIGINAL_COMMAND, or a Refusal saying what is wrong."""
    if not original_command or not original_command.strip():
        raise Refusal("Shell access is not supported.")
    try:
        words = shlex.split(original_command)
    except ValueError:
        words = []
    if not words or words[0] not in SERVICES:
        shown = original_command if len(original_command) <= 100 else original_command[:100] + "..."
        raise Refusal(
            f"Command not supported: {shown!r}. Only git-upload-pack, git-receive-pack and git-upload-archive "
            f"are served, on a repository path {PATH_FORM}."
        )
    if len(words) != 2:
        raise Refusal(f"{words[0]} takes exactly one argument, the repository path {PATH_FORM}.")
    service, path = words
    # Only the shape is checked here; the server resolves the names (percent-encoding, case) and says what exists.
    segments = [segment for segment in path.split("/") if segment]
    if len(segments) < 2 or segments[0].lower() != "v3" or any(segment in (".", "..") for segment in segments):
        raise Refusal(f"Invalid repository path {path!r}: use {PATH_FORM}.")
    if any(ord(character) < 0x20 for character in path):
        raise Refusal("Invalid repository path: control characters are not allowed.")
    return service, path


def post_json(url: str, payload: dict[str, str]) -> tuple[int, object]:
    """POST a JSON body to an http:// URL on loopback and return (status, decoded JSON body or None)."""
    if not url.startswith("http://"):
        raise Refusal(f"the sandbox server URL must be http://, not {url!r}")
    authority, _, path = url[len("http://") :].partition("/")
    host, _, port = authority.rpartition(":")
    body = json.dumps(payload).encode()
    head = (
        f"POST /{path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host.strip("[]"), int(port)), timeout=HTTP_TIMEOUT) as connection:
        connection.sendall(head + body)
        response = _read_response(connection)
    header, _, content = response.partition(b"\r\n\r\n")
    status_line = header.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise Refusal("the sandbox server sent no HTTP response")
    try:
        decoded: object = json.loads(content) if content.strip() else None
    except ValueError:
        decoded = content.decode(errors="replace")
    return int(status_line[1]), decoded


def _read_response(connection: socket.socket) -> bytes:
    """Read until the server closes or the Content-Length body is complete (keep-alive servers may not close)."""
    data = b""
    expected: int | None = None
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk
        if expected is None and b"\r\n\r\n" in data:
            header = data.split(b"\r\n\r\n", 1)[0]
            for line in header.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    expected = len(header) + 4 + int(value.strip())
        if expected is not None and len(data) >= expected:
            return data[:expected]


def authorize(control_path: str, identity: str, service: str, path: str) -> tuple[str, str, dict[str, str]]:
    """Ask the server; (git program, repository directory, environment for git) or a Refusal with its message."""
    with open(control_path, encoding="utf-8") as stream:
        control = json.load(stream)
    request = {"secret": control["secret"], "identity": identity, "path": path, "service": SERVICES[service]}
    try:
        status, answer = post_json(f"{control['url'].rstrip('/')}/_sandbox/git-access", request)
    except OSError as error:
        raise Refusal(f"the sandbox's Azure DevOps server is not reachable: {error}") from error
    if status != 200 or not isinstance(answer, dict) or "gitDir" not in answer:
        message = answer.get("message") if isinstance(answer, dict) else answer
        raise Refusal(str(message or f"the sandbox's Azure DevOps server answered HTTP {status}"))
    env = {**os.environ, **HERMETIC_GIT_ENV, **{str(k): str(v) for k, v in (answer.get("env") or {}).items()}}
    return str(control.get("git") or "git"), str(answer["gitDir"]), env


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        sys.stderr.write("usage: forced_command.py CONTROL_FILE IDENTITY_ID\n")
        return 2
    control_path, identity = argv[1], argv[2]
    try:
        service, path = parse_request(os.environ.get("SSH_ORIGINAL_COMMAND"))
        git, git_dir, env = authorize(control_path, identity, service, path)
    except Refusal as refusal:
        for line in str(refusal).splitlines() or [""]:
            sys.stderr.write(f"remote: {line}\n")
        sys.stderr.flush()
        return 1
    argv = [git, service.removeprefix("git-"), git_dir]
    if service == "git-receive-pack":
        return run_and_reap(argv, env)
    # `git upload-pack DIR` is what `git-upload-pack DIR` runs; exec keeps the client's stdin/stdout pipes.
    os.execvpe(git, argv, env)


def _become_subreaper() -> None:
    """Adopt orphaned descendants (Linux prctl); elsewhere they go to init as usual."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def run_and_reap(argv: list[str], env: dict[str, str]) -> int:
    """Run git as a child on the session's stdin/stdout, reap it and every orphan left, and pass on its status."""
    _become_subreaper()
    child = os.fork()
    if child == 0:
        try:
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    # The protocol belongs to git now: the session ends when git's copies of stdin/stdout close.
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    status = 1
    while True:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            return status
        except InterruptedError:
            continue
        if pid == child:
            if os.WIFSIGNALED(wait_status):
                status = 128 + os.WTERMSIG(wait_status)
            else:
                status = os.waitstatus_to_exitcode(wait_status)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
