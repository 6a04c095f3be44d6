"""/ping: Harbor's liveness answer for scripts, "Pong" as plain text, no authentication."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

router = APIRouter(tags=["ping"])


@router.get("/ping", response_class=PlainTextResponse)
async def ping() -> str:
    return "Pong"
