"""Where the dashboard's records come from: a journal file, or a server's event stream.

The live source reads the stream in a thread of its own with the blocking client and only
appends to a deque (`items`): it never waits for the screen, so a slow terminal never slows the
reading, and the server never waits for the dashboard (its subscriber queue is bounded: when the
dashboard falls too far behind, the server drops the stream with an error; the source then
reconnects, and the app rebuilds its model from the new stream's history, with a notice).

Items: `("records", [record, ...])`, `("live",)` (the history so far has been delivered),
`("reset", notice)` (a new stream begins: drop what was read), `("notice", text)`.
"""

from __future__ import annotations

import collections
import threading

from ..errors import HqError, RequestFailed
from ..protocol import messages as m

RETRY_DELAY = 2.0  # seconds between reconnection attempts
OVERVIEW_INTERVAL = 2.0  # seconds between the hardware overviews asked from workers (upstream's)
OVERVIEW_LEASE = 10.0  # seconds one request lasts: renewed every RENEW s while the app runs
OVERVIEW_RENEW = 4.0


def read_journal(path: str) -> tuple[list, str | None]:
    """The records of a journal file and a warning about its tail (None if clean).

    Raises:
        HqError: the file cannot be read or is not a journal.
    """
    from ..journal.format import read_file

    records, tail = read_file(path, expand=True)
    return records, (None if tail.clean else tail.warning(path))


def _open_stream(server_dir: str, live: bool):
    from ..client.blocking import BlockingClient

    client = BlockingClient(server_dir)
    client.conn.settimeout(None)
    client.conn.send(m.encode(m.StreamEventsRequest(live)))
    return client


def _next_chunk(client) -> m.EventsResponse:
    """The next EventsResponse of a stream.

    Raises:
        RequestFailed: the server ended the stream with an error (e.g. a lagging subscriber).
        HqError: the connection broke.
    """
    from ..protocol.errors import ConnectionClosed, ProtocolError

    try:
        resp = client.receive()
    except (ConnectionClosed, OSError, ProtocolError) as e:
        raise HqError(f"Connection to the server was lost: {e or 'closed'}") from None
    if isinstance(resp, m.ErrorResponse):
        raise RequestFailed(resp.message)
    if not isinstance(resp, m.EventsResponse):
        raise HqError(f"Protocol error: unexpected {type(resp).__name__}")
    return resp


def fetch_history(server_dir: str) -> list:
    """Every event of the server so far (up to the live boundary), then the stream is closed."""
    client = _open_stream(server_dir, live=False)
    records: list = []
    try:
        while True:
            resp = _next_chunk(client)
            records.extend(resp.events)
            if resp.done:
                return records
    finally:
        client.close()


class LiveSource:
    """A server's event stream, read in a daemon thread into `items` (see the module doc)."""

    def __init__(self, server_dir: str):
        self.server_dir = server_dir
        self.items: collections.deque = collections.deque()
        self._stop = threading.Event()
        self._client = None
        self._thread = threading.Thread(target=self._run, name="hq-dashboard-stream",
                                        daemon=True)
        self._asker = threading.Thread(target=self._ask_overviews, name="hq-dashboard-overviews",
                                       daemon=True)
        self.streams = 0  # how many streams were opened (1 + reconnections)
        self.overview_requests = 0  # answered OverviewsRequests

    def start(self) -> None:
        self._thread.start()
        self._asker.start()

    def _ask_overviews(self) -> None:
        """Asks the workers for hardware overviews while the dashboard runs (streamed, not
        journaled), renewing the request; a server without the request is left alone."""
        from ..client.blocking import BlockingClient

        client = None
        while not self._stop.is_set():
            try:
                if client is None:
                    client = BlockingClient(self.server_dir)
                client.request(m.OverviewsRequest(OVERVIEW_INTERVAL, OVERVIEW_LEASE))
                self.overview_requests += 1
            except RequestFailed:
                break  # a server that does not know the request
            except HqError:
                if client is not None:
                    client.close()
                client = None
            self._stop.wait(OVERVIEW_RENEW)
        if client is not None:
            client.close()

    def stop(self) -> None:
        self._stop.set()
        client = self._client
        if client is not None:
            try:
                client.close()
            except OSError:
                pass
        self._thread.join(timeout=2.0)
        self._asker.join(timeout=2.0)

    def _run(self) -> None:
        notice = None
        while not self._stop.is_set():
            try:
                client = _open_stream(self.server_dir, live=True)
            except HqError as e:
                self.items.append(("notice", f"{e} (retrying)"))
                self._stop.wait(RETRY_DELAY)
                continue
            self._client = client
            self.streams += 1
            self.items.append(("reset", notice))
            try:
                self._follow(client)
            except RequestFailed as e:
                notice = (f"The server dropped the event stream ({e}); resynchronised from "
                          f"its history")
            except HqError as e:
                if self._stop.is_set():
                    return
                notice = f"{e}; reconnected"
                self.items.append(("notice", f"{e}; reconnecting"))
                self._stop.wait(RETRY_DELAY)
            finally:
                self._client = None
                try:
                    client.close()
                except OSError:
                    pass

    def _follow(self, client) -> None:
        items = self.items
        while not self._stop.is_set():
            resp = _next_chunk(client)
            if resp.events:
                items.append(("records", resp.events))
            elif not resp.done:
                items.append(("live",))
            if resp.done:
                raise HqError("the server ended the event stream")
