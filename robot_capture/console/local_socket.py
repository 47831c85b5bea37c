"""The recorder's local socket: its console commands without DDS discovery (ROS-free).

Why: each ``robot-capture episode`` verb through the recorder's services costs rclpy init plus
DDS discovery of those services, 0.9-5.5 s per verb on a loaded 2-core PC (issue 18). The
recorder therefore also listens on a Unix stream socket on the same machine; the verbs try it
first and fall back to the services (``robot_capture.floor.client.open_client``).

Path (:func:`socket_path`): one socket per recorder node (fully qualified name, so per station
namespace) and ``ROS_DOMAIN_ID``, in ``$XDG_RUNTIME_DIR/robot_capture/`` or else
``/tmp/robot_capture-<uid>/``; the folder is mode 0700 and the socket 0600: only the user who
runs the recorder can drive it. A folder that is not ours, or open to others, is refused.

Protocol: one request per connection, one JSON object per line (UTF-8, at most
:data:`MAX_REQUEST` bytes)::

    -> {"v": 1, "command": "start", "set": {"task": "pick_cup"}, "timeout_s": 10}
    <- {"ok": true, "message": "/data/recordings/20261207-...pick_cup_0003", "stage": "command"}

``command`` is one of the console commands (``robot_capture.console.commands.COMMANDS``: the
same commands as the recorder's services, answered with the same text). ``set`` (optional)
names recorder parameters to set first, only those of :data:`SETTABLE` (str, or bool for the
success labels); a rejected parameter fails the request before the command runs (``stage``
``set``). ``ok`` is the services' ``success``, ``message`` their ``message``. ``timeout_s``
(optional, default 10, clamped to 0.1-300): a request the recorder has not started within it is
not run at all and answered ``ok: false`` (the client waits a little longer for that answer), so
a command never runs after its client gave up.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import socketserver
import stat
import threading
from pathlib import Path
from typing import Callable

__all__ = ["MAX_REQUEST", "SETTABLE", "LocalSocketUnavailable", "LocalSocketError", "Request", "socket_path",
           "parse_request", "encode_request", "call", "LocalCommandServer"]

#: the largest request line accepted (bytes); labels are at most a few hundred characters
MAX_REQUEST = 64 * 1024
#: recorder parameters a request may set before its command (the labels the services' clients set)
SETTABLE = ("task", "operator", "scene", "notes", "episode_success", "relabel_success", "relabel_task",
            "relabel_operator", "relabel_scene", "relabel_notes")
_VERSION = 1
_AF_UNIX_MAX = 107  # sun_path is 108 bytes with its NUL


class LocalSocketUnavailable(OSError):
    """No recorder listens on the socket (no file, a stale one, refused): use the services."""


class LocalSocketError(RuntimeError):
    """A request was sent but not answered properly (timeout, closed, garbled): it may have run,
    so it must not be re-sent through the services."""


class Request:
    """One checked request: ``command`` (console command) and ``set`` ({parameter: str | bool})."""

    __slots__ = ("command", "set", "timeout_s")

    def __init__(self, command: str, set: dict | None = None, timeout_s: float = 10.0):  # noqa: A002
        self.command = command
        self.set = dict(set or {})
        self.timeout_s = timeout_s


def _socket_dir() -> Path:
    run = os.environ.get("XDG_RUNTIME_DIR", "")
    if run and os.path.isdir(run) and os.stat(run).st_uid == os.getuid():
        return Path(run) / "robot_capture"
    return Path("/tmp") / f"robot_capture-{os.getuid()}"


def socket_path(recorder: str = "/recorder", domain_id: int | str | None = None) -> Path:
    """The socket of recorder node ``recorder`` (fully qualified name) on ``domain_id``.

    ``domain_id`` None reads ``ROS_DOMAIN_ID`` as rcl does (unset or empty: 0). A name too long
    for ``AF_UNIX`` (107 bytes) is replaced by its SHA-1 (and a runtime folder still too long by
    ``/tmp/robot_capture-<uid>``). Creates nothing.
    """
    if domain_id is None:
        domain_id = os.environ.get("ROS_DOMAIN_ID", "").strip() or "0"
    name = "/" + str(recorder).strip("/")
    stem = f"recorder-d{str(domain_id).strip()}-{name.strip('/').replace('/', '.')}"
    d = _socket_dir()
    if len(str(d / f"{stem}.sock").encode()) > _AF_UNIX_MAX:
        stem = f"recorder-d{str(domain_id).strip()}-" + hashlib.sha1(name.encode()).hexdigest()
    if len(str(d / f"{stem}.sock").encode()) > _AF_UNIX_MAX:  # a very long XDG_RUNTIME_DIR
        d = Path("/tmp") / f"robot_capture-{os.getuid()}"
    return d / f"{stem}.sock"


def _private_dir(d: Path, create: bool) -> None:
    """Check (and with ``create``, make) ``d`` a real folder of ours with mode 0700.

    Raises:
        LocalSocketUnavailable: missing (and not created), a symlink, not ours, or open to others.
    """
    if create:
        try:
            d.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            pass
    try:
        st = os.lstat(d)
    except FileNotFoundError:
        raise LocalSocketUnavailable(errno.ENOENT, f"{d}: no such folder") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise LocalSocketUnavailable(errno.EPERM, f"{d}: not a private folder of uid {os.getuid()} "
                                                  f"(mode {stat.S_IMODE(st.st_mode):o}, uid {st.st_uid})")


def encode_request(command: str, set: dict | None = None, timeout_s: float = 10.0) -> bytes:  # noqa: A002
    """The request line for ``command`` (and parameters to ``set`` first)."""
    return (json.dumps({"v": _VERSION, "command": command, "set": dict(set or {}), "timeout_s": timeout_s})
            + "\n").encode()


def parse_request(line: bytes) -> Request:
    """Check one request line.

    Raises:
        ValueError: not JSON, not an object, another version, no command, or a ``set`` entry that
            is not one of :data:`SETTABLE` with a str/bool value (the text names it).
    """
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("bad request: not a JSON line") from None
    if not isinstance(obj, dict):
        raise ValueError("bad request: not a JSON object")
    if obj.get("v") != _VERSION:
        raise ValueError(f"bad request: protocol version {obj.get('v')!r}, this recorder speaks {_VERSION}")
    command = obj.get("command")
    if not isinstance(command, str) or not command:
        raise ValueError("bad request: no command")
    values = obj.get("set") or {}
    if not isinstance(values, dict):
        raise ValueError("bad request: set must be an object")
    for k, v in values.items():
        if k not in SETTABLE:
            raise ValueError(f"bad request: parameter {k!r} cannot be set here (only {', '.join(SETTABLE)})")
        if not isinstance(v, (str, bool)):
            raise ValueError(f"bad request: parameter {k!r} must be a string or a boolean")
    timeout_s = obj.get("timeout_s", 10.0)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s == timeout_s:
        raise ValueError("bad request: timeout_s must be a number of seconds")
    return Request(command, values, min(300.0, max(0.1, float(timeout_s))))


def call(path: Path, command: str, set: dict | None = None,  # noqa: A002
         timeout_s: float = 10.0) -> tuple[bool, str, str]:
    """Send one request to the recorder at ``path``; returns ``(ok, message, stage)`` as the
    services would answer (``stage``: ``set`` when a parameter was rejected, else ``command``).

    Raises:
        LocalSocketUnavailable: nothing to send it to (no socket, stale file of a dead recorder,
            refused, a folder that is not private): nothing was sent, use the services.
        LocalSocketError: sent, but no complete answer within ``timeout_s`` + 2 s.
    """
    path = Path(path)
    _private_dir(path.parent, create=False)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(min(timeout_s, 2.0))
        try:
            sock.connect(str(path))
        except OSError as exc:  # no file, refused (stale), not ours, backlog full: nothing was sent
            raise LocalSocketUnavailable(getattr(exc, "errno", None) or errno.ECONNREFUSED,
                                         f"{path}: {exc.strerror or exc}") from None
        sock.settimeout(timeout_s + 2.0)  # the recorder answers "not run" at timeout_s: wait for that
        try:
            sock.sendall(encode_request(command, set, timeout_s))
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > 64 * MAX_REQUEST:
                    raise LocalSocketError(f"{path}: answer too long")
        except socket.timeout:
            raise LocalSocketError(f"no answer from {path} within {timeout_s + 2.0:g} s") from None
        except OSError as exc:
            raise LocalSocketError(f"{path}: {exc.strerror or exc}") from None
    finally:
        sock.close()
    try:
        reply = json.loads(buf.decode("utf-8"))
        return bool(reply["ok"]), str(reply["message"]), str(reply.get("stage", "command"))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise LocalSocketError(f"{path}: the recorder closed the connection without a complete answer") from None


class _Handler(socketserver.StreamRequestHandler):
    timeout = 5.0  # a client that connects and sends nothing does not hold a thread for long

    def handle(self) -> None:
        try:
            line = self.rfile.readline(MAX_REQUEST + 1)
        except OSError:
            return
        if not line:
            return
        if len(line) > MAX_REQUEST or not line.endswith(b"\n"):
            ok, msg, stage = False, f"bad request: longer than {MAX_REQUEST} bytes or not one line", "request"
        else:
            try:
                ok, msg, stage = self.server.handle_request_fn(parse_request(line))
            except ValueError as exc:
                ok, msg, stage = False, str(exc), "request"
        try:
            self.wfile.write((json.dumps({"ok": bool(ok), "message": str(msg), "stage": stage}) + "\n").encode())
        except OSError:
            pass  # the client gave up; the command ran (or not) as it would through the services


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False

    def server_bind(self) -> None:
        super().server_bind()
        os.chmod(self.server_address, 0o600)  # before listen(): nobody can connect in between


class LocalCommandServer:
    """Serve :func:`call` requests on ``path`` in threads; ``handle(Request) -> (ok, message, stage)``.

    ``handle`` runs in the connection's thread: the recorder shell hands the request to its
    executor and waits for the answer (``nodes/_recorder_console.py``).
    """

    def __init__(self, path: Path, handle: Callable[[Request], tuple[bool, str, str]]):
        self.path = Path(path)
        self._handle = handle
        self._server: _Server | None = None
        self._ino: int | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve. A socket file left by a dead recorder is replaced.

        Raises:
            LocalSocketUnavailable: the folder is not private, or a live recorder already answers on
                ``path`` (a duplicate node name: the services still work, the socket stays its).
            OSError: bind failed.
        """
        _private_dir(self.path.parent, create=True)
        if self.path.exists() or self.path.is_symlink():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.settimeout(1.0)
            try:
                probe.connect(str(self.path))
                alive = True
            except (ConnectionRefusedError, FileNotFoundError):
                alive = False  # stale: its recorder died (SIGKILL) without removing it
            except OSError as exc:
                raise LocalSocketUnavailable(exc.errno or errno.EIO, f"{self.path}: {exc}") from None
            finally:
                probe.close()
            if alive:
                raise LocalSocketUnavailable(errno.EADDRINUSE, f"{self.path}: another recorder answers there")
            self.path.unlink(missing_ok=True)
        server = _Server(str(self.path), _Handler)
        server.handle_request_fn = self._handle
        self._server = server
        self._ino = os.stat(self.path).st_ino
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="recorder-local-socket", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and remove the socket file (only if it is still ours). Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        try:
            if os.stat(self.path).st_ino == self._ino:
                self.path.unlink()
        except FileNotFoundError:
            pass
