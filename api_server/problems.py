"""RFC 7807 problem responses. Every error answer is `application/problem+json` and `no-store`."""

from __future__ import annotations

from http import HTTPStatus

import orjson
from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"
NO_STORE = {"Cache-Control": "no-store"}


class Problem(Exception):
    """An expected failure of a request, answered as a problem document."""

    def __init__(self, status: int, detail: str, *, slug: str | None = None, headers: dict | None = None,
                 **extra):
        super().__init__(detail)
        self.status, self.detail, self.headers, self.extra = status, detail, headers or {}, extra
        self.slug = slug or HTTPStatus(status).phrase.lower().replace(" ", "-")


def problem_response(status: int, detail: str, *, slug: str | None = None, headers: dict | None = None,
                     **extra) -> Response:
    slug = slug or HTTPStatus(status).phrase.lower().replace(" ", "-")
    body = {
        "type": f"urn:trade-recon:problem:{slug}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON,
                    headers={**(headers or {}), **NO_STORE})


def from_problem(p: Problem) -> Response:
    return problem_response(p.status, p.detail, slug=p.slug, headers=p.headers, **p.extra)
