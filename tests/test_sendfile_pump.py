"""The sendfile pump: many transfers from one thread, cold files handed to threads, vanished and
stalled readers, cancelled requests."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from portside.serving import pump
from portside.serving.pump import SendfilePump
from tests.sockets import random_files, read_all, send_files_at_once, sender_pair

MiB = 1024 * 1024


def test_one_thread_sends_many_files_at_once_byte_for_byte(tmp_path: Path) -> None:
    files = random_files(tmp_path, 6, 3 * MiB)
    with ThreadPoolExecutor(4) as threads:
        sender = SendfilePump(threads)
        received = send_files_at_once(sender.send, files, skip=1000)
        assert sender.active == 0
        assert sender.handed_to_threads == 0  # every file was in the page cache
    assert received == [path.read_bytes()[1000:] for path in files]


def test_a_file_not_in_the_page_cache_goes_to_a_thread_and_arrives_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated (see test_sendfile.py): the pump finds the next pages cold at its first turn.
    monkeypatch.setattr(pump, "cached", lambda fd, start, end: False)
    files = random_files(tmp_path, 1, 5 * MiB)
    with ThreadPoolExecutor(2) as threads:
        sender = SendfilePump(threads)
        received = send_files_at_once(sender.send, files, skip=0)
        assert sender.handed_to_threads == 1
        assert sender.active == 0
    assert received == [files[0].read_bytes()]


def test_a_reader_that_goes_away_fails_the_transfer_and_frees_its_descriptors(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(8 * MiB))
    ours, theirs = sender_pair()
    theirs.close()
    out_fd, in_fd = os.dup(ours.fileno()), os.open(path, os.O_RDONLY)
    with ThreadPoolExecutor(2) as threads, ours:
        sender = SendfilePump(threads)

        async def send() -> None:
            await sender.send(out_fd, in_fd, 0, 8 * MiB)

        with pytest.raises(OSError):
            asyncio.run(send())
        assert sender.active == 0
    with pytest.raises(OSError):
        os.fstat(in_fd)  # closed by the pump


def test_a_stalled_reader_times_out_and_a_cancelled_request_is_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pump, "STALL_SECONDS", 1)
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(8 * MiB))
    stalled, stalled_peer = sender_pair()
    dropped, dropped_peer = sender_pair()
    with ThreadPoolExecutor(2) as threads, stalled, stalled_peer, dropped, dropped_peer:
        sender = SendfilePump(threads)

        async def scenario() -> None:
            times_out = sender.send(os.dup(stalled.fileno()), os.open(path, os.O_RDONLY), 0, 8 * MiB)
            cancelled = sender.send(os.dup(dropped.fileno()), os.open(path, os.O_RDONLY), 0, 8 * MiB)
            await asyncio.sleep(0.2)
            assert sender.active == 2  # both sockets full, nobody reading
            cancelled.cancel()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(times_out, 10)
            deadline = time.monotonic() + 5
            while sender.active and time.monotonic() < deadline:
                await asyncio.sleep(0.05)

        asyncio.run(scenario())
        assert sender.active == 0


def test_an_unexpected_error_fails_one_transfer_and_the_pump_keeps_serving(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "blob"
    data = os.urandom(3 * MiB)
    path.write_bytes(data)
    real_cached = pump.cached

    def broken(fd: int, start: int, end: int) -> bool:
        raise RuntimeError("a bug in one turn")

    first, first_peer = sender_pair()
    second, second_peer = sender_pair()
    received = bytearray()
    with ThreadPoolExecutor(2) as threads, first, first_peer, second, second_peer:
        sender = SendfilePump(threads)

        async def scenario() -> None:
            monkeypatch.setattr(pump, "cached", broken)
            with pytest.raises(RuntimeError):  # not a timeout: the failed turn settles its transfer
                await asyncio.wait_for(
                    sender.send(os.dup(first.fileno()), os.open(path, os.O_RDONLY), 0, len(data)), 10)
            monkeypatch.setattr(pump, "cached", real_cached)
            reader = threading.Thread(target=read_all, args=(second_peer, len(data), received))
            reader.start()
            await asyncio.wait_for(
                sender.send(os.dup(second.fileno()), os.open(path, os.O_RDONLY), 0, len(data)), 10)
            reader.join(10)

        asyncio.run(scenario())
        assert sender.active == 0
    assert bytes(received) == data


def test_a_transfer_is_closed_once_however_often_it_is_ended(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(MiB))
    ours, theirs = sender_pair()
    with ThreadPoolExecutor(1) as threads, ours, theirs:
        sender = SendfilePump(threads)

        async def scenario() -> None:
            in_fd = os.open(path, os.O_RDONLY)
            done = sender.send(os.dup(ours.fileno()), in_fd, 0, MiB)  # nobody reads: it stays open
            await asyncio.sleep(0.1)
            transfer = next(iter(sender._transfers.values()))
            sender._end(transfer, None)
            reused = os.open(path, os.O_RDONLY)  # the lowest free number: likely in_fd's old one
            sender._end(transfer, None)
            os.fstat(reused)  # still open: the second end closed nothing
            os.close(reused)
            await done

        asyncio.run(scenario())
