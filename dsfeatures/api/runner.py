"""The application runner: aiohttp's, except that errors found before routing are JSON too.

aiohttp answers what its HTTP parser refuses (a header line over 8 KB, too many
headers, an invalid method or URL byte, a bad ``Content-Length``) itself, in plain
text, before any middleware runs. Clients of this daemon parse every error as
``{code, message, request_id}``, so the connection class of :class:`DaemonRunner`
answers those in the same shape (and with an ``X-Request-Id``); aiohttp still logs
them and still closes the connection.
"""

from __future__ import annotations

import logging
import uuid
from typing import Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from dsfeatures.api.middleware import error_response
from dsfeatures.errors import DSFError

__all__ = ["DaemonRunner"]

log = logging.getLogger("dsfeatures.api")

#: Codes of the statuses aiohttp's parser answers with.
_CODES: Final = {
    400: "MALFORMED_REQUEST",
    413: "PAYLOAD_TOO_LARGE",
    414: "URI_TOO_LONG",
    431: "HEADERS_TOO_LARGE",
    501: "NOT_IMPLEMENTED",
}


class _Connection(RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            # aiohttp's own handling logs the traceback and refuses if a response began.
            super().handle_error(request, status, exc, message)
            text = "internal error"
        else:
            # A client's mistake (or a scanner's probe): one line, no traceback.
            text = (message or "malformed HTTP request").strip().splitlines()[0][:200]
            log.info("refused a malformed HTTP request from %s: %s", request.remote, text)
            if request.writer.output_size > 0:
                raise ConnectionError("a response was sent already; closing the connection")
        err = DSFError(text, code=_CODES.get(status, "HTTP_ERROR"))
        err.status = status
        resp = error_response(err, uuid.uuid4().hex[:16])
        resp.force_close()
        return resp


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class DaemonRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer HTTP protocol errors as JSON errors."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # the same server; only its connection class differs
        return server
