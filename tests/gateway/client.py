"""A Dawn/Shepherd stand-in written from docs/gateway.md (not from any PiE code).

``PieClient.connect(host, port, identity)`` opens a TCP connection and sends the identity byte;
``send(type, message)`` frames a protobuf message; ``receive(timeout)`` reads the next framed
message the robot sends, parsed by its type; ``raw`` writes bytes as they are (garbage tests).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from runtime.service.gateway.proto import pie_client_pb2 as pb

HEADER = struct.Struct("<BH")
SHEPHERD, DAWN = 0, 1
RUN_MODE, START_POS, LOG, DEVICE_DATA, GAME_STATE, INPUTS, TIME_STAMPS = range(7)
ROBOT_MESSAGES: dict[int, Any] = {LOG: pb.Text, DEVICE_DATA: pb.DevData,
                                  TIME_STAMPS: pb.TimeStamps}


class PieClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int, identity: int | None) -> PieClient:
        reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer)
        if identity is not None:
            await client.raw(bytes([identity]))
        return client

    async def raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, kind: int, message: Any) -> None:
        body = message.SerializeToString()
        await self.raw(HEADER.pack(kind, len(body)) + body)

    async def receive(self, timeout: float = 5.0) -> tuple[int, Any]:
        async with asyncio.timeout(timeout):
            kind, length = HEADER.unpack(await self.reader.readexactly(HEADER.size))
            body = await self.reader.readexactly(length)
        message = ROBOT_MESSAGES[kind]()
        message.ParseFromString(body)
        return kind, message

    async def receive_until(self, kind: int, predicate: Any = None,
                            timeout: float = 5.0) -> Any:
        """The first message of ``kind`` (for which ``predicate`` holds), skipping others."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got, message = await self.receive(max(0.0, deadline - loop.time()))
            if got == kind and (predicate is None or predicate(message)):
                return message

    async def closed_by_robot(self, timeout: float = 5.0) -> bool:
        """True once the robot closes the connection (reading everything until then)."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
