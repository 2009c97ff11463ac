"""OpenSSH's own `sshd` on a loopback port, configured to behave like `ssh.dev.azure.com`.

A real sshd (not a Python SSH library) is the point: the product's SSH code and Flux talk to it with real clients,
so what sshd accepts or refuses (one RSA host key, SHA-2 signatures only, public keys only, no shell) is exactly
what Azure DevOps accepts or refuses. Every registered key gets a forced command (`forced_command.py`) that asks
the sandbox's Azure DevOps server whether this identity may run this git service on this path, so SSH and HTTP
share one set of permissions.

Keys follow the world while sshd runs: the server subscribes to `World.on_ssh_keys_changed` and rewrites
authorized_keys (atomically) before `add_ssh_key`/`remove_ssh_key` return, and sshd reads that file on every
login, so a key added or removed counts from the next connection on, as on the service.

The files live in the given directory: `sshd_config`, the host key, `authorized_keys`, `sshd.log`, and the 0600
control file with the server URL and internal secret, which the forced command reads so the secret never shows in a
process list.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import quote

from flux_azdo.sandbox.ssh.processes import process_tree, stop_tree
from flux_azdo.sandbox.world import public_key_entry

if TYPE_CHECKING:
    from flux_azdo.sandbox.azure_devops import AzureDevOpsServer
    from flux_azdo.sandbox.world import World

SSHD = Path("/usr/sbin/sshd")
#: Root's sshd refuses to start without its privilege separation directory (Debian creates it at boot only).
PRIVSEP_DIR = Path("/run/sshd")
#: What ssh.dev.azure.com offers and accepts: RSA with SHA-2 signatures, nothing else.
RSA_SHA2 = "rsa-sha2-512,rsa-sha2-256"
HOST_KEY_BITS = 3072
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
#: Another process may take the free port between our probe and sshd's bind; then we try a new one.
PORT_ATTEMPTS = 5
#: What every key line gets besides its forced command: no terminal, no forwarding, no ~/.ssh/rc.
KEY_RESTRICTIONS = "no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty,no-user-rc"
FORCED_COMMAND = Path(__file__).with_name("forced_command.py")
CONTROL_FILE = "git-access.json"


class SshServerError(RuntimeError):
    """sshd could not be started; the message carries sshd's log."""


def sshd_available() -> str | None:
    """None when an sshd can run here, else why not (the reason tests show when they skip)."""
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} is missing (install the openssh-server package)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen is missing (install the openssh-client package)"
    try:
        entry = pwd.getpwuid(os.geteuid())
    except KeyError:
        return f"uid {os.geteuid()} has no passwd entry, so sshd cannot log anyone in"
    # sshd runs the forced command through the login shell: a nologin shell would refuse every git operation.
    shell = entry.pw_shell or "/bin/sh"
    if Path(shell).name in ("nologin", "false") or not os.access(shell, os.X_OK):
        return f"user {entry.pw_name} has no usable login shell ({shell}), which sshd needs to run git"
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir() and not os.access(PRIVSEP_DIR.parent, os.W_OK):
        return f"sshd runs as root and needs {PRIVSEP_DIR}, which cannot be created"
    return None


