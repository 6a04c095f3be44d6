"""A small OCI Distribution client on httpx, and a raw-socket GET that reads into a reused buffer."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
# What a container engine sends when it pulls a manifest.
MANIFEST_ACCEPT = ", ".join([
    OCI_MANIFEST,
    OCI_INDEX,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
EMPTY_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class HTTPFailure(Exception):
    """A request that did not get the status the API promises."""

    def __init__(self, what: str, response: httpx.Response | None = None, detail: str = "") -> None:
        self.status = response.status_code if response is not None else None
        if response is not None and not detail:
            try:
                body = response.text[:300]
            except httpx.ResponseNotRead:
                body = ""
            detail = f"HTTP {response.status_code} {body}".strip()
        super().__init__(f"{what}: {detail}")


@dataclass(frozen=True)
class Blob:
    data: bytes
    digest: str

    @classmethod
    def of(cls, data: bytes) -> Blob:
        return cls(data, "sha256:" + hashlib.sha256(data).hexdigest())

    @property
    def size(self) -> int:
        return len(self.data)


def image_manifest(config: tuple[str, int], layers: Sequence[tuple[str, int]]) -> bytes:
    """An OCI image manifest for (digest, size) descriptors."""
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config[0], "size": config[1]},
        "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s} for d, s in layers],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _body(data: bytes | memoryview, piece: int = 1024 * 1024) -> tuple[Iterator[bytes], dict[str, str]]:
    """A request body in 1 MiB pieces with its Content-Length.

    httpcore sends a bytes body with `buffer = buffer[n:]` after each partial send, which copies the
    rest of the buffer every time: quadratic, and the bottleneck for a 100 MiB body. Pieces keep each
    copy small.
    """
    view = memoryview(data)
    pieces = (bytes(view[i:i + piece]) for i in range(0, len(view), piece))
    return pieces, {"Content-Type": "application/octet-stream", "Content-Length": str(len(view))}


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


class Registry:
    """The push and list side of the OCI Distribution API, one keep-alive connection per instance."""

    def __init__(self, base_url: str, timeout: float = 600.0) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=timeout, headers={"User-Agent": "portside-bench"})

    def close(self) -> None:
        self.http.close()

    def _location(self, response: httpx.Response) -> str:
        location = response.headers.get("location")
        if not location:
            raise HTTPFailure(f"{response.request.method} {response.request.url.path}", response,
                              "no Location header")
        return urljoin(self.base_url + "/", str(location))

    @staticmethod
    def _expect(response: httpx.Response, *statuses: int) -> httpx.Response:
        if response.status_code not in statuses:
            raise HTTPFailure(f"{response.request.method} {response.request.url.path}", response)
        return response

    def start_upload(self, repo: str) -> str:
        r = self._expect(self.http.post(f"/v2/{repo}/blobs/uploads/"), 202)
        return self._location(r)

    def single_post(self, repo: str, blob: Blob) -> bool:
        """Monolithic upload in one POST ?digest=. False if the server only opened a session (202)."""
        content, headers = _body(blob.data)
        r = self._expect(self.http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": blob.digest},
                                        content=content, headers=headers), 201, 202)
        return r.status_code == 201

    def post_put(self, repo: str, blob: Blob) -> None:
        """Monolithic upload as POST (open a session) then PUT ?digest= with the whole body."""
        location = self.start_upload(repo)
        content, headers = _body(blob.data)
        self._expect(self.http.put(_with_digest(location, blob.digest), content=content, headers=headers), 201)

    def chunked(self, repo: str, blob: Blob, chunk_size: int) -> None:
        """POST, then PATCH chunks with Content-Range, then PUT ?digest= with no body."""
        location = self.start_upload(repo)
        view = memoryview(blob.data)
        for offset in range(0, blob.size, chunk_size):
            part = view[offset:offset + chunk_size]
            content, headers = _body(part)
            headers["Content-Range"] = f"{offset}-{offset + len(part) - 1}"
            r = self._expect(self.http.patch(location, content=content, headers=headers), 202)
            location = self._location(r)
        self._expect(self.http.put(_with_digest(location, blob.digest)), 201)

    def streamed(self, repo: str, size: int, chunks: Iterable[bytes], digest: str) -> None:
        """POST, one PATCH whose body comes from a generator, PUT ?digest=: how engines push big layers."""
        location = self.start_upload(repo)
        r = self._expect(self.http.patch(location, content=chunks, headers={
            "Content-Type": "application/octet-stream", "Content-Length": str(size),
        }), 202)
        self._expect(self.http.put(_with_digest(self._location(r), digest)), 201)

    def mount(self, repo: str, digest: str, source: str) -> None:
        self._expect(self.http.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": source}), 201)

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str = OCI_MANIFEST) -> str:
        r = self._expect(self.http.put(f"/v2/{repo}/manifests/{reference}", content=body,
                                       headers={"Content-Type": media_type}), 201)
        return str(r.headers.get("docker-content-digest", ""))

    def get(self, path: str, **headers: str) -> httpx.Response:
        return self.http.get(path, headers=headers)

    def push_image(self, repo: str, config: Blob, layers: Sequence[Blob], tag: str) -> None:
        """Upload config and layers (POST + PUT) and tag a manifest for them."""
        for blob in (config, *layers):
            self.post_put(repo, blob)
        self.put_manifest(repo, tag, image_manifest((config.digest, config.size),
                                                    [(b.digest, b.size) for b in layers]))


@dataclass(frozen=True)
class Fetched:
    status: int
    size: int
    seconds: float


def get_discard(port: int, path: str, buffer: bytearray, timeout: float = 300.0) -> Fetched:
    """GET over a fresh connection; read the body into `buffer` over and over and throw it away."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: portside-bench\r\n"
                     "Connection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            got = sock.recv(65536)
            if not got:
                raise ConnectionError(f"GET {path}: connection closed before the response headers")
            head += got
        header_block, _, body_start = head.partition(b"\r\n\r\n")
        lines = header_block.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if "content-length" not in headers:
            raise ConnectionError(f"GET {path}: HTTP {status} without Content-Length ({headers})")
        length = int(headers["content-length"])
        received = len(body_start)
        view = memoryview(buffer)
        while received < length:
            n = sock.recv_into(view, min(len(buffer), length - received))
            if n == 0:
                break
            received += n
    return Fetched(status, received, time.perf_counter() - started)
