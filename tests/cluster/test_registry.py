"""The Redis registry between two nodes of one process (a Redis server of the test's own):
each sees the other's live calls, a command for a call runs on its owner and comes back with
the owner's answer or refusal, a dead owner is reported at once, and the survivor closes the
dead node's call records as ``interrupted``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.cluster.commands import Command, Op
from bridge.cluster.registry import Registry, remote_view
from bridge.config import ClusterSettings
from bridge.errors import OwnerUnavailable, RemoteCallError
from bridge.records import INTERRUPTED, CallStore
from tests.cluster.support import until
from tests.support.infra import redis_server
from tests.support.servers import free_port

pytestmark = pytest.mark.peer("redis-server")


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def fake_call(call_id: str) -> dict[str, Any]:
    """A live call's summary, as the control plane hands it to the registry."""
    return {
        "id": call_id,
        "state": "answered",
        "leg": "sip",
        "direction": "inbound",
        "from": "sip:alice@127.0.0.1",
        "to": "sip:bot@127.0.0.1",
        "profile": "default",
        "codec": "PCMU",
        "offered_at": 100.0,
        "answered_at": 101.0,
        "on_hold": False,
    }


def offer(store: CallStore, call_id: str) -> None:
    store.call_offered(call_id, direction="inbound", leg="sip", profile="default")


class Node:
    def __init__(self, name: str, store: CallStore) -> None:
        self.name = name
        self.store = store
        self.calls: dict[str, Any] = {}
        self.commands: list[Command] = []

    async def handle(self, cmd: Command) -> dict[str, Any]:
        self.commands.append(cmd)
        if cmd.call_id not in self.calls:
            raise RemoteCallError(409, f"Call {cmd.call_id!r} has ended.", "call_ended")
        return {"id": cmd.call_id, "status": "ending", "node": self.name}


@contextlib.asynccontextmanager
async def joined(url: str, node: Node) -> AsyncIterator[Registry]:
    settings = ClusterSettings(redis_url=url, heartbeat_s=0.1, ttl_s=0.5, command_timeout_s=5)
    async with Registry(
        settings,
        node=node.name,
        url=f"http://{node.name}.example:8090",
        calls=lambda: node.calls,
        store=node.store,
        handler=node.handle,
    ) as reg:
        yield reg


async def die(reg: Registry) -> None:
    """What ``kill -9`` leaves: no more heartbeats, no subscriber, keys left to expire."""
    for task in list(reg._tasks):
        task.cancel()
    await asyncio.gather(*reg._tasks, return_exceptions=True)
    await reg._pubsub.aclose()
    await reg._redis.aclose()


async def test_any_node_lists_and_acts_on_the_other_nodes_calls(
    redis_url: str, tmp_path: Path
) -> None:
    db = tmp_path / "calls.db"
    a, b = Node("na", CallStore(db)), Node("nb", CallStore(db))
    b.calls["call_b1"] = fake_call("call_b1")
    async with joined(redis_url, a) as ra, joined(redis_url, b) as rb:
        assert await ra.owner_of("call_b1") == "nb"
        assert await ra.node_url("nb") == "http://nb.example:8090"  # where its sideband is
        assert await rb.owner_of("call_b1") is None  # its own call: acted on locally
        # which node wrote the records of B's process (where its recordings are)
        assert await ra.node_of_owner(b.store.owner) == "nb"
        assert await rb.node_of_owner(b.store.owner) is None  # its own
        assert await ra.node_of_owner("host:1:dead") is None
        listed = await ra.remote_calls()
        assert [(c["id"], c["node"]) for c in listed] == [("call_b1", "nb")]
        view = remote_view(listed[0], now=111.0)
        assert (view["state"], view["node"], view["duration_s"]) == ("active", "nb", 10.0)

        result = await ra.command("nb", Op.HANGUP, "call_b1", {"source": "test"})
        assert result == {"id": "call_b1", "status": "ending", "node": "nb"}
        assert [(c.op, c.call_id, c.reply_to) for c in b.commands] == [(Op.HANGUP, "call_b1", "na")]

        # the owner's refusal comes back as it would have answered it
        with pytest.raises(RemoteCallError) as refused:
            await ra.command("nb", Op.DTMF, "call_gone", {"digits": "1"})
        assert (refused.value.status, refused.value.code) == (409, "call_ended")

        # the call ends on B: the list and the owner follow at the next beat
        del b.calls["call_b1"]
        rb.changed()
        await until(lambda: not rb._published, "B published its call ended")
        assert await ra.remote_calls() == []
        assert await ra.owner_of("call_b1") is None