def generate_host_key(path: Path) -> None:
    """An RSA-3072 key pair at `path` and `path.pub`, written atomically so a cached key is never half there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    for leftover in (temporary, Path(f"{temporary}.pub")):
        leftover.unlink(missing_ok=True)
    command = ["ssh-keygen", "-q", "-t", "rsa", "-b", str(HOST_KEY_BITS), "-N", "", "-C", "sandbox-host"]
    subprocess.run([*command, "-f", str(temporary)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    os.replace(f"{temporary}.pub", f"{path}.pub")
    os.replace(temporary, path)


def public_key_of(private_key: Path) -> str:
    """`ssh-rsa AAAA...` (type and blob, no comment) from the `.pub` next to the key, else from the key itself."""
    pub = Path(f"{private_key}.pub")
    if pub.is_file():
        text = pub.read_text(encoding="utf-8")
    else:
        result = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(private_key)], check=True, capture_output=True, text=True
        )
        text = result.stdout
    key_type, blob = text.split()[:2]
    return f"{key_type} {blob}"


def authorized_key_entry(public_key_line: str) -> str:
    """`type blob` of a public key line; options and the comment are dropped so only our restrictions apply."""
    return public_key_entry(public_key_line)


def _write_private(path: Path, data: bytes) -> None:
    """Write `path` atomically with mode 0600 from the first byte (secrets, and keys sshd insists on)."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def _quoted(value: str) -> str:
    """A value for sshd_config: double-quoted with backslash escapes, so paths with spaces or `#` stay whole."""
    if "\n" in value:
        raise ValueError(f"a line break cannot go into sshd_config: {value!r}")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _login_name() -> str:
    """The account sshd will let in: the one it runs as (AllowUsers), named from the passwd entry of the uid."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        import getpass

        return getpass.getuser()


class SshServer:
    """sshd on 127.0.0.1:<random port>; `with SshServer(world, azdo, directory) as ssh:` in tests.

    From `start()` to `stop()` it follows the world's SSH keys by itself (`World.on_ssh_keys_changed`): a key
    added or removed counts from the next connection on. `refresh_keys()` stays for callers that rewrote the
    file themselves; it is never needed after `World.add_ssh_key`.
    """

    def __init__(self, world: World, azdo: AzureDevOpsServer, directory: Path, *, host_key: Path | None = None) -> None:
        self.world = world
        self.azdo = azdo
        self.directory = Path(directory)
        self.host = "127.0.0.1"
        self.port = 0
        self.user = _login_name()
        self.host_public_key = ""
        self._cached_host_key = Path(host_key) if host_key is not None else None
        self._process: subprocess.Popen[bytes] | None = None
        self._keys_lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self.config_path = self.directory / "sshd_config"
        self.host_key_path = self.directory / "ssh_host_rsa_key"
        self.authorized_keys_path = self.directory / "authorized_keys"
        self.control_path = self.directory / CONTROL_FILE
        self.log_path = self.directory / "sshd.log"

    # -- what clients need -------------------------------------------------------------------------------------------

    @property
    def known_hosts_line(self) -> str:
        """The line for a known_hosts file; the type stays `ssh-rsa` even though only SHA-2 signatures are used."""
        self._require_started()
        return f"[{self.host}]:{self.port} {self.host_public_key}"

    def url(self, org: str, project: str, repo: str) -> str:
        """The URL form Flux needs (`ssh://`, not scp-like), names percent-encoded like Azure DevOps' sshUrl."""
        self._require_started()
        names = "/".join(quote(name, safe="") for name in (org, project, repo))
        return f"ssh://{self.user}@{self.host}:{self.port}/v3/{names}"

    @property
    def pid(self) -> int | None:
        """The listening sshd's process id while it runs."""
        return self._process.pid if self._process is not None else None

    # -- keys ------------------------------------------------------------------------------------------------------

    def refresh_keys(self) -> None:
        """Rewrite authorized_keys from `world.ssh_keys()`: one forced-command line per key, tied to its identity.

        Keys of every type are written, ed25519 included: sshd itself then refuses them for their signature
        algorithm, as Azure DevOps does, rather than the key simply being unknown.

        The world is read inside the lock that serialises the writes, so concurrent key changes cannot leave an
        older list on disk than the last change: each write holds every change made before it read. The file is
        replaced atomically, so sshd never reads half of it.
        """
        with self._keys_lock:
            lines = []
            for identity, public_key_line in self.world.ssh_keys():
                command = self._forced_command(identity.id).replace('"', '\\"')
                lines.append(f'command="{command}",{KEY_RESTRICTIONS} {authorized_key_entry(public_key_line)}\n')
            self.directory.mkdir(parents=True, exist_ok=True)
            _write_private(self.authorized_keys_path, "".join(lines).encode())

    def _forced_command(self, identity_id: str) -> str:
        """A shell command line (sshd runs it with the login shell): fast isolated Python, no secret in argv."""
        if not sys.executable:
            raise SshServerError("the Python interpreter's path is unknown, so sshd cannot run the forced command")
        argv = [sys.executable, "-I", "-S", str(FORCED_COMMAND), str(self.control_path), identity_id]
        if any("\n" in part or "\r" in part for part in argv):
            raise ValueError(f"a line break cannot go into authorized_keys: {argv!r}")
        return " ".join(shlex.quote(part) for part in argv)

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._process is not None:
            return
        reason = sshd_available()
        if reason is not None:
            raise SshServerError(f"cannot start sshd: {reason}")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if os.geteuid() == 0:
            PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        self._install_host_key()
        self._write_control_file()
        # Subscribe before the first write, so that a key added meanwhile is never missed.
        self._unsubscribe = self.world.on_ssh_keys_changed(self.refresh_keys)
        try:
            self.refresh_keys()
            failures = []
            for _ in range(PORT_ATTEMPTS):
                port = _free_port(self.host)
                error = self._try_start(port)
                if error is None:
                    self.port = port
                    return
                failures.append(error)
                if "Address already in use" not in error and "Cannot bind" not in error:
                    break
        except BaseException:
            self._stop_following_keys()
            raise
        self._stop_following_keys()
        raise SshServerError(f"sshd did not start; its log:\n{failures[-1]}")

    def stop(self) -> None:
        """Stop the connections' processes first (they run in sessions of their own), then sshd, and reap them."""
        self._stop_following_keys()
        process, self._process = self._process, None
        if process is None:
            return
        # A connection accepted meanwhile adds a child; sshd must outlive its children so that it reaps them all.
        deadline = time.monotonic() + STOP_TIMEOUT
        while True:
            stop_tree(process.pid)
            if not process_tree(process.pid) or time.monotonic() > deadline:
                break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill(process)

    def __enter__(self) -> SshServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------------------------------

    def _stop_following_keys(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def _require_started(self) -> None:
        if not self.port:
            raise RuntimeError("the SSH server has not been started")

    def _install_host_key(self) -> None:
        """Copy the cached key (generating it there first if missing) or generate one; sshd wants it 0600."""
        cached = self._cached_host_key
        if cached is None:
            if not self.host_key_path.is_file():
                generate_host_key(self.host_key_path)
        else:
            if not cached.is_file():
                generate_host_key(cached)
            _write_private(self.host_key_path, cached.read_bytes())
            Path(f"{self.host_key_path}.pub").write_text(public_key_of(cached) + "\n", encoding="utf-8")
        self.host_public_key = public_key_of(self.host_key_path)

    def _write_control_file(self) -> None:
        git = shutil.which("git") or "git"
        control = {"url": self.azdo.url, "secret": self.azdo.internal_secret, "git": git}
        _write_private(self.control_path, json.dumps(control).encode())

    def _config(self, port: int) -> str:
        settings = [
            ("Port", str(port)),
            ("ListenAddress", self.host),
            ("HostKey", _quoted(str(self.host_key_path))),
            ("HostKeyAlgorithms", RSA_SHA2),
            ("PubkeyAcceptedAlgorithms", RSA_SHA2),
            # sshd expands %-tokens in this one (%h, %u, ...); a literal % is written %%.
            ("AuthorizedKeysFile", _quoted(str(self.authorized_keys_path).replace("%", "%%"))),
            ("AuthenticationMethods", "publickey"),
            ("PubkeyAuthentication", "yes"),
            ("PasswordAuthentication", "no"),
            ("KbdInteractiveAuthentication", "no"),
            ("HostbasedAuthentication", "no"),
            ("PermitRootLogin", "prohibit-password"),
            ("AllowUsers", self.user),
            ("UsePAM", "no"),
            # The files sit in a temporary directory that sshd's ownership checks would reject.
            ("StrictModes", "no"),
            ("DisableForwarding", "yes"),
            ("AllowTcpForwarding", "no"),
            ("AllowAgentForwarding", "no"),
            ("AllowStreamLocalForwarding", "no"),
            ("X11Forwarding", "no"),
            ("PermitTunnel", "no"),
            ("PermitTTY", "no"),
            ("PermitUserRC", "no"),
            ("PermitUserEnvironment", "no"),
            # git asks for protocol v2 this way (`ssh -o SendEnv=GIT_PROTOCOL`), as the HTTP side honours Git-Protocol.
            ("AcceptEnv", "GIT_PROTOCOL"),
            ("PrintMotd", "no"),
            ("PrintLastLog", "no"),
            ("UseDNS", "no"),
            # sshd runs the forced command with the login shell, and Debian's bash sources ~/.bashrc (and
            # /etc/bash.bashrc) for commands run over ssh unless it is a nested shell: the user's rc files would
            # slow every git operation and could print into the git protocol.
            ("SetEnv", "SHLVL=1"),
            ("LoginGraceTime", "30"),
            ("PidFile", _quoted(str(self.directory / "sshd.pid"))),
            ("LogLevel", "VERBOSE"),
        ]
        return "".join(f"{name} {value}\n" for name, value in settings)

    def _try_start(self, port: int) -> str | None:
        """Start sshd on `port` and wait until it listens: None on success, else its log since this attempt."""
        self.config_path.write_text(self._config(port), encoding="utf-8")
        self.log_path.touch()
        offset = self.log_path.stat().st_size
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(
                [str(SSHD), "-D", "-f", str(self.config_path), "-E", str(self.log_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        listening = f"Server listening on {self.host} port {port}."
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while True:
                text = self._log_since(offset)
                if listening in text:
                    self._process = process
                    return None
                if process.poll() is not None:
                    return text.strip() or f"sshd exited with status {process.returncode} and logged nothing"
                if time.monotonic() > deadline:
                    _kill(process)
                    return f"{text.strip()}\n(no '{listening}' after {START_TIMEOUT:.0f} s)"
                # sshd listens about 20 ms after it starts, so a coarse poll would dominate the start-up time.
                time.sleep(0.002)
        except BaseException:
            _kill(process)
            raise

    def _log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL sshd's process group (it leads one) and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()
