"""`/users/me/webhook-secret`: the caller's own signing secret (OpenESD's addition; read, or rotate)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from openesd.api.deps import PasswordCipherDep, SessionDep
from openesd.api.envelope import esd_response
from openesd.tokens.routes import Owner
from openesd.webhooks.service import WebhookSecrets

router = APIRouter(tags=["webhooks"])


def get_webhook_secrets(session: SessionDep, cipher: PasswordCipherDep) -> WebhookSecrets:
    return WebhookSecrets(session, cipher)


Secrets = Annotated[WebhookSecrets, Depends(get_webhook_secrets)]


@router.get("/users/me/webhook-secret")
def read_webhook_secret(owner: Owner, secrets: Secrets) -> Response:
    """Created on first read; a user sees only their own, as with `/tokens`."""
    return esd_response(200, {"username": owner.username, "secret": secrets.get_or_create(owner.username)})


@router.post("/users/me/webhook-secret")
def rotate_webhook_secret(owner: Owner, secrets: Secrets) -> Response:
    return esd_response(201, {"username": owner.username, "secret": secrets.rotate(owner.username)})
