"""Rules for LoRA trainings: the two request shapes, checks in ESD's order, the output checkpoint (esd-api.md §10)."""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from openesd.auth.access import Access
from openesd.auth.principal import Principal
from openesd.checkpoints.repository import CheckpointRepository, NameTaken
from openesd.checkpoints.service import already_exists, check_file_name, esd_now
from openesd.datasets.repository import DatasetRepository
from openesd.datasets.service import visible
from openesd.endpoints import paging
from openesd.endpoints.quota import InstanceQuota
from openesd.errors import BadRequest, NotFound
from openesd.execution.base import TrainingSpec
from openesd.metadata.models import Checkpoint, Training
from openesd.settings import Settings
from openesd.storage.base import ObjectStore
from openesd.storage.layout import (
    checkpoint_file,
    checkpoint_folder,
    dataset_folder,
    training_folder,
    training_input,
    training_output,
)
from openesd.trainings import kohya
from openesd.trainings.reporter import publish_training_event
from openesd.trainings.repository import TrainingRepository
from openesd.trainings.schemas import (
    DEFAULT_INSTANCE_TYPE,
    FM_TYPES,
    TERMINAL,
    UNTRAINABLE_FAMILIES,
    UNTRAINABLE_FM_PREFIXES,
    CreateTraining,
)
from openesd.webhooks.service import WebhookService


def quota_message(instance_type: str, quota: int, used: int) -> str:
    return (
        "An error occurred (ResourceLimitExceeded) when calling the CreateTrainingJob operation: The account-level "
        f"service limit '{instance_type} for training job usage' is {quota} Instances, with current utilization of "
        f"{used} Instances and a request delta of 1 Instances. In OpenESD, raise this quota with the "
        f"OPENESD_INSTANCE_QUOTAS setting, e.g. OPENESD_INSTANCE_QUOTAS='{{\"{instance_type}\": {used + 1}}}'."
    )


@dataclass
class _Request:
    """What a request asks for, whichever of the two shapes of §10.2 it came in."""

    instance_type: str
    model: str
    dataset: str
    fm_type: str
    config_params: dict[str, Any]


