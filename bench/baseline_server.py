"""B1's baseline: a bare Tornado handler that parses the JSON body and answers 202."""

from __future__ import annotations

import asyncio
import json
import sys

import tornado.httpserver
import tornado.web


class BareTrackHandler(tornado.web.RequestHandler):
    """Parse the body, answer 202 ``{"ok": true}``: the least a tracking endpoint does."""

    def post(self) -> None:
        """Parse and accept."""
        data = json.loads(self.request.body)
        if not isinstance(data, dict):
            raise tornado.web.HTTPError(400)
        self.set_status(202)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(b'{"ok":true}')


async def serve(port: int) -> None:
    """Listen on 127.0.0.1:``port`` until killed."""
    app = tornado.web.Application([(r"/web/analytics/track", BareTrackHandler),
                                   (r"/healthz", BareTrackHandler)], log_function=lambda h: None)
    server = tornado.httpserver.HTTPServer(app, max_body_size=1_048_576)
    server.listen(port, "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
