"""
Real servers for the tests: C{redis-server} and C{nginx}, each started on a
free 127.0.0.1 port with a generated configuration in a temporary
directory (its log files and pid file stay there), in the foreground as a
child process, and stopped again.

Everything here blocks (subprocesses, sockets); call it from a thread
(C{deferToThread}) inside a running reactor.  Nothing listens on anything
but 127.0.0.1, and the packaged system services are never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REDIS_SERVER = "/usr/bin/redis-server"
NGINX = "/usr/sbin/nginx"
REPO_ROOT = Path(__file__).resolve().parent.parent

HINTS = {
    "redis-server": "`apt-get install -y redis-server` (scripts/test.sh does this when run as root)",
    "nginx": "`apt-get install -y nginx` (scripts/test.sh does this when run as root)",
}


def find(name: str, default: str) -> str | None:
    """The path of an executable: C{default} if it is there, else on $PATH."""
    if os.path.isfile(default) and os.access(default, os.X_OK):
        return default
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def tempDir(case: Any, prefix: str = "txratchet-") -> Path:
    """
    A fresh directory outside the work tree, removed after the test (call
    it before starting anything that lives in it: cleanups run last first).
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    case.addCleanup(shutil.rmtree, path, True)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceError(RuntimeError):
    """A service is missing or did not start; the message says why."""


