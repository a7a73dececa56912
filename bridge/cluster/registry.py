"""The cluster registry in Redis: which node is alive, which node has which live call, and a
command channel per node, so any node's control plane lists and acts on any call.

Keys (all under ``rtbridge:``), each refreshed by the owning node's heartbeat every
``cluster.heartbeat_s`` and expiring after ``cluster.ttl_s`` without it:

* ``alive:<node>``: the node is up (its records owner, pid, HTTP address);
* ``calls:<node>``: a hash, call id -> the call's summary (who, how, since when);
* ``call:<call id>``: the node that has the call;
* ``nodes``: a hash, node -> its records owner, kept until the node is reaped.
* ``owners``: a hash, records owner -> node: which node recorded an ended call (its
  recording is in that node's data directory), even once that node has restarted under a new
  owner. Every process start adds an owner; once retention has pruned all of an owner's call
  records its entry goes too (each node checks every :data:`OWNERS_PRUNE_S`; a live node's own
  entry comes back at its next heartbeat).

A node that stops cleanly removes its keys. One that dies (``kill -9``, a lost machine) stops
refreshing them; the first survivor that sees ``alive:<node>`` gone claims the reaping
(``reap:<node>``, ``SET NX``) and closes the dead node's open call records as ``interrupted``
(:meth:`bridge.records.CallStore.close_owner`), so the records tell the truth within
``ttl_s`` + ``heartbeat_s`` without waiting for the node to come back.

Commands (:mod:`bridge.cluster.commands`) go to ``rtbridge:cmd:<node>``; Redis answers
``PUBLISH`` with the number of subscribers, and 0 means the owner is gone: the asking client
gets :class:`~bridge.errors.OwnerUnavailable` at once, not after a timeout. Without
``cluster.redis_url`` there is no registry and every node sees only its own calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
import redis.asyncio as aioredis

from bridge.cluster.commands import Command, Op, Reply, parse_message
from bridge.config import ClusterSettings
from bridge.errors import CommandMalformed, OwnerUnavailable, RemoteCallError
from bridge.records import CallStore
from bridge.tasks import cancel_and_wait

__all__ = ["Handler", "Registry", "remote_view"]

log = logging.getLogger(__name__)

PREFIX = "rtbridge:"
#: how many commands from other nodes may run at once on this node
MAX_INFLIGHT = 64
#: how often a node forgets the ``owners`` entries whose call records retention has pruned
OWNERS_PRUNE_S = 3600.0
#: how long leaving waits for the node's own tasks to stop once cancelled
CLOSE_WAIT_S = 5.0

#: runs a command on this node's calls: the result, or raises ``RemoteCallError``
Handler = Callable[[Command], Awaitable[dict[str, Any]]]


def remote_view(call: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The management API's view of a call another node has, from its registry summary."""
    since = call.get("answered_at") or call.get("offered_at") or now
    return {
        "id": call.get("id"),
        "object": "realtime.call",
        "state": "ringing"
        if call.get("ringing")
        else "on_hold"
        if call.get("on_hold")
        else "active",
        "leg": call.get("leg"),
        "direction": call.get("direction"),
        "from": call.get("from"),
        "to": call.get("to"),
        "profile": call.get("profile"),
        "trunk": call.get("trunk"),
        "codec": call.get("codec"),
        "session_format": call.get("session_format"),
        "offered_at": call.get("offered_at"),
        "answered_at": call.get("answered_at"),
        "ended_at": None,
        "duration_s": round(now - float(since), 3),
        "end_reason": None,
        "sip_status": None,
        "media": {},
        "node": call.get("node"),
    }


