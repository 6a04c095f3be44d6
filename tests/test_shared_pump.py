"""The server's one sendfile pump: workers hand it transfers over a Unix socket (shared_pump.py).

Each test runs the supervisor's side (PumpHost) and a worker's side (PumpClient) in one process,
joined by the real channel; the readers are real sockets on other threads."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from portside.serving import pump, shared_pump
from portside.serving.pump import SendfilePump
from portside.serving.shared_pump import PumpClient, PumpHost
from tests.sockets import random_files, read_all, send_files_at_once, sender_pair

MiB = 1024 * 1024


def _open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


class Fallbacks:
    """The worker's own pump, counted: the tests say when it must (not) be used."""

    def __init__(self, threads: ThreadPoolExecutor) -> None:
        self.threads = threads
        self.made: list[SendfilePump] = []

    def __call__(self) -> SendfilePump:
        self.made.append(SendfilePump(self.threads))
        return self.made[-1]


@pytest.fixture
def threads() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as pool:
        yield pool


def _wait_for(condition: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)


def test_transfers_from_a_worker_arrive_byte_for_byte_through_the_shared_pump(
        tmp_path: Path, threads: ThreadPoolExecutor) -> None:
    host = PumpHost(SendfilePump(threads))
    fallbacks = Fallbacks(threads)
    client = PumpClient(host.channel(), fallback=fallbacks)
    files = random_files(tmp_path, 4, 3 * MiB)
    before = _open_fds()
    received = send_files_at_once(client.send, files, skip=100)
    assert received == [path.read_bytes()[100:] for path in files]
    assert fallbacks.made == []  # every transfer went through the channel
    assert host.pump.active == 0
    assert _open_fds() <= before  # the worker closed its copies at the outcome; the pump closed its own


def test_failures_reach_the_worker_as_the_errors_a_local_pump_raises(
        tmp_path: Path, threads: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pump, "STALL_SECONDS", 1)
    host = PumpHost(SendfilePump(threads))
    client = PumpClient(host.channel(), fallback=Fallbacks(threads))
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(8 * MiB))
    gone, gone_peer = sender_pair()
    gone_peer.close()
    stalled, stalled_peer = sender_pair()

    async def scenario() -> None:
        with pytest.raises(ConnectionError):  # the client went away (EPIPE / ECONNRESET)
            await asyncio.wait_for(client.send(os.dup(gone.fileno()), os.open(path, os.O_RDONLY), 0, 8 * MiB), 10)
        with pytest.raises(TimeoutError, match="read nothing"):
            await asyncio.wait_for(
                client.send(os.dup(stalled.fileno()), os.open(path, os.O_RDONLY), 0, 8 * MiB), 10)

    with gone, stalled, stalled_peer:
        asyncio.run(scenario())
    assert host.pump.active == 0


def test_a_cancelled_request_makes_the_pump_drop_its_transfer(tmp_path: Path, threads: ThreadPoolExecutor) -> None:
    host = PumpHost(SendfilePump(threads))
    client = PumpClient(host.channel(), fallback=Fallbacks(threads))
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(8 * MiB))
    ours, theirs = sender_pair()  # nobody reads: without the drop it would wait STALL_SECONDS (120 s)

    async def scenario() -> None:
        transfer = client.send(os.dup(ours.fileno()), os.open(path, os.O_RDONLY), 0, 8 * MiB)
        await asyncio.sleep(0.2)
        assert host.pump.active == 1
        transfer.cancel()
        await asyncio.sleep(0)  # the DROP goes out from the future's callback

    with ours, theirs:
        asyncio.run(scenario())
        _wait_for(lambda: host.pump.active == 0)
        assert host.pump.active == 0


def test_a_transfer_in_flight_finishes_when_its_worker_goes_away(tmp_path: Path, threads: ThreadPoolExecutor) -> None:
    host = PumpHost(SendfilePump(threads))
    channel = host.channel()
    client = PumpClient(channel, fallback=Fallbacks(threads))
    path = tmp_path / "blob"
    data = os.urandom(6 * MiB)
    path.write_bytes(data)
    ours, theirs = sender_pair()
    received = bytearray()

    async def hand_over() -> None:
        client.send(os.dup(ours.fileno()), os.open(path, os.O_RDONLY), 0, len(data))
        await asyncio.sleep(0.2)  # the pump has it, and the socket is full: nobody reads yet

    with ours, theirs:
        asyncio.run(hand_over())
        for handed in client._waiting.values():  # the worker dies, and its descriptors close:
            handed.close()  # its copies of the handed ones,
        channel.close()  # its channel,
        ours.close()  # and its connection
        reader = threading.Thread(daemon=True, target=read_all, args=(theirs, len(data) + 1, received))
        reader.start()
        reader.join(10)
    assert bytes(received) == data  # all of it, then end of stream: the pump closed the connection
    assert host.pump.active == 0


