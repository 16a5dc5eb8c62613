"""Import by URL (§6.3 with decisions.md's fixes): name reserved at once, progress, failure recorded."""

from __future__ import annotations

import datetime
import errno
import http.server
import socket
import ssl
import threading
import time

import pytest

from openesd.checkpoints.downloads import DownloadError, download
from tests.checkpoints.conftest import sha256


def wait_for(esd, predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = esd.get("/prod/checkpoints", user="api", params={"per_page": 100}).json()["data"]["checkpoints"]
        found = [c for c in items if predicate(c)]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError("condition not reached; records: " + repr(items))


def import_(esd, url, checkpoint_type="Lora"):
    return esd.post(
        "/prod/checkpoints",
        user="api",
        json={"checkpoint_type": checkpoint_type, "params": {"creator": "api"}, "urls": [url]},
    )


def test_import_reaches_active_with_the_right_hash(make_client, file_server):
    esd = make_client(allow_private_url_imports=True)
    response = import_(esd, f"{file_server.url}/models/tiny.safetensors")
    assert response.status_code == 202
    assert response.json() == {"statusCode": 202, "message": "Checkpoint creation in progress, please check later"}
    again = import_(esd, f"{file_server.url}/models/tiny.safetensors")
    assert again.status_code == 400 and "already exists" in again.json()["message"]
    done = wait_for(esd, lambda c: c["status"] == "Active")
    data = file_server.payloads["tiny.safetensors"]
    assert done["name"] == ["tiny.safetensors"] and done["hash"] == sha256(data)
    assert done["params"]["progress"] == {"bytes_done": len(data), "bytes_total": len(data)}
    store = esd.http.app.state.store
    assert store.get_bytes(f"Lora/checkpoint/custom/{done['id']}/tiny.safetensors") == data


def test_private_addresses_are_refused_by_default(esd, file_server):
    response = import_(esd, f"{file_server.url}/models/tiny.safetensors")
    assert response.status_code == 400
    assert (
        "127.0.0.1" in response.json()["message"] and "OPENESD_ALLOW_PRIVATE_URL_IMPORTS" in response.json()["message"]
    )
    for url in ("http://169.254.169.254/latest/meta-data/x.safetensors", "file:///etc/passwd", "http://[::1]/a.pt"):
        assert import_(esd, url).status_code == 400
    assert esd.get("/prod/checkpoints", user="api").json()["data"]["total"] == 0


def test_a_dropped_connection_leaves_a_disabled_record_with_the_error(make_client, file_server):
    esd = make_client(allow_private_url_imports=True)
    assert import_(esd, f"{file_server.url}/drop/half.safetensors").status_code == 202
    failed = wait_for(esd, lambda c: c["status"] == "Disabled")
    assert failed["name"] == ["half.safetensors"]
    assert "half.safetensors" in failed["params"]["error"]
    assert failed["params"]["import"]["state"] == "failed"


def test_bad_urls_and_extensions(make_client, file_server):
    esd = make_client(allow_private_url_imports=True)
    missing = import_(esd, f"{file_server.url}/models/absent.safetensors")
    assert missing.status_code == 400 and "404" in missing.json()["message"]
    wrong_ext = import_(esd, "http://127.0.0.1:1/archive.zip")
    assert wrong_ext.status_code == 400


def test_a_pending_import_is_resumed_after_a_restart(make_client, file_server, tmp_path, database_url):
    from openesd.server.runtime import boot
    from openesd.metadata.models import Checkpoint
    from tests.api.conftest import make_settings

    settings = make_settings(tmp_path, allow_private_url_imports=True, database_url=database_url)
    runtime = boot(settings)
    with runtime.sessionmaker.begin() as session:  # as a process that died right after the 202 leaves it
        session.add(
            Checkpoint(
                id="00000000-0000-0000-0000-000000000001",
                checkpoint_type="Lora",
                status="Initial",
                names=["tiny.safetensors"],
                created=time.time(),
                allowed_roles_or_users=["IT Operator"],
                params={"import": {"url": f"{file_server.url}/m/tiny.safetensors", "state": "running"}},
                hashes={},
                version="v1.0",
            )
        )
    runtime.close()
    esd = make_client(allow_private_url_imports=True)
    done = wait_for(esd, lambda c: c["status"] == "Active")
    assert done["hash"] == sha256(file_server.payloads["tiny.safetensors"])


class _Wire(socket.socket):
    """A socketpair end standing in for a TCP connection to an internet host."""

    def setsockopt(self, *args):
        pass  # TCP_NODELAY means nothing on a socketpair


class Network:
    """The world a URL import sees: a DNS whose answers can change between lookups (rebinding), hosts
    on the internet that answer one canned response, and no other route out. 127.0.0.1 is reachable."""

    def __init__(self, monkeypatch):
        self.answers: dict[str, list[str]] = {}
        self.internet: dict[str, bytes] = {}
        self.internet_requests: list[bytes] = []
        self._getaddrinfo, self._connect = socket.getaddrinfo, socket.create_connection
        monkeypatch.setattr(socket, "getaddrinfo", self.getaddrinfo)
        monkeypatch.setattr(socket, "create_connection", self.create_connection)

    def getaddrinfo(self, host, port, *args, **kwargs):
        answers = self.answers.get(host)
        if answers is None:
            return self._getaddrinfo(host, port, *args, **kwargs)
        address = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port or 0))]

    def create_connection(self, address, *args, **kwargs):
        ip = self.getaddrinfo(*address)[0][4][0]
        if ip == "127.0.0.1":
            return self._connect((ip, address[1]), *args, **kwargs)
        if ip not in self.internet:
            raise OSError(errno.ENETUNREACH, f"no route to {ip} in this test")
        ours, theirs = socket.socketpair()
        threading.Thread(target=self._answer, args=(theirs, self.internet[ip]), daemon=True).start()
        return _Wire(fileno=ours.detach())

    def _answer(self, sock, response: bytes):
        with sock:
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                received += chunk
            self.internet_requests.append(received)
            sock.sendall(response)