class TrainingService:
    def __init__(self, session: Session, store: ObjectStore, settings: Settings, capacity: dict[str, int]):
        self.trainings = TrainingRepository(session)
        self.checkpoints = CheckpointRepository(session)
        self.datasets = DatasetRepository(session)
        self.quota = InstanceQuota(session, settings, capacity)
        self.webhooks = WebhookService(session, settings.allow_private_webhooks)
        self.store, self.settings, self.capacity = store, settings, capacity

    # --- create -----------------------------------------------------------------------------
    def create(
        self, requester: Principal, body: CreateTraining, reserved: Training | None = None
    ) -> tuple[dict, TrainingSpec]:
        """The 201 data and the spec to run once the rows are committed (checks in ESD's order).
        `reserved`: the `Initial` row (and output checkpoint) a legacy `POST /train` stored, started in place."""
        if body.lora_train_type.lower() != "kohya":
            raise BadRequest(f"Invalid lora train type: {body.lora_train_type}, the valid value is kohya.")
        request = _read_request(body.params)
        access = Access.of(self.settings.auth_mode, requester)
        model = self._model(request.model, access)
        dataset = self._dataset(request.dataset, access)
        fm_type = request.fm_type.lower()
        if fm_type not in FM_TYPES:
            raise BadRequest(
                f"Invalid fm_type {request.fm_type}, the valid values are sd_1_5 and sd_xl{_not_yet(fm_type)}"
            )
        _check_trainable(model)
        tables = kohya.merged(fm_type, request.config_params)
        config = _config(tables)
        output = check_file_name(f"{config.output_name}.safetensors")
        if self.checkpoints.taken([output]) and not self._reserved_for(reserved, output):
            raise already_exists(output)
        self._check_quota(request.instance_type)
        self.webhooks.check(body.webhook)  # before anything is written to the store
        view, spec = self._store(
            requester, request, fm_type, tables, config.ignored_keys, model, dataset, output, reserved
        )
        self.webhooks.subscribe("training", spec.id, requester.username, body.webhook)
        return view, spec

    def _reserved_for(self, reserved: Training | None, name: str) -> bool:
        """Whether `name` is held by the output checkpoint of the reserved training itself."""
        checkpoint = self.checkpoints.get(reserved.checkpoint_id) if reserved is not None else None
        return checkpoint is not None and name in checkpoint.names

    def _model(self, reference: str, access: Access) -> Checkpoint:
        name = reference.rstrip("/").rsplit("/", 1)[-1]  # an s3_model_path names the file last
        checkpoint = access.visible(self.trainings.checkpoint_named(name), BadRequest("Model not found"))
        if self.store.stat(self._model_key(checkpoint)) is None:
            raise BadRequest(
                f"Model {name} has no uploaded file yet (status {checkpoint.status}); finish its upload first"
            )
        return checkpoint

    @staticmethod
    def _model_key(checkpoint: Checkpoint) -> str:
        return checkpoint_file(checkpoint.checkpoint_type, checkpoint.id, checkpoint.names[0])

    def _dataset(self, reference: str, access: Access) -> str:
        # An s3_data_path is `…/dataset/<name>[/<prefix>]`: the name follows `dataset/`.
        parts = reference.strip("/").split("/")
        name = parts[parts.index("dataset") + 1] if "dataset" in parts[:-1] else parts[-1]
        dataset = access.visible(self.datasets.get(name), BadRequest("Dataset not found"))
        if dataset.status != "Enabled":
            raise BadRequest(
                f"dataset {name} is {dataset.status}: set it to Enabled (PUT /datasets/{name}), "
                "which checks its images and captions, before training on it"
            )
        return name

    def _check_quota(self, instance_type: str) -> None:
        quota, used = self.quota.limit(instance_type), self.quota.used(instance_type)
        if used + 1 > quota:
            raise BadRequest(quota_message(instance_type, quota, used))

    def _store(
        self,
        requester: Principal,
        request: _Request,
        fm_type: str,
        tables: dict,
        ignored: list[str],
        model: Checkpoint,
        dataset: str,
        output: str,
        reserved: Training | None = None,
    ) -> tuple[dict, TrainingSpec]:
        training_id = reserved.id if reserved is not None else str(uuid.uuid4())
        now = reserved.created if reserved is not None else time.time()
        toml_key = f"{training_input(training_id)}/{kohya.TOML_NAMES[fm_type]}"
        self._output(training_id, now, output, requester, reserved is not None)
        params = {
            "training_params": {
                "training_instance_type": request.instance_type,
                "fm_type": fm_type,
                "s3_model_path": self.store.uri(self._model_key(model)),
                "s3_data_path": self.store.uri(dataset_folder(dataset)),
                "s3_toml_path": self.store.uri(toml_key),
                "model_name": model.names[0],
                "dataset_name": dataset,
            },
            "config_params": request.config_params,
            "training_type": "kohya",
            "ignored_keys": ignored,
        }
        started = {
            "job_status": "Training",
            "instance_type": request.instance_type,
            "params": params,
            "sagemaker_train_name": f"kohya-{training_id[:8]}",
            "progress": None,
            "runner_host": socket.gethostname(),
        }
        if reserved is None:
            training = self.trainings.add(
                Training(
                    id=training_id,
                    created=now,
                    checkpoint_id=training_id,
                    allowed_roles_or_users=[requester.username],
                    **started,
                )
            )
        else:
            training = reserved
            for key, value in started.items():
                setattr(training, key, value)
        self.store.put_bytes(toml_key, kohya.to_toml(tables).encode())
        publish_training_event(training, "queued", {"instance_type": request.instance_type})
        spec = TrainingSpec(
            id=training_id,
            instance_type=request.instance_type,
            model_type=fm_type,
            model={"id": model.id, "model_name": model.names[0], "key": self._model_key(model)},
            dataset_prefix=dataset_folder(dataset) + "/",
            config=tables,
            output_prefix=training_output(training_id),
            checkpoint_folder=checkpoint_folder("Lora", training_id),
        )
        view = {
            "id": training_id,
            "status": training.job_status,
            "created": str(now),
            "params": params,
            **self._locations(training_id),
        }
        return view, spec

    def _output(self, training_id: str, now: float, output: str, requester: Principal, reserved: bool) -> None:
        """The output checkpoint `Initial` under the training's id: a new record, or the one reserved with the
        training, renamed when its name differs."""
        checkpoint = self.checkpoints.get(training_id) if reserved else None
        try:
            if checkpoint is None:
                self.checkpoints.add(output_checkpoint(training_id, now, output, requester))
            elif checkpoint.names != [output]:
                self.checkpoints.release(checkpoint.names)
                checkpoint.names = [output]
                self.checkpoints.reserve(training_id, [output])
        except NameTaken as taken:
            raise already_exists(taken.name) from None

    def _locations(self, training_id: str) -> dict:
        return {
            "input_location": self.store.uri(training_input(training_id)),
            "output_location": self.store.uri(training_output(training_id)),
        }

    # --- read -------------------------------------------------------------------------------
    def get(self, training_id: str, access: Access) -> dict:
        training = access.visible(self.trainings.get(training_id), _missing(training_id))
        return {
            "id": training.id,
            "checkpoint_id": training.checkpoint_id,
            "job_status": training.job_status,
            "model_id": "kohya",
            "params": training.params,
            "timestamp": str(training.created),
            "train_type": "Stable-diffusion",
            "progress": training.progress,
            **self._locations(training.id),
        } | ({"webhook": webhook} if (webhook := self.webhooks.view("training", training.id)) else {})

    def list(self, requester: Principal, limit: int, exclusive_start_key: str | None, access: Access) -> dict:
        rows = self.trainings.newest_first()  # strict: the ownership policy; compat: ESD's owner rule
        rows = (
            access.only_visible(rows)
            if access.checked
            else [t for t in rows if visible(t.allowed_roles_or_users, requester)]
        )
        chosen, last = paging.page(rows, lambda t: {"t": t.created, "id": t.id}, limit, exclusive_start_key)
        if not chosen:
            return {"trainings": []}
        return {"trainings": [self._list_view(t) for t in chosen], "last_evaluated_key": last}

    @staticmethod
    def _list_view(training: Training) -> dict:
        return {
            "id": training.id,
            "modelName": training.params.get("training_params", {}).get("model_name", "not_applied"),
            "status": training.job_status,
            "trainType": "Stable-diffusion",
            "created": str(training.created),
            "sagemakerTrainName": training.sagemaker_train_name,
            "params": training.params,
            "progress": training.progress,
        }

    # --- stop / delete ----------------------------------------------------------------------
    def stop(self, training_id: str, access: Access) -> dict:
        """Check that the training can be stopped; the engine is asked once this returns."""
        training = access.changeable(self.trainings.get(training_id), _missing(training_id))
        if training.job_status in TERMINAL:
            raise BadRequest(
                f"training {training_id} is already {training.job_status}; only a running training can be stopped"
            )
        return {"id": training.id, "status": training.job_status}

    def delete(self, ids: list[str], access: Access) -> list[str]:
        """Remove the records and the training's own objects (never the base model, nor the output
        checkpoint); the ids whose workers must be stopped."""
        running = []
        for training in access.deletable(self.trainings.get(training_id) for training_id in dict.fromkeys(ids)):
            if training.job_status not in TERMINAL:
                running.append(training.id)
            self.trainings.delete(training)
            self.webhooks.forget("training", training.id)
            self.store.delete_prefix(training_folder(training.id) + "/")
        return running