async def test_a_dead_owner_is_reported_at_once_and_its_records_closed(
    redis_url: str, tmp_path: Path
) -> None:
    db = tmp_path / "calls.db"
    a, b = Node("da", CallStore(db)), Node("db", CallStore(db))
    offer(b.store, "call_lost")
    b.store.update_call("call_lost", state="answered", answered_at=1.0)
    b.store.flush()
    b.calls["call_lost"] = fake_call("call_lost")
    async with joined(redis_url, a) as ra:
        rb = await Registry(
            ClusterSettings(redis_url=redis_url, heartbeat_s=0.1, ttl_s=0.5),
            node="db",
            calls=lambda: b.calls,
            store=b.store,
            handler=b.handle,
        ).__aenter__()
        assert await ra.owner_of("call_lost") == "db"
        await die(rb)

        # before the keys expire: the owner is known, and known to be gone
        with pytest.raises(OwnerUnavailable) as gone:
            await ra.command("db", Op.HANGUP, "call_lost", {})
        assert (gone.value.status, gone.value.code) == (503, "owner_unavailable")
        assert b.commands == []

        # after: the survivor reaped the node and closed its records
        await until(lambda: ra.reaped, "A reaped the dead node")
        assert list(ra.reaped) == [("db", 1)]
        assert await ra.node_url("db") is None
        record = a.store.get_call("call_lost")
        assert record is not None
        assert (record.state, record.end_reason) == ("ended", INTERRUPTED)
        assert await ra.remote_calls() == []
        assert await ra.owner_of("call_lost") is None


async def test_a_restarted_node_closes_its_predecessors_records(
    redis_url: str, tmp_path: Path
) -> None:
    db = tmp_path / "calls.db"
    first = Node("rw", CallStore(db))
    offer(first.store, "call_old")
    first.store.flush()
    settings = ClusterSettings(redis_url=redis_url, heartbeat_s=0.1, ttl_s=0.5)
    reg = await Registry(
        settings, node="rw", calls=dict, store=first.store, handler=first.handle
    ).__aenter__()
    await die(reg)
    # the same worker slot, started again at once (before its keys expire)
    second = Node("rw", CallStore(db))
    async with joined(redis_url, second) as again:
        assert list(again.reaped) == [("rw", 1)]
        record = second.store.get_call("call_old")
        assert record is not None and record.end_reason == INTERRUPTED
        # the calls the first process recorded are still known to be on node rw, now
        # reachable at the restarted process's address
        other = Node("rx", CallStore(db))
        async with joined(redis_url, other) as rx:
            assert await rx.node_of_owner(first.store.owner) == "rw"
            assert await rx.node_url("rw") == "http://rw.example:8090"


async def test_an_owner_dying_while_asked_is_reported_gone_not_timed_out(
    redis_url: str, tmp_path: Path
) -> None:
    """Redis may still count a subscriber whose process has just died: the asker notices the
    channel emptied and answers "gone" long before its command timeout."""
    import redis.asyncio as aioredis

    a = Node("ga", CallStore(tmp_path / "calls.db"))
    ghost = aioredis.Redis.from_url(redis_url)
    listener = ghost.pubsub()
    await listener.subscribe("rtbridge:cmd:ghost")  # hears commands, never answers
    settings = ClusterSettings(redis_url=redis_url, heartbeat_s=0.1, command_timeout_s=60)
    async with Registry(settings, node="ga", calls=dict, store=a.store, handler=a.handle) as ra:
        asking = asyncio.create_task(ra.command("ghost", Op.HANGUP, "call_g", {}))
        await until(lambda: ra._waiting, "the command was sent")
        await listener.aclose()
        await ghost.aclose()
        with pytest.raises(OwnerUnavailable) as gone:
            await asking
        assert gone.value.code == "owner_unavailable"


async def test_the_registry_comes_back_after_redis_restarts(tmp_path: Path) -> None:
    port = free_port()
    first = redis_server(port)
    url = first.__enter__()
    db = tmp_path / "calls.db"
    a, b = Node("ra", CallStore(db)), Node("rb", CallStore(db))
    b.calls["call_r"] = fake_call("call_r")
    try:
        async with joined(url, a) as ra, joined(url, b):
            assert await ra.owner_of("call_r") == "rb"
            first.__exit__(None, None, None)  # Redis goes away: everything it held is lost
            with pytest.raises(OwnerUnavailable) as away:
                await ra.owner_of("call_r")
            assert away.value.code == "registry_unavailable"
            assert await ra.remote_calls() == []  # this node's calls only
            first = redis_server(port)
            first.__enter__()
            # the heartbeats write everything again, the command channels come back
            await until(_owner_is(ra, "call_r", "rb"), "B's call registered again")

            async def answered() -> bool:
                with contextlib.suppress(OwnerUnavailable):
                    await ra.command("rb", Op.HANGUP, "call_r", {})
                    return True
                return False

            await until(answered, "B answers commands again")
    finally:
        first.__exit__(None, None, None)