@pytest.fixture
def network(monkeypatch) -> Network:
    return Network(monkeypatch)


def private_host_url(file_server, host="rebind.test"):
    return f"http://{host}:{file_server.url.rsplit(':', 1)[1]}/models/tiny.safetensors"


def test_a_rebinding_dns_never_lets_the_probe_reach_the_private_host(esd, file_server, network):
    network.answers["rebind.test"] = ["93.184.215.14", "127.0.0.1"]  # public for a check, then local
    response = import_(esd, private_host_url(file_server))
    assert response.status_code == 400
    assert file_server.requests == []
    assert esd.get("/prod/checkpoints", user="api").json()["data"]["total"] == 0


def test_a_rebinding_dns_never_lets_the_download_reach_the_private_host(file_server, network, tmp_path):
    network.answers["rebind.test"] = ["93.184.215.14", "127.0.0.1"]
    with pytest.raises(DownloadError):
        download(
            private_host_url(file_server),
            tmp_path,
            allow_private=False,
            max_bytes=10**6,
            timeout=5,
            progress=lambda done, total: None,
        )
    assert file_server.requests == []
    assert list(tmp_path.iterdir()) == []


def test_a_redirect_to_a_private_host_is_refused_before_any_request_to_it(esd, file_server, network):
    target = private_host_url(file_server, host="inside.test")
    network.answers["inside.test"] = ["93.184.215.15", "127.0.0.1"]
    network.answers["models.test"] = ["93.184.215.14"]
    network.internet["93.184.215.14"] = (
        f"HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
    )
    response = import_(esd, "http://models.test/tiny.safetensors")
    assert response.status_code == 400
    assert len(network.internet_requests) == 1 and file_server.requests == [], response.json()


@pytest.mark.parametrize(
    "host",
    [
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]",
        "[::ffff:127.0.0.1]",
        "[::ffff:0:7f00:1]",
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1
    ],
)
def test_ipv6_forms_carrying_a_private_ipv4_address_are_refused(esd, file_server, network, host):
    response = import_(esd, private_host_url(file_server, host=host))
    assert response.status_code == 400
    message = response.json()["message"]
    assert host.strip("[]") in message and "127.0.0.1" in message
    assert "OPENESD_ALLOW_PRIVATE_URL_IMPORTS" in message
    assert file_server.requests == []


@pytest.mark.parametrize(
    "address",
    [
        "0.0.0.0",
        "0.1.2.3",
        "100.64.0.1",
        "100.100.100.200",
        "127.0.0.2",
        "10.0.0.1",
        "169.254.169.254",
        "224.0.0.1",
        "240.0.0.1",
        "168.63.129.16",
        "[::1]",
        "[fe80::1]",
        "[fec0::1]",
        "[fd00:ec2::254]",
        "[ff02::1]",
        "[64:ff9b:1::a00:1]",
        "[64:ff9b::a00:1]",
    ],
)
def test_every_non_public_range_is_refused_naming_the_address(esd, network, address):
    response = import_(esd, f"http://{address}:9/a.safetensors")
    assert response.status_code == 400
    assert address.strip("[]") in response.json()["message"]
    assert "OPENESD_ALLOW_PRIVATE_URL_IMPORTS" in response.json()["message"]


def test_public_ipv6_forms_carrying_a_public_ipv4_pass_the_guard(esd, network):
    # NAT64 is how an IPv6-only host reaches IPv4 servers: judged by the IPv4 address it carries
    response = import_(esd, "http://[64:ff9b::5db8:d70e]/a.safetensors")
    assert response.status_code == 400 and "cannot reach" in response.json()["message"]


def https_file_server(tmp_path, cert_host: str, payload: bytes) -> http.server.ThreadingHTTPServer:
    """An https server on 127.0.0.1 with a self-signed certificate for `cert_host`, trusted via SSL_CERT_FILE."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cert_host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(cert_host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("cert_host, works", [("files.test", True), ("elsewhere.test", False)])
def test_https_connects_to_the_resolved_address_and_checks_the_host_name(
    tmp_path, network, monkeypatch, cert_host, works
):
    server = https_file_server(tmp_path, cert_host, b"weights" * 100)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
    network.answers["files.test"] = ["127.0.0.1"]
    url = f"https://files.test:{server.server_address[1]}/m/a.safetensors"

    def fetch():
        return download(
            url, tmp_path / "in", allow_private=True, max_bytes=10**6, timeout=5, progress=lambda done, total: None
        )

    try:
        if works:
            assert fetch().path.read_bytes() == b"weights" * 100
        else:
            with pytest.raises(DownloadError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
                fetch()
    finally:
        server.shutdown()
