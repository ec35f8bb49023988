"""Commands packed by hiredis: the same bytes on the wire as redis-py's own packer, any URL."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError

from common.redis_wire import pack_with_hiredis

ARGS = ("EVALSHA", "sha", 2, "key", b"raw\x00bytes", "Café 東京", 1.5, -7)


def _connection(redis: Redis) -> Connection:
    pool = redis.connection_pool
    return pool.connection_class(**pool.connection_kwargs)  # type: ignore[no-any-return]


def test_packed_bytes_equal_redis_py_s_own() -> None:
    """Strings, bytes, numbers and multi-word commands are packed as redis-py packs them."""
    plain = Connection()
    packed = _connection(pack_with_hiredis(Redis()))
    for args in (ARGS, ("CONFIG GET", "maxmemory"), (b"CLIENT LIST",)):
        assert b"".join(packed.pack_command(*args)) == b"".join(plain.pack_command(*args))


def test_a_unix_socket_url_keeps_its_connection_class() -> None:
    """A unix:// URL still connects over its socket."""
    redis = pack_with_hiredis(pack_with_hiredis(Redis.from_url("unix:///tmp/redis.sock")))
    assert issubclass(redis.connection_pool.connection_class, UnixDomainSocketConnection)
    assert redis.connection_pool.connection_class.__mro__[2] is UnixDomainSocketConnection


def test_an_argument_neither_packer_takes_is_a_data_error() -> None:
    """None as an argument is refused as redis-py refuses it, naming the type."""
    with pytest.raises(DataError, match="NoneType"):
        _connection(pack_with_hiredis(Redis())).pack_command("SET", "k", None)


async def test_commands_round_trip_through_a_real_server(redis: Redis, redis_url: str) -> None:
    """A value written and read through a packed client comes back byte for byte."""
    packed = pack_with_hiredis(Redis.from_url(redis_url))
    try:
        await packed.set("wire", "Café 東京 \x00")
        assert await redis.get("wire") == "Café 東京 \x00".encode()
    finally:
        await packed.aclose()


def test_a_client_set_to_another_encoding_keeps_redis_py_s_packer() -> None:
    """hiredis writes text as UTF-8 only: a latin-1 client packs 'é' as one byte, as redis-py does."""
    redis = pack_with_hiredis(Redis(encoding="latin-1"))
    assert b"".join(_connection(redis).pack_command("SET", "k", "é")).endswith(b"$1\r\n\xe9\r\n")
    assert pack_with_hiredis(Redis(encoding="utf8")).connection_pool.connection_class is not Connection
