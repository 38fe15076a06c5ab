"""Server-Sent Events fan-out: job events per browser session, bounded, replayable briefly."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass, field

__all__ = ["SessionHub", "StreamEvent", "Subscription"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event: ``id`` (``<epoch>.<n>``, for ``Last-Event-ID``), SSE event name, JSON data."""

    id: str
    name: str
    data: str

    def encode(self) -> bytes:
        """The event in ``text/event-stream`` framing (``data`` is one line of JSON)."""
        return f"id: {self.id}\nevent: {self.name}\ndata: {self.data}\n\n".encode()


class Subscription:
    """One open event stream: a bounded queue that drops its oldest event on overflow.

    Args:
        session_id: the browser session it belongs to.
        limit: events kept while the stream is not reading.
    """

    def __init__(self, session_id: str, limit: int) -> None:
        self.session_id = session_id
        self.dropped = 0
        self._events: deque[StreamEvent] = deque(maxlen=limit)
        self._ready = asyncio.Event()
        self._closed = False

    def push(self, event: StreamEvent) -> None:
        if len(self._events) == self._events.maxlen:
            self.dropped += 1
        self._events.append(event)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def next_batch(self, quiet: float) -> list[StreamEvent] | None:
        """Wait up to ``quiet`` seconds for events.

        Returns:
            The events in order (empty after ``quiet`` seconds: time for a ping), or
            None once the subscription is closed (server shutdown).
        """
        if not self._events and not self._closed:
            try:
                async with asyncio.timeout(quiet):
                    await self._ready.wait()
            except TimeoutError:
                pass
        if self._closed:
            return None
        batch = list(self._events)
        self._events.clear()
        self._ready.clear()
        return batch


@dataclass(slots=True)
class _Session:
    backlog: deque[tuple[int, StreamEvent]]
    subscribers: set[Subscription] = field(default_factory=set)


class SessionHub:
    """Routes job events to the open streams of one browser session.

    Each session keeps its last ``backlog`` events, so a stream that reconnects with
    ``Last-Event-ID`` (EventSource does so by itself) gets what it missed. At most
    ``max_sessions`` sessions are remembered; the least recently used one without open
    streams is forgotten first. Publishing never blocks: it is called from job delivery.

    Args:
        backlog: events kept per session and per open stream (oldest dropped first).
        max_sessions: sessions remembered.
    """

    def __init__(self, *, backlog: int = 64, max_sessions: int = 256) -> None:
        self._backlog = backlog
        self._max_sessions = max_sessions
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._epoch = secrets.token_hex(4)
        self._counter = 0
        self._closed = False

    def _session(self, session_id: str) -> _Session:
        """The session, now the most recently used; a new one after making room for it."""
        session = self._sessions.get(session_id)
        if session is not None:
            self._sessions.move_to_end(session_id)
            return session
        self._make_room()
        session = _Session(backlog=deque(maxlen=self._backlog))
        self._sessions[session_id] = session  # a new key goes last: most recently used
        return session

    def _make_room(self) -> None:
        """Forget the least recently used idle sessions so one more fits in ``max_sessions``.

        Sessions with open streams are kept, so with every session streaming there may be
        more than ``max_sessions`` of them for a while.
        """
        excess = len(self._sessions) + 1 - self._max_sessions
        if excess <= 0:
            return
        idle = [key for key, session in self._sessions.items() if not session.subscribers]
        for key in idle[:excess]:
            del self._sessions[key]

    def publish(self, session_id: str, name: str, data: str) -> None:
        """Queue an event for every open stream of ``session_id`` and its backlog."""
        if self._closed:
            return
        self._counter += 1
        event = StreamEvent(f"{self._epoch}.{self._counter}", name, data)
        session = self._session(session_id)
        session.backlog.append((self._counter, event))
        for subscription in session.subscribers:
            subscription.push(event)

    def subscribe(self, session_id: str, last_event_id: str | None = None) -> Subscription:
        """Open a stream; with the ``Last-Event-ID`` of this process, replay what came after."""
        subscription = Subscription(session_id, self._backlog)
        if self._closed:
            subscription.close()
            return subscription
        session = self._session(session_id)
        after = self._parse_id(last_event_id)
        if after is not None:
            for number, event in session.backlog:
                if number > after:
                    subscription.push(event)
        session.subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        session = self._sessions.get(subscription.session_id)
        if session is not None:
            session.subscribers.discard(subscription)
        if subscription.dropped:
            log.warning(
                "event stream dropped events",
                extra={"dropped": subscription.dropped},
            )

    def close(self) -> None:
        """End every stream (server shutdown); later subscriptions start closed."""
        self._closed = True
        for session in self._sessions.values():
            for subscription in session.subscribers:
                subscription.close()

    def _parse_id(self, last_event_id: str | None) -> int | None:
        if not last_event_id:
            return None
        epoch, _, number = last_event_id.partition(".")
        if epoch != self._epoch or not number.isdigit():
            return None
        return int(number)
