"""The worker page over HTTP: a werkzeug WSGI app in front of a `PeopleWorkforce`.

Routes: `GET /` (the page), `GET /static/<name>` (its CSS, JS and per-task-type widgets),
`GET /api/image`, `POST /api/next | /api/answer | /api/undo | /api/skip | /api/propose` (an
object's mask from a person's clicks, for task types with a click tool); `/favicon.ico` is
an empty 204. What every request but the favicon must pass, in this order:

- addressed to this server (`Host` is 127.0.0.1:PORT or localhost:PORT), so a web page that
  re-points its own host name at 127.0.0.1 (DNS rebinding) is refused;
- the token, in the `X-Labelloop-Token` header or the `token` query parameter;
- a change (a POST) comes from this page: an `Origin` or `Sec-Fetch-Site` that names another
  site is refused (the token header already needs a CORS preflight, which is never granted);
- a body of at most 64 kB with an honest `Content-Length`, holding one JSON object.

Refusals are JSON `{"error": ..., "status": ...}` with a 4xx status and change nothing.
"""

from __future__ import annotations

import hmac
import html
import json
import mimetypes
import re
import secrets
from pathlib import PurePath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from labelloop.local.worker_page.errors import PageError
from labelloop.local.worker_page.files import PAGE_FILE, read_pinned, static_files

if TYPE_CHECKING:
    from labelloop.local.worker_page.people import PeopleWorkforce

TOKEN_HEADER = "X-Labelloop-Token"
WORKER_COOKIE = "labelloop-worker"
MAX_BODY = 64 * 1024
WORKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
CONTENT_LENGTH = re.compile(r"^[0-9]{1,19}$")
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
API = {"next": "api_next", "answer": "api_answer", "undo": "api_undo", "skip": "api_skip", "propose": "api_propose"}


class _Request(Request):
    # werkzeug stops a chunked body here; one byte past the limit tells "too long" from "just fits".
    max_content_length = MAX_BODY + 1