def _not_yet(fm_type: str) -> str:
    """The reason an fm_type of a family OpenESD cannot train yet is refused, after ESD's message."""
    plain = fm_type.replace("_", "").replace(".", "").replace("-", "")
    for family, prefix in UNTRAINABLE_FM_PREFIXES.items():
        if plain.startswith(prefix):
            return f" (LoRA training for {UNTRAINABLE_FAMILIES[family]} models is not supported yet)"
    return ""


def _check_trainable(model: Checkpoint) -> None:
    """Refuse a base model of a family whose LoRA training is a later step, by what its upload check found."""
    family = (model.params or {}).get("model_family")
    if family in UNTRAINABLE_FAMILIES:
        label = UNTRAINABLE_FAMILIES[family]
        raise BadRequest(
            f"Model {model.names[0]} is a {label} model: LoRA training for {label} models is not supported yet; "
            "train on an SD 1.5 (fm_type sd_1_5) or SDXL (fm_type sd_xl) model"
        )


def _read_request(params: dict) -> _Request:
    """Both shapes of §10.2: `model`/`dataset` + required kohya sections (1.5.0), or the documented
    `s3_model_path`/`s3_data_path` with optional `config_params`."""
    tp = params.get("training_params") or {}
    documented = not tp.get("model") and bool(tp.get("s3_model_path"))
    config = params.get("config_params")
    if config is None and documented:
        config = {}
    _require(config, "config_params")
    model = tp.get("s3_model_path") if documented else _require(tp.get("model"), "training_params.model")
    dataset = tp.get("s3_data_path") or _require(tp.get("dataset"), "training_params.dataset")
    fm_type = tp.get("fm_type") or ("sd_1_5" if documented else _require(None, "training_params.fm_type"))
    if not isinstance(config, dict):
        raise BadRequest("config_params must be an object of kohya sections")
    config = {section: (dict(values) if isinstance(values, dict) else values) for section, values in config.items()}
    if documented:
        output = (config.get("training") or {}).get("output_name") or (config.get("saving_arguments") or {}).get(
            "output_name"
        )
        _require(output, "config_params.saving_arguments.output_name")
    else:
        saving, arguments = config.get("saving_arguments") or {}, config.get("training_arguments") or {}
        _require(saving.get("output_name"), "config_params.saving_arguments.output_name")
        saving["save_every_n_epochs"] = _integer(
            saving.get("save_every_n_epochs"), "config_params.saving_arguments.save_every_n_epochs"
        )
        arguments["max_train_epochs"] = _integer(
            arguments.get("max_train_epochs"), "config_params.training_arguments.max_train_epochs"
        )
        config["saving_arguments"], config["training_arguments"] = saving, arguments
    return _Request(
        tp.get("training_instance_type") or DEFAULT_INSTANCE_TYPE, str(model), str(dataset), str(fm_type), config
    )


def _require(value: Any, path: str) -> Any:
    if not value:
        raise BadRequest(f"Missing {path}")
    return value


def _integer(value: Any, path: str) -> int:
    _require(value, path)
    try:
        return int(value)  # ESD coerces with int()
    except (TypeError, ValueError):
        raise BadRequest(f"{path} must be an integer, got {value!r}") from None


def _missing(training_id: str) -> NotFound:
    return NotFound(f"Job with id {training_id} not found")


def _config(tables: dict) -> Any:
    from openesd.trainer.config import TrainingConfig

    return TrainingConfig.from_kohya(tables)


def output_checkpoint(training_id: str, now: float, output: str, requester: Principal) -> Checkpoint:
    """The `Lora` record a training fills: reserved (`Initial`) under the training's id when it is created."""
    return Checkpoint(
        id=training_id,
        checkpoint_type="Lora",
        status="Initial",
        names=[output],
        created=now,
        allowed_roles_or_users=list(requester.roles),
        hashes={},
        content_hash=None,
        version="v1.0",
        params={"created": esd_now(), "creator": requester.username, "training_id": training_id},
    )