class Service:
    """
    A server in a child process on a free port, configured in C{workdir}.
    Subclasses say how to configure and run it and when it is ready.
    """

    name = ""
    default = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logPath = self.workdir / f"{self.name}.out"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.executable = self.locate()

    def locate(self) -> str:
        """The executable, or a L{ServiceError} saying how to install it."""
        executable = find(self.name, self.default)
        if executable is None:
            raise ServiceError(
                f"{self.name} is not installed (looked for {self.default} and on $PATH); "
                f"install it: {HINTS[self.name]}"
            )
        return executable

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        """Does it answer on C{self.port}?"""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def logs(self) -> str:
        """Everything it wrote, for failure messages."""
        out = []
        for path in [*sorted(self.workdir.glob("*.log")), self.logPath]:
            try:
                out.append(f"--- {path.name}\n{path.read_text('utf-8', errors='replace')}")
            except OSError:
                pass
        return "\n".join(out)

    def start(self, timeout: float = 10.0, attempts: int = 3) -> int:
        """
        Start it and wait (bounded) until it answers; a port taken between
        L{free_port} and its bind is retried with another.

        @return: the port.
        @raise ServiceError: it did not come up (the message has its logs).
        """
        for _ in range(attempts):
            self.port = free_port()
            command = self.command()
            with open(self.logPath, "ab") as out:
                out.write(f"==> {' '.join(command)}\n".encode())
                out.flush()
                self.process = subprocess.Popen(
                    command,
                    cwd=self.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if self.ready():
                    return self.port
                time.sleep(0.02)
            self.stop()
            if "in use" not in self.logs():
                break
        raise ServiceError(f"{self.name} did not start; its logs:\n{self.logs()}")

    def stop(self) -> int | None:
        """
        SIGTERM, then SIGKILL to its process group (its own, made at start:
        it holds only this server and its workers) after 5 s.

        @return: its exit status.
        """
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        return process.returncode


class RedisServer(Service):
    """
    C{redis-server} on 127.0.0.1, persisting nothing, working in C{workdir}.
    """

    name = "redis-server"
    default = REDIS_SERVER

    def command(self) -> list[str]:
        conf = self.workdir / "redis.conf"
        conf.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            "protected-mode yes\n"
            "daemonize no\n"
            f'dir "{self.workdir}"\n'
            f'logfile "{self.workdir / "redis.log"}"\n'
            f'pidfile "{self.workdir / "redis.pid"}"\n'
            'save ""\n'
            "appendonly no\n"
        )
        return [self.executable, str(conf)]

    def ready(self) -> bool:
        try:
            return self.call("PING") == "PONG"
        except OSError:
            return False

    def startAgain(self, timeout: float = 10.0) -> None:
        """
        After L{stop}: start it again on the same port (a Redis restart, as
        clients see it), waiting (bounded) until it answers.
        """
        with open(self.logPath, "ab") as out:
            self.process = subprocess.Popen(
                self.command(), cwd=self.workdir, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise ServiceError(f"redis-server did not start again; its logs:\n{self.logs()}")
            time.sleep(0.05)

    def call(self, *args: str) -> str | int | None:
        """
        One Redis command over a fresh connection, the way any other client
        would send it: C{call("SET", key, value)}.

        @return: the reply: a string, an integer or C{None} (nil).
        @raise ServiceError: Redis answered with an error.
        """
        request = f"*{len(args)}\r\n".encode()
        for arg in args:
            data = arg.encode("utf-8")
            request += b"$%d\r\n%s\r\n" % (len(data), data)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(request)
            reply = s.makefile("rb")
            line = reply.readline().rstrip(b"\r\n")
            kind, rest = line[:1], line[1:].decode("utf-8")
            if kind == b"+":
                return rest
            if kind == b":":
                return int(rest)
            if kind == b"$":
                size = int(rest)
                return None if size < 0 else reply.read(size + 2)[:-2].decode("utf-8")
            raise ServiceError(f"Redis answered {line!r} to {args!r}")


class ExampleServer(Service):
    """
    C{python examples/<name>.py --port N --interface 127.0.0.1 [args]}: an
    example run the way its docstring says, with this checkout first on its
    path.
    """

    name = "example"

    def __init__(self, workdir: Path, script: str, *args: str) -> None:
        self.script = REPO_ROOT / "examples" / script
        self.args = list(args)
        super().__init__(workdir)

    def locate(self) -> str:
        return sys.executable

    def command(self) -> list[str]:
        return [
            self.executable, str(self.script),
            "--port", str(self.port), "--interface", "127.0.0.1", *self.args,
        ]


# What the README recommends, verbatim (tests/test_nginx.py checks that the
# README still says this): a WebSocket location behind nginx at the edge.
NGINX_LOCATION = """\
location /ws {{
    proxy_pass http://127.0.0.1:{upstream};
    proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header Forwarded "";
    proxy_read_timeout 1h;
    proxy_send_timeout 1h;
}}
"""

NGINX_MAP = """\
map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      close;
}
"""


class Nginx(Service):
    """
    C{nginx} in the foreground (C{daemon off;}) with everything (config,
    pid, logs, temporary files) in C{workdir}, proxying to
    C{127.0.0.1:upstream}: C{/ws} exactly as the README's snippet says;
    C{/chain} the same except that it appends to the client's
    C{X-Forwarded-For} (an nginx behind another proxy); C{/passforwarded}
    the same as C{/ws} but letting the client's C{Forwarded} through (the
    README's snippet before it cleared that header).
    """

    name = "nginx"
    default = NGINX

    def __init__(self, workdir: Path, upstream: int) -> None:
        super().__init__(workdir)
        self.upstream = upstream

    def config(self) -> str:
        d = self.workdir
        location = NGINX_LOCATION.format(upstream=self.upstream)
        chain = location.replace("location /ws", "location /chain").replace(
            "X-Forwarded-For $remote_addr", "X-Forwarded-For $proxy_add_x_forwarded_for"
        )
        passForwarded = location.replace("location /ws", "location /passforwarded").replace(
            '    proxy_set_header Forwarded "";\n', ""
        )
        assert "$proxy_add_x_forwarded_for" in chain and 'Forwarded ""' not in passForwarded
        indent = lambda text, n: "".join(" " * n + line + "\n" for line in text.splitlines())  # noqa: E731
        return (
            "daemon off;\n"
            "master_process on;\n"
            "worker_processes 1;\n"
            f"pid {d}/nginx.pid;\n"
            f"error_log {d}/error.log info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"    access_log {d}/access.log;\n"
            f"    client_body_temp_path {d}/client_body;\n"
            f"    proxy_temp_path {d}/proxy;\n"
            f"    fastcgi_temp_path {d}/fastcgi;\n"
            f"    uwsgi_temp_path {d}/uwsgi;\n"
            f"    scgi_temp_path {d}/scgi;\n"
            + indent(NGINX_MAP, 4)
            + "    server {\n"
            f"        listen 127.0.0.1:{self.port};\n"
            "        server_name localhost;\n"
            + indent(location, 8)
            + indent(chain, 8)
            + indent(passForwarded, 8)
            + "        location / { return 404; }\n"
            "    }\n"
            "}\n"
        )

    def command(self) -> list[str]:
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.config())
        return [
            self.executable,
            "-p", f"{self.workdir}/",
            "-c", str(conf),
            "-e", f"{self.workdir}/error.log",
        ]