class WorkerPageApp:
    """The WSGI application; one per server."""

    def __init__(self, workforce: "PeopleWorkforce"):
        self.workforce = workforce
        self.static = static_files()
        self.page = self.static.pop(PAGE_FILE).decode("utf-8")
        self.routes = Map(
            [
                Rule("/", endpoint="page", methods=["GET"]),
                Rule("/favicon.ico", endpoint="favicon"),
                Rule("/static/<path:name>", endpoint="static", methods=["GET"]),
                Rule("/api/image", endpoint="image", methods=["GET"]),
                *(Rule(f"/api/{name}", endpoint=name, methods=["POST"]) for name in API),
            ],
            strict_slashes=False,  # never redirect: a path is either served or refused
            merge_slashes=False,
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = _Request(environ)
        try:
            response = self._dispatch(request)
        except PageError as exc:
            response = _json(exc.status, {"error": exc.message, "status": exc.status})
        except HTTPException as exc:  # werkzeug's own refusals, e.g. a chunked body over the limit
            code = exc.code or 400
            message = f"request body over {MAX_BODY} bytes" if code == 413 else exc.description or exc.name
            response = _json(code, {"error": message, "status": code})
        except Exception as exc:  # a bug: say so rather than hang the page
            response = _json(500, {"error": f"internal error: {type(exc).__name__}: {exc}", "status": 500})
        for name, value in (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                            ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY")):
            response.headers[name] = value
        return response(environ, start_response)

    # ---------------------------------------------------------------- routing and checks

    def _dispatch(self, request: Request) -> Response:
        refused: MethodNotAllowed | None = None
        try:
            endpoint, args = self.routes.bind_to_environ(request.environ).match()
        except NotFound:
            raise PageError(404, f"no such page: {request.path}") from None
        except MethodNotAllowed as exc:
            endpoint, args, refused = None, {}, exc
        except HTTPException:
            raise PageError(404, f"no such page: {request.path}") from None
        if endpoint == "favicon":
            return Response(b"", status=204, content_type="text/plain")
        token = self._authorize(request)
        if refused is not None:
            allowed = " or ".join(m for m in (refused.valid_methods or []) if m != "HEAD")
            raise PageError(405, f"{request.path} takes {allowed}, not {request.method}")
        if endpoint == "page":
            return self._page(request)
        if endpoint == "static":
            return self._static(args["name"])
        worker = self._worker(request)
        if endpoint == "image":
            return self._image(request)
        self._same_origin(request)
        body = _body(request)
        method = getattr(self.workforce, API[endpoint])
        return _json(200, method(worker, token) if endpoint == "next" else method(worker, body))

    def _authorize(self, request: Request) -> str:
        host = (request.headers.get("Host") or "").lower()
        if host not in self._hosts(request):
            raise PageError(403, f"requests must be addressed to {self._hosts(request)[0]}")
        given = request.headers.get(TOKEN_HEADER) or request.args.get("token")
        if not given:
            raise PageError(401, "missing access token: open the page with the link labelloop printed (…/?token=…)")
        if not hmac.compare_digest(given.encode(), self.workforce.token.encode()):
            raise PageError(403, "wrong access token: open the page with the link labelloop printed")
        return given

    def _hosts(self, request: Request) -> list[str]:
        port = request.environ["SERVER_PORT"]  # the port the server is bound to, not what the client says
        return [f"{self.workforce.host}:{port}", f"localhost:{port}"]

    def _same_origin(self, request: Request) -> None:
        site = request.headers.get("Sec-Fetch-Site")  # browsers send it; other clients need only the token
        if site is not None and site != "same-origin":
            raise PageError(403, f"a request from another site (Sec-Fetch-Site: {site[:40]}) is refused")
        origin = request.headers.get("Origin")
        ours = {f"http://{h}" for h in self._hosts(request)}
        # Under Referrer-Policy: no-referrer a browser may send `Origin: null` on its own same-origin POSTs.
        if origin is not None and origin.lower() not in ours and not (origin == "null" and site == "same-origin"):
            raise PageError(403, f"a request from another site (Origin: {origin[:100]}) is refused")

    def _worker(self, request: Request) -> str:
        worker = request.args.get("worker") or request.cookies.get(WORKER_COOKIE)
        if not worker:
            raise PageError(400, "no worker identity: open the page first (it sets a cookie) or add worker=NAME")
        if not WORKER_NAME.match(worker):
            raise PageError(400, "worker must be 1-64 letters, digits, '.', '_', '@' or '-'")
        return worker

    # ---------------------------------------------------------------- what is served

    def _page(self, request: Request) -> Response:
        nonce = secrets.token_urlsafe(16)
        text = self.page.replace("{{NONCE}}", nonce).replace("{{TOKEN}}", html.escape(quote(self.workforce.token, safe="")))
        response = Response(text.encode("utf-8"), status=200, content_type="text/html; charset=utf-8")
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; img-src 'self'; style-src 'self'; script-src 'nonce-{nonce}'; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
        if not request.args.get("worker") and not request.cookies.get(WORKER_COOKIE):
            response.set_cookie(WORKER_COOKIE, f"w-{secrets.token_hex(4)}", max_age=31536000, path="/",
                                httponly=True, samesite="Strict")
        return response

    def _static(self, name: str) -> Response:
        data = self.static.get(name)  # only the files the package ships: no name reaches the file system
        if data is None:
            raise PageError(404, f"no such file: /static/{name[:100]}")
        suffix = PurePath(name).suffix
        kind = STATIC_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(data, status=200, content_type=kind)

    def _image(self, request: Request) -> Response:
        ref, pinned = self.workforce.image(request.args.get("job"), request.args.get("item"))
        kind = mimetypes.guess_type(PurePath(ref).name)[0] or "application/octet-stream"
        if not kind.startswith("image/"):
            raise PageError(415, f"{PurePath(ref).name} is not an image")
        return Response(read_pinned(ref, pinned), status=200, content_type=kind)


def _body(request: Request) -> dict[str, Any]:
    """The request's JSON object ({} when there is no body)."""
    declared = request.headers.get("Content-Length")
    if declared is not None:
        if not CONTENT_LENGTH.match(declared.strip()):
            raise PageError(400, f"bad Content-Length {declared[:40]!r}: it must be a whole number of bytes")
        if int(declared) > MAX_BODY:
            raise PageError(413, f"request body over {MAX_BODY} bytes")
    try:
        raw = request.get_data(cache=False)
    except OSError:  # the client stopped sending (or went silent past the socket timeout)
        raise PageError(400, "the request body did not arrive in full") from None
    if len(raw) > MAX_BODY:
        raise PageError(413, f"request body over {MAX_BODY} bytes")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except RecursionError:
        raise PageError(400, "request body is nested too deeply") from None
    except ValueError:  # not JSON, or not UTF-8
        raise PageError(400, "request body is not JSON") from None
    if not isinstance(data, dict):
        raise PageError(400, "request body must be a JSON object")
    return data


def _json(status: int, data: dict[str, Any]) -> Response:
    return Response(json.dumps(data).encode(), status=status, content_type="application/json; charset=utf-8")
