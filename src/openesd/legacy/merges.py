"""`POST /inference/run-model-merge` (esd-legacy-api.md §7.2): validate, reserve the output checkpoint
(`Initial`), and describe the merge for the engine; its report (merge_reporter.py) makes the output
`Active` or `Disabled`."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import asdict
from typing import Annotated

from fastapi import Depends

from openesd.api.deps import SessionDep, StoreDep
from openesd.auth.access import Access
from openesd.checkpoints.repository import CheckpointRepository, NameTaken
from openesd.checkpoints.service import already_exists, esd_now
from openesd.execution.base import MergeSpec
from openesd.legacy.identity import Requesters, RequestersDep, holds
from openesd.legacy.merge_reporter import PENDING
from openesd.legacy.responses import fastapi_error
from openesd.metadata.models import Checkpoint
from openesd.storage.base import ObjectStore
from openesd.storage.layout import checkpoint_file

INTERPOLATIONS = ("No interpolation", "Weighted sum", "Add difference")
FORMATS = ("safetensors", "ckpt")
MODEL = "Stable-diffusion"
_HASH_SUFFIX = re.compile(r"\s*\[[0-9a-fA-F]+\]$")  # WebUI dropdown titles: "name.safetensors [abcd1234]"


class LegacyMerges:
    def __init__(self, session, store: ObjectStore, requesters: Requesters):
        self.checkpoints = CheckpointRepository(session)
        self.store = store
        self.requesters = requesters

    def start(self, body: dict) -> tuple[dict, MergeSpec]:
        """The answer, and the merge to submit once the output record is committed."""
        options = _options(body)
        requester = self.requesters.resolve()
        if not holds(requester, "checkpoint:all", "checkpoint:create"):
            raise fastapi_error(
                f"User {requester.username} has no permissions: ['checkpoint:all', 'checkpoint:create']", 403
            )
        names = {role: _model_name(body.get(f"{role}_model_name")) for role in ("primary", "secondary", "tertiary")}
        used = {"primary": names["primary"]}
        if options["interp_method"] != "No interpolation":
            used["secondary"] = names["secondary"]
        if options["interp_method"] == "Add difference":
            used["tertiary"] = names["tertiary"]
        access = self.requesters.access(requester)
        keys = {role: self._key(MODEL, name, access) for role, name in used.items()}
        vae = _model_name(options["bake_in_vae"])
        vae_key = self._key("VAE", vae, access) if vae not in ("", "None") else None
        output_name = f"{options['custom_name'] or _derived_name(options, used)}.safetensors"
        checkpoint = self._reserve(
            requester, output_name, {**options, **{f"{r}_model_name": n for r, n in used.items()}}
        )
        metadata = {"sd_merge_recipe": _recipe(options, used)} if options["save_metadata"] else {}
        spec = MergeSpec(
            checkpoint_id=checkpoint.id,
            output_key=checkpoint_file(MODEL, checkpoint.id, output_name),
            primary_key=keys["primary"],
            secondary_key=keys.get("secondary"),
            tertiary_key=keys.get("tertiary"),
            vae_key=vae_key,
            interp_method=options["interp_method"],
            multiplier=options["multiplier"],
            save_as_half=options["save_as_half"],
            discard_weights=options["discard_weights"],
            metadata=metadata,
        )
        # Kept on the record so a merge the server was running when it stopped runs again on boot.
        checkpoint.params = {**checkpoint.params, PENDING: asdict(spec)}
        answer = {
            **{f"{r}_model_name": body.get(f"{r}_model_name") or "" for r in ("primary", "secondary", "tertiary")},
            "merge_id": checkpoint.id,
            "checkpoint_id": checkpoint.id,
            "output_name": output_name,
            "status": "inprogress",
        }
        return answer, spec

    def _key(self, kind: str, name: str, access: Access) -> str:
        """The file of an Active checkpoint the requester may see (another's private model looks absent)."""
        checkpoint = self.checkpoints.active_by_name(kind, name)
        if checkpoint is None or not access.can_see(checkpoint):
            raise fastapi_error(f"checkpoint with name {name}, type {kind} is not found", 400)
        return checkpoint_file(kind, checkpoint.id, name)

    def _reserve(self, requester, name: str, merge: dict) -> Checkpoint:
        if "/" in name or "\\" in name or name.startswith("."):
            raise fastapi_error(f"custom_name {name!r} is not allowed: it must be a plain file name", 400)
        if self.checkpoints.taken([name]):
            raise fastapi_error(already_exists(name).message, 400)
        record = Checkpoint(
            id=str(uuid.uuid4()),
            checkpoint_type=MODEL,
            status="Initial",
            names=[name],
            created=time.time(),
            allowed_roles_or_users=list(requester.roles),
            hashes={},
            content_hash=None,
            version="v1.0",
            params={"message": "model merge", "creator": requester.username, "created": esd_now(), "merge": merge},
        )
        try:
            return self.checkpoints.add(record)
        except NameTaken:
            raise fastapi_error(already_exists(name).message, 400) from None


def _options(body: dict) -> dict:
    """The effective merge parameters with the WebUI merger's defaults; 400 naming a bad value."""
    options = {
        "interp_method": body.get("interp_method", "Weighted sum"),
        "multiplier": body.get("multiplier", 0.3),
        "save_as_half": body.get("save_as_half", False),
        "custom_name": body.get("custom_name", "") or "",
        "checkpoint_format": body.get("checkpoint_format", "safetensors"),
        "config_source": body.get("config_source", 0),
        "bake_in_vae": body.get("bake_in_vae", "None") or "None",
        "discard_weights": body.get("discard_weights", "") or "",
        "save_metadata": body.get("save_metadata", True),
        "sagemaker_endpoint_name": body.get("sagemaker_endpoint_name"),
    }
    if not body.get("primary_model_name"):
        raise fastapi_error("Failed: Missing Primary Model", 400)
    if options["interp_method"] not in INTERPOLATIONS:
        raise fastapi_error(f"interp_method must be one of {', '.join(INTERPOLATIONS)}", 400)
    if options["interp_method"] != "No interpolation" and not body.get("secondary_model_name"):
        raise fastapi_error("Failed: Missing Secondary Model", 400)
    if options["interp_method"] == "Add difference" and not body.get("tertiary_model_name"):
        raise fastapi_error("Failed: Missing Tertiary Model", 400)
    _check(
        options,
        "multiplier",
        lambda m: isinstance(m, int | float) and not isinstance(m, bool) and 0 <= m <= 1,
        "a number from 0 to 1",
    )
    for flag in ("save_as_half", "save_metadata"):
        _check(options, flag, lambda v: isinstance(v, bool), "true or false")
    _check(options, "checkpoint_format", lambda v: v in FORMATS, "safetensors or ckpt")
    _check(options, "config_source", lambda v: v in (0, 1, 2, 3) and not isinstance(v, bool), "0, 1, 2 or 3")
    for text in ("custom_name", "bake_in_vae", "discard_weights"):
        _check(options, text, lambda v: isinstance(v, str), "a string")
    try:
        re.compile(options["discard_weights"])
    except re.error as error:
        raise fastapi_error(f"discard_weights is not a valid regular expression: {error}", 400) from None
    options["multiplier"] = float(options["multiplier"])
    return options


def _check(options: dict, key: str, ok, expected: str) -> None:
    if not ok(options[key]):
        raise fastapi_error(f"{key} must be {expected}, got {options[key]!r}", 400)


def _model_name(value: object) -> str:
    return _HASH_SUFFIX.sub("", value).strip() if isinstance(value, str) else ""


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


def _derived_name(options: dict, used: dict[str, str]) -> str:
    """The WebUI merger's output name: factors rounded to 2 decimals, model names without extension."""
    m = options["multiplier"]
    a, b, c = (_stem(used.get(role, "")) for role in ("primary", "secondary", "tertiary"))
    if options["interp_method"] == "Weighted sum":
        return f"{round(1 - m, 2)}({a}) + {round(m, 2)}({b})"
    if options["interp_method"] == "Add difference":
        return f"{a} + {round(m, 2)}({b} - {c})"
    return a


def _recipe(options: dict, used: dict[str, str]) -> str:
    import json

    return json.dumps(
        {
            "type": "webui",
            **{f"{r}_model": n for r, n in used.items()},
            "interp_method": options["interp_method"],
            "multiplier": options["multiplier"],
            "save_as_half": options["save_as_half"],
            "bake_in_vae": options["bake_in_vae"],
            "discard_weights": options["discard_weights"],
            "is_inpainting": False,
            "is_instruct_pix2pix": False,
        }
    )


def get_legacy_merges(session: SessionDep, store: StoreDep, requesters: RequestersDep) -> LegacyMerges:
    return LegacyMerges(session, store, requesters)


LegacyMergesDep = Annotated[LegacyMerges, Depends(get_legacy_merges)]