def test_a_worker_whose_pump_has_gone_fails_what_was_in_flight_and_sends_the_rest_itself(
        tmp_path: Path, threads: ThreadPoolExecutor) -> None:
    worker_end, pump_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fallbacks = Fallbacks(threads)
    client = PumpClient(worker_end, fallback=fallbacks)
    path = tmp_path / "blob"
    data = os.urandom(2 * MiB)
    path.write_bytes(data)
    lost, lost_peer = sender_pair()
    ours, theirs = sender_pair()
    received = bytearray()
    reader = threading.Thread(daemon=True, target=read_all, args=(theirs, len(data), received))
    reader.start()

    async def scenario() -> None:
        in_flight = client.send(os.dup(lost.fileno()), os.open(path, os.O_RDONLY), 0, len(data))
        await asyncio.sleep(0.05)
        pump_end.close()  # the supervisor is gone (nobody served the request)
        with pytest.raises(ConnectionError, match="went away"):
            await asyncio.wait_for(in_flight, 5)
        await asyncio.wait_for(client.send(os.dup(ours.fileno()), os.open(path, os.O_RDONLY), 0, len(data)), 10)

    with lost, lost_peer, ours, theirs:
        asyncio.run(scenario())
        reader.join(10)
    assert bytes(received) == data
    assert client.broken
    assert len(fallbacks.made) == 1


def test_a_malformed_request_is_ignored_and_the_channel_keeps_working(
        tmp_path: Path, threads: ThreadPoolExecutor) -> None:
    host = PumpHost(SendfilePump(threads))
    channel = host.channel()
    [path] = random_files(tmp_path, 1, MiB)
    channel.send(b"not a request")
    stray = os.open(path, os.O_RDONLY)
    socket.send_fds(channel, [b"\x01" + bytes(24)], [stray])  # a SEND with one descriptor, not two
    os.close(stray)
    fallbacks = Fallbacks(threads)
    client = PumpClient(channel, fallback=fallbacks)
    assert send_files_at_once(client.send, [path], skip=0) == [path.read_bytes()]
    assert fallbacks.made == [] and not client.broken


def test_replies_a_busy_worker_has_not_read_yet_wait_and_none_is_lost(
        tmp_path: Path, threads: ThreadPoolExecutor) -> None:
    host = PumpHost(SendfilePump(threads))
    channel = host.channel()  # driven by hand: the worker reads no reply until all are sent
    path = tmp_path / "tiny"
    path.write_bytes(b"x")
    sink, sink_peer = socket.socketpair()
    count = 3000  # far more replies than the channel's buffer holds
    with sink, sink_peer:
        reader = threading.Thread(daemon=True, target=read_all, args=(sink_peer, count, bytearray()))
        reader.start()
        for ident in range(1, count + 1):
            out_fd, in_fd = os.dup(sink.fileno()), os.open(path, os.O_RDONLY)
            socket.send_fds(channel, [shared_pump._REQUEST.pack(shared_pump._SEND, ident, 0, 1)], [out_fd, in_fd])
            os.close(out_fd)
            os.close(in_fd)
        _wait_for(lambda: host.pump.active == 0)
        seen: list[int] = []
        channel.settimeout(10)
        while len(seen) < count:
            reply = channel.recv(512)
            ident, outcome = shared_pump._REPLY.unpack_from(reply)
            assert outcome == shared_pump._DONE, reply
            seen.append(ident)
        reader.join(10)
    assert sorted(seen) == list(range(1, count + 1))
    channel.close()


def test_a_transfer_the_pump_cannot_take_is_sent_by_the_worker_itself(
        tmp_path: Path, threads: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    host = PumpHost(SendfilePump(threads))

    def out_of_descriptors(*args: object) -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(host.pump, "start", out_of_descriptors)
    fallbacks = Fallbacks(threads)
    client = PumpClient(host.channel(), fallback=fallbacks)
    files = random_files(tmp_path, 1, 3 * MiB)
    # All of it arrives: the worker kept its descriptors until the pump said no.
    assert send_files_at_once(client.send, files, skip=10) == [files[0].read_bytes()[10:]]
    assert client.refused == 1 and len(fallbacks.made) == 1
    assert not client.broken  # the channel stays in use
