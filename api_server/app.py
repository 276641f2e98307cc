"""The FastAPI application: routes, auth, problem responses and the access log."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api_server import openapi
from api_server.auth import HEADER, ApiKeys
from api_server.problems import Problem, from_problem, problem_response
from api_server.query import parse_query
from api_server.service import ApiService
from reconcilers.contract import DATASETS, Dataset

access_log = logging.getLogger("api_server.access")
log = logging.getLogger("api_server")


class AccessLog:
    """Method, path, query, status and time of each request. Never headers: the API key travels
    in one, and the query string carries no secret."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = [0]

        async def capture(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            access_log.info('"%s %s%s" %d %.1fms', scope["method"], scope["path"], f"?{query}" if query else "",
                            status[0], (time.perf_counter() - t0) * 1000)


def create_app(service: ApiService, keys: ApiKeys) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app):
        service.manifest.write()
        yield
        service.manifest.write()  # with the final transport counts

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="trade-recon bundled API",
                  lifespan=lifespan)
    spec = openapi.render()

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return from_problem(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        return problem_response(exc.status_code, detail, headers=dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return problem_response(400, "invalid request", slug="invalid-query")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        log.error("unhandled error on %s: %s", request.url.path, type(exc).__name__, exc_info=exc)
        return problem_response(500, "internal error; see the server log")

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/openapi.json")
    async def openapi_json():
        return Response(spec, media_type="application/json")

    def data_route(ds: Dataset):
        async def handler(request: Request) -> Response:
            keys.check(request.headers.get(HEADER))
            q = parse_query(ds, list(request.query_params.multi_items()))
            cur = service.cursor(q)
            action = service.transport.before_page((ds.name, q.start_us, q.end_us, q.cursor, q.page_size),
                                                   first_page=q.cursor is None)
            if action.delay_s:
                await asyncio.sleep(action.delay_s)
            if action.status:
                headers = {"Retry-After": str(action.retry_after)} if action.retry_after is not None else {}
                return problem_response(action.status, f"injected fault {action.fault}", slug=action.fault,
                                        headers=headers)
            body, _ = await run_in_threadpool(service.page, q, cur)
            if action.fault == "truncate-body":
                body = body[: len(body) // 2]
            return Response(body, media_type="application/json")

        handler.__name__ = f"list_{ds.name}"
        return handler

    for ds in DATASETS.values():
        app.add_api_route(f"/v1/{ds.path}", data_route(ds), methods=["GET"])
    app.add_middleware(AccessLog)
    return app