def _owner_is(reg: Registry, call_id: str, node: str) -> Any:
    async def check() -> bool:
        with contextlib.suppress(OwnerUnavailable):
            return await reg.owner_of(call_id) == node
        return False

    return check


async def test_owners_whose_records_are_all_pruned_are_forgotten(
    redis_url: str, tmp_path: Path
) -> None:
    """Every process start adds an owner to ``rtbridge:owners``; one with no call record left
    (retention pruned them) is of no use to find a recording, and goes."""
    db = tmp_path / "calls.db"
    recorded, idle = CallStore(db), CallStore(db)
    offer(recorded, "call_kept")
    recorded.flush()
    node = Node("op", CallStore(db))
    async with joined(redis_url, node) as reg:
        key = "rtbridge:owners"
        await reg._redis.hset(key, mapping={recorded.owner: "old1", idle.owner: "old2"})
        gone = await reg.prune_owners()  # (with the other tests' owners: not in this db)
        assert idle.owner in gone and recorded.owner not in gone
        owners = {o.decode() for o in await reg._redis.hkeys(key)}
        assert {recorded.owner, node.store.owner} <= owners and idle.owner not in owners
        # the heartbeat does it by itself, on its period
        await reg._redis.hset(key, idle.owner, "old2")
        reg.owners_prune_s = 0.0
        for _ in range(100):
            if not await reg._redis.hexists(key, idle.owner):
                break
            await asyncio.sleep(0.05)
        assert not await reg._redis.hexists(key, idle.owner)
        assert await reg._redis.hexists(key, node.store.owner)


async def test_a_node_leaves_even_when_a_heartbeat_step_swallows_its_cancellation(
    redis_url: str, tmp_path: Path
) -> None:
    """A client library may turn a cancellation into its own timeout error (a read whose
    timeout fired as it was cancelled): the heartbeat goes on. Leaving must not wait for it
    for ever: the node leaves, and says which task it left behind."""
    node = Node("stubborn", CallStore(tmp_path / "calls.db"))
    entered = asyncio.Event()

    async def beat_swallowing_the_cancel() -> None:
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):  # what such a library does
            await asyncio.sleep(3600)

    async with joined(redis_url, Node("watcher", CallStore(tmp_path / "w.db"))) as watcher:
        reg = await _entered(redis_url, node)
        assert await watcher.node_url("stubborn") == "http://stubborn.example:8090"
        reg._beat = beat_swallowing_the_cancel  # type: ignore[method-assign]
        reg.changed()
        await asyncio.wait_for(entered.wait(), 5)
        # the heartbeat stops on the flag (before it, leaving waited for it for ever)
        leaving = asyncio.create_task(reg.__aexit__(None, None, None))
        done, _ = await asyncio.wait({leaving}, timeout=30)
        assert leaving in done, "the node never left"
        assert await watcher.node_url("stubborn") is None  # it left the registry


async def test_a_task_that_never_stops_is_left_behind_and_named_and_the_node_leaves(
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A task of the node's that ignores its cancellation for good (not one of the loops the
    stop flag ends): leaving waits a bounded time, names it, and leaves anyway."""
    import bridge.cluster.registry as registry_module

    monkeypatch.setattr(registry_module, "CLOSE_WAIT_S", 0.2)
    release = asyncio.Event()

    async def deaf() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    node = Node("deaf", CallStore(tmp_path / "calls.db"))
    async with joined(redis_url, Node("watcher", CallStore(tmp_path / "w.db"))) as watcher:
        reg = await _entered(redis_url, node)
        reg._spawn(deaf(), "deaf command")
        with caplog.at_level("WARNING", logger="bridge.cluster.registry"):
            leaving = asyncio.create_task(reg.__aexit__(None, None, None))
            done, _ = await asyncio.wait({leaving}, timeout=30)
        assert leaving in done, "the node never left"
        assert "deaf command did not stop when cancelled" in caplog.text, caplog.text
        assert await watcher.node_url("deaf") is None  # it left the registry all the same
        release.set()


async def _entered(redis_url: str, node: Node) -> Registry:
    """A registry for ``node`` (URL ``http://<name>.example:8090``), joined, not yet left: the
    test leaves it itself."""
    return await Registry(
        ClusterSettings(redis_url=redis_url, heartbeat_s=0.1, ttl_s=5),
        node=node.name,
        url=f"http://{node.name}.example:8090",
        calls=lambda: {},
        store=node.store,
        handler=node.handle,
    ).__aenter__()