class Registry:
    """This node's membership of the cluster (an async context manager). ``calls`` gives the
    summaries of this node's live calls, by id (the dashboard's row of each)."""

    def __init__(
        self,
        settings: ClusterSettings,
        *,
        node: str,
        url: str = "",
        calls: Callable[[], Mapping[str, Mapping[str, Any]]],
        store: CallStore,
        handler: Handler,
    ) -> None:
        self.settings = settings
        self.node = node
        self.url = url  # where the other nodes reach this one's HTTP (sidebands)
        self._calls = calls
        self._store = store
        self._handler = handler
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=5
        )
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._waiting: dict[str, asyncio.Future[Reply]] = {}
        self._inflight = asyncio.Semaphore(MAX_INFLIGHT)
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._published: set[str] = set()  # call ids in calls:<node> after the last beat
        self._beating = asyncio.Lock()
        self._closing = False
        self.owners_prune_s = OWNERS_PRUNE_S
        self._owners_pruned_at: float | None = None
        #: the latest nodes reaped here: (node, records closed), for tests and logs
        self.reaped: deque[tuple[str, int]] = deque(maxlen=64)

    # -- life -------------------------------------------------------------------------------

    async def __aenter__(self) -> Registry:
        await self._pubsub.subscribe(self._channel(self.node))
        await self._inherit()
        await self._beat()
        self._spawn(self._listen(), "registry commands")
        self._spawn(self._heartbeat(), "registry heartbeat")
        log.info("cluster: node %s registered", self.node)
        return self

    async def __aexit__(self, *exc: object) -> None:
        # The loops also stop on the flag: a cancellation swallowed inside the Redis client
        # (a read whose timeout fired as it was cancelled) must not keep the node from leaving.
        self._closing = True
        self._changed.set()
        try:
            left = await cancel_and_wait(*self._tasks, timeout=CLOSE_WAIT_S, expected=(Exception,))
            if left:
                log.warning(
                    "cluster: %s did not stop when cancelled: left behind",
                    ", ".join(sorted(t.get_name() for t in left if isinstance(t, asyncio.Task))),
                )
        finally:  # even when cancelled: leave, and close the connections, each bounded
            for step in (self._leave, self._pubsub.aclose, self._redis.aclose):
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CLOSE_WAIT_S):
                        await step()

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def publish(self) -> None:
        """Publish this node's calls now (a ringing call before its webhook goes out)."""
        try:
            await self._beat()
        except (aioredis.RedisError, OSError) as exc:
            log.warning("cluster: registry unreachable (%s)", type(exc).__name__)

    def changed(self) -> None:
        """A call started or ended here: publish the list now, not at the next beat."""
        self._changed.set()

    # -- keys ---------------------------------------------------------------------------------

    @staticmethod
    def _channel(node: str) -> str:
        return f"{PREFIX}cmd:{node}"

    @property
    def _ttl_ms(self) -> int:
        return int(self.settings.ttl_s * 1000)

    async def _inherit(self) -> None:
        """A node that starts under the name of one that died (a restarted worker) closes its
        predecessor's records before taking the name over."""
        before = await self._redis.hget(f"{PREFIX}nodes", self.node)
        if before is None:
            return
        owner = orjson.loads(before).get("owner")
        if isinstance(owner, str) and owner != self._store.owner:
            n = await asyncio.to_thread(self._store.close_owner, owner)
            self.reaped.append((self.node, n))
            if n:
                log.warning("cluster: closed %d call(s) of this node's previous process", n)

    async def _beat(self) -> None:
        """Refresh this node's keys and its list of live calls."""
        async with self._beating:
            await self._beat_once()

    async def _beat_once(self) -> None:
        calls = self._calls()
        info = orjson.dumps({"owner": self._store.owner, "pid": os.getpid(), "url": self.url})
        mine = f"{PREFIX}calls:{self.node}"
        async with self._redis.pipeline(transaction=True) as p:
            p.set(f"{PREFIX}alive:{self.node}", info, px=self._ttl_ms)
            p.hset(f"{PREFIX}nodes", self.node, info)
            p.hset(f"{PREFIX}owners", self._store.owner, self.node)
            gone = self._published - calls.keys()
            if gone:
                p.hdel(mine, *gone)
                p.delete(*(f"{PREFIX}call:{cid}" for cid in gone))
            if calls:
                p.hset(
                    mine,
                    mapping={
                        cid: orjson.dumps({**c, "node": self.node}) for cid, c in calls.items()
                    },
                )
                p.pexpire(mine, self._ttl_ms)
                for cid in calls:
                    p.set(f"{PREFIX}call:{cid}", self.node, px=self._ttl_ms)
            if self._closing:  # a beat left behind by a stop must not register the node again
                return
            await p.execute()
        self._published = set(calls)

    async def _leave(self) -> None:
        async with self._redis.pipeline(transaction=True) as p:
            p.delete(f"{PREFIX}alive:{self.node}", f"{PREFIX}calls:{self.node}")
            p.hdel(f"{PREFIX}nodes", self.node)
            if self._published:
                p.delete(*(f"{PREFIX}call:{cid}" for cid in self._published))
            await p.execute()

    async def _heartbeat(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.heartbeat_s):
                    await self._changed.wait()
            if self._closing:
                return
            self._changed.clear()
            try:
                await self._beat()
                await self._reap()
                now = asyncio.get_running_loop().time()
                if self._owners_pruned_at is None:  # the first an hour after start
                    self._owners_pruned_at = now
                elif now - self._owners_pruned_at >= self.owners_prune_s:
                    self._owners_pruned_at = now
                    await self.prune_owners()
            except (aioredis.RedisError, OSError) as exc:
                log.warning("cluster: registry unreachable (%s): retrying", type(exc).__name__)
            except Exception:  # the records store (PostgreSQL restarting, SQLite locked): the
                # heartbeat must go on, or the other nodes reap a node that is running
                log.exception("cluster: heartbeat step failed: retrying")

    async def _reap(self) -> None:
        """Close the records of nodes whose heartbeat stopped (one survivor does it)."""
        nodes = await self._redis.hgetall(f"{PREFIX}nodes")
        for raw_name, raw_info in nodes.items():
            name = _text(raw_name)
            if name == self.node or await self._redis.exists(f"{PREFIX}alive:{name}"):
                continue
            claimed = await self._redis.set(f"{PREFIX}reap:{name}", self.node, nx=True, px=60_000)
            if not claimed:
                continue
            owner = orjson.loads(raw_info).get("owner")
            n = 0
            if isinstance(owner, str) and owner != self._store.owner:
                n = await asyncio.to_thread(self._store.close_owner, owner)
            # only forget the node if it did not come back meanwhile under the same name
            async with self._redis.pipeline(transaction=True) as p:
                p.hget(f"{PREFIX}nodes", name)
                p.delete(f"{PREFIX}calls:{name}", f"{PREFIX}reap:{name}")
                current, _ = await p.execute()
            if current == raw_info:
                await self._redis.hdel(f"{PREFIX}nodes", name)
            self.reaped.append((name, n))
            log.warning(
                "cluster: node %s stopped answering: %d live call(s) lost, records closed "
                "as interrupted",
                name,
                n,
            )

    async def prune_owners(self) -> list[str]:
        """Forget the owners none of whose call records are left; returns them."""
        owners = [_text(o) for o in await self._redis.hkeys(f"{PREFIX}owners")]
        others = [o for o in owners if o != self._store.owner]
        kept = await asyncio.to_thread(self._store.owners_with_records, others)
        gone = [o for o in others if o not in kept]
        if gone:
            await self._redis.hdel(f"{PREFIX}owners", *gone)
        return gone

    # -- looking calls up ---------------------------------------------------------------------

    async def owner_of(self, call_id: str) -> str | None:
        """The node that has ``call_id`` live, if another node has it; raises
        :class:`OwnerUnavailable` (``registry_unavailable``) when Redis does not answer."""
        try:
            node = await self._redis.get(f"{PREFIX}call:{call_id}")
        except (aioredis.RedisError, OSError) as exc:
            raise OwnerUnavailable(
                "The cluster registry does not answer: calls of other nodes cannot be reached.",
                code="registry_unavailable",
            ) from exc
        if node is None:
            return None
        name = _text(node)
        return None if name == self.node else name

    async def node_url(self, node: str) -> str | None:
        """The HTTP address of ``node`` while it is alive."""
        try:
            info = await self._redis.get(f"{PREFIX}alive:{node}")
        except (aioredis.RedisError, OSError):
            return None
        url = orjson.loads(info).get("url") if info is not None else None
        return url if isinstance(url, str) and url else None

    async def node_of_owner(self, owner: str) -> str | None:
        """The node whose process wrote records as ``owner``, if it is another node."""
        try:
            node = await self._redis.hget(f"{PREFIX}owners", owner)
        except (aioredis.RedisError, OSError):
            return None
        name = None if node is None else _text(node)
        return None if name == self.node else name

    async def remote_calls(self) -> list[dict[str, Any]]:
        """The live calls of the other nodes that are alive (each with its ``node``); none
        while Redis does not answer (logged)."""
        out: list[dict[str, Any]] = []
        try:
            for raw in await self._redis.hkeys(f"{PREFIX}nodes"):
                name = _text(raw)
                if name == self.node or not await self._redis.exists(f"{PREFIX}alive:{name}"):
                    continue
                for value in (await self._redis.hgetall(f"{PREFIX}calls:{name}")).values():
                    out.append(orjson.loads(value))
        except (aioredis.RedisError, OSError) as exc:
            log.warning(
                "cluster: registry unreachable (%s): listing this node only", type(exc).__name__
            )
            return []
        return out

    # -- commands -----------------------------------------------------------------------------

    async def command(
        self, owner: str, op: Op, call_id: str, args: dict[str, Any]
    ) -> dict[str, Any]:
        """Run ``op`` on the node ``owner``; raises :class:`OwnerUnavailable` when it is gone
        or silent, :class:`RemoteCallError` when it refused."""
        cmd = Command(op, call_id, self.node, args)
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[cmd.id] = fut
        try:
            try:
                receivers = await self._redis.publish(self._channel(owner), cmd.dumps())
            except (aioredis.RedisError, OSError) as exc:
                raise OwnerUnavailable(
                    "The cluster registry does not answer: the call's node cannot be reached.",
                    code="registry_unavailable",
                ) from exc
            if receivers == 0:
                raise self._gone(owner, call_id)
            reply = await self._reply(fut, owner, call_id)
        finally:
            self._waiting.pop(cmd.id, None)
        if reply.error is not None:
            e = reply.error
            raise RemoteCallError(
                int(e.get("status", 502)),
                str(e.get("message", "")),
                str(e.get("code", "remote_error")),
                e.get("param") if isinstance(e.get("param"), str) else None,
            )
        return reply.result or {}

    @staticmethod
    def _gone(owner: str, call_id: str) -> OwnerUnavailable:
        return OwnerUnavailable(
            f"Call {call_id!r} is on node {owner!r}, which is gone (stopped or died): its live "
            "calls are lost."
        )

    async def _reply(self, fut: asyncio.Future[Reply], owner: str, call_id: str) -> Reply:
        """The owner's reply. Redis may count a subscriber that has just died (its closed
        connection not yet noticed): while waiting, the owner's channel is checked every
        heartbeat, and a channel nobody listens to any more means gone, not a timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.command_timeout_s
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise OwnerUnavailable(
                    f"Node {owner!r}, which has call {call_id!r}, did not answer in time.",
                    code="owner_timeout",
                    status=504,
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, self.settings.heartbeat_s)):
                    return await asyncio.shield(fut)
            with contextlib.suppress(aioredis.RedisError, OSError):
                listeners = dict(await self._redis.pubsub_numsub(self._channel(owner)))
                if not any(listeners.values()):
                    raise self._gone(owner, call_id)

    async def _listen(self) -> None:
        """Serve this node's command channel; across a lost Redis connection too (the client
        subscribes again when it reconnects)."""
        while not self._closing:
            try:
                async for msg in self._pubsub.listen():
                    if self._closing:
                        return
                    if msg.get("type") == "message":
                        await self._receive(msg["data"])
            except (aioredis.RedisError, OSError) as exc:
                if self._closing:
                    return
                log.warning("cluster: command channel lost (%s): again", type(exc).__name__)
                await asyncio.sleep(self.settings.heartbeat_s)
                with contextlib.suppress(aioredis.RedisError, OSError):
                    await self._pubsub.subscribe(self._channel(self.node))

    async def _receive(self, data: bytes | str) -> None:
        try:
            parsed = parse_message(data)
        except CommandMalformed as exc:
            log.warning("cluster: dropped a message on the command channel: %s", exc)
            return
        if isinstance(parsed, Reply):
            fut = self._waiting.get(parsed.id)
            if fut is not None and not fut.done():
                fut.set_result(parsed)
            return
        if self._inflight.locked():
            await self._answer(parsed, Reply(parsed.id, error=_BUSY))
            return
        self._spawn(self._run(parsed), f"command {parsed.op.value}")

    async def _run(self, cmd: Command) -> None:
        async with self._inflight:
            try:
                reply = Reply(cmd.id, result=await self._handler(cmd))
            except RemoteCallError as exc:
                err = {"status": exc.status, "message": str(exc), "code": exc.code}
                reply = Reply(cmd.id, error={**err, "param": exc.param})
            except Exception:
                log.exception("cluster: command %s on %s failed", cmd.op.value, cmd.call_id)
                reply = Reply(cmd.id, error=_FAILED)
            await self._answer(cmd, reply)

    async def _answer(self, cmd: Command, reply: Reply) -> None:
        with contextlib.suppress(aioredis.RedisError, OSError):
            await self._redis.publish(self._channel(cmd.reply_to), reply.dumps())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_BUSY = {"status": 503, "message": "The call's node is busy.", "code": "owner_busy"}
_FAILED = {"status": 500, "message": "The call's node failed to act.", "code": "owner_failed"}
