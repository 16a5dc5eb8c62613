"""DreamBooth-era trainings (esd-legacy-api.md §10) mapped onto 1.5.0 LoRA trainings (§10.4).

`POST /train` stores a 1.5.0 training row in `Initial` with its output checkpoint and the legacy body;
`PUT /train` translates that body into a 1.5.0 request and starts that same row, its output checkpoint kept.
What cannot map (full DreamBooth fine-tuning) is refused with a message that says what to change."""

from __future__ import annotations

import json
import re
import struct
import time
import uuid
from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import Depends

from openesd.api.deps import SessionDep, StoreDep
from openesd.auth.access import Access
from openesd.checkpoints.repository import CheckpointRepository, NameTaken
from openesd.checkpoints.service import already_exists, check_file_name
from openesd.datasets.repository import DatasetRepository
from openesd.datasets.service import visible
from openesd.errors import Forbidden, OpenESDError
from openesd.execution.base import TrainingSpec
from openesd.legacy.datasets import creating_requester, list_requester
from openesd.legacy.dreambooth import LegacyModels, LegacyModelsDep
from openesd.legacy.identity import Requesters, RequestersDep
from openesd.legacy.responses import lambda_error
from openesd.metadata.models import Checkpoint, Training
from openesd.storage.base import ObjectStore
from openesd.storage.layout import (
    checkpoint_file,
    dataset_folder,
    legacy_training_concept,
    legacy_training_dataset,
    training_input,
)
from openesd.trainings.repository import TrainingRepository
from openesd.trainings.routes import Trainings
from openesd.trainings.schemas import CreateTraining
from openesd.trainings.service import TrainingService, output_checkpoint

UPLOAD_URL_TTL_S = 7 * 24 * 3600  # ESD: training input upload URLs live 7 days
# The server template's values for the keys that map (§10.1); the rest of the 100 keys do not.
DREAMBOOTH_DEFAULTS = {
    "num_train_epochs": 150,
    "use_lora": False,
    "lora_unet_rank": 4,
    "lora_learning_rate": 1e-4,
    "lora_txt_learning_rate": 5e-5,
    "resolution": 512,
    "train_batch_size": 1,
}
LEGACY_STATUS = {"Initial": "Initial", "Completed": "Complete", "Failed": "Fail", "Stopped": "Fail", "Fail": "Fail"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def legacy_status(status: str) -> str:
    """§1.5: 1.5.0 training statuses in the legacy vocabulary."""
    return LEGACY_STATUS.get(status, "Training")


class LegacyTrainings:
    def __init__(
        self, session, store: ObjectStore, service: TrainingService, models: LegacyModels, requesters: Requesters
    ):
        self.trainings = TrainingRepository(session)
        self.checkpoints = CheckpointRepository(session)
        self.datasets = DatasetRepository(session)
        self.store, self.service, self.models, self.requesters = store, service, models, requesters

    # --- POST /train, /train-api/train --------------------------------------------------------
    def create(self, body: dict) -> dict:
        train_type, model_id, params = body.get("train_type"), body.get("model_id"), body.get("params")
        if not isinstance(train_type, str) or not isinstance(model_id, str) or not isinstance(params, dict):
            raise lambda_error(500, "error", "train_type and model_id (strings) and params (an object) are required")
        config, training_params = params.get("config_params") or {}, params.get("training_params") or {}
        if not isinstance(config, dict) or not isinstance(training_params, dict):
            raise lambda_error(500, "error", "params.training_params and params.config_params must be objects")
        requester = creating_requester(self.requesters, body.get("creator"))
        model, base = self.models.base_of(model_id, self.requesters.access(requester))
        if model is None or base is None:
            raise lambda_error(500, "error", f"model with id {model_id} is not found")
        if model.job_status != "Complete":
            raise lambda_error(
                500, "error", f"model {model_id} is in {model.job_status} state, not valid to be used for train"
            )
        if not config.get("use_lora", DREAMBOOTH_DEFAULTS["use_lora"]):
            raise lambda_error(500, "error", "only LoRA training is supported: set config_params.use_lora to true")
        training_id, now = str(uuid.uuid4()), time.time()
        self._reserve_output(training_id, now, _output_name(config, model.name), requester)
        stored = {
            "training_params": {
                **training_params,
                "model_name": model.name,
                "model_type": train_type,
                "s3_model_path": self.models.checkpoints.location(base),
            },
            "config_params": config,
        }
        self.trainings.add(
            Training(
                id=training_id,
                created=now,
                job_status="Initial",
                checkpoint_id=training_id,
                # Not started: no instance type is held and no engine runs it, so neither the quota nor the
                # restart recovery of 1.5.0 counts this row (`runner_host` "" is no machine).
                instance_type="",
                sagemaker_train_name="",
                runner_host="",
                progress=None,
                params={
                    **stored,
                    "legacy": {
                        "train_type": train_type,
                        "model_id": model_id,
                        "model_name": model.name,
                        "creator": requester.username,
                    },
                },
                allowed_roles_or_users=[requester.username],
            )
        )
        job = {
            "id": training_id,
            "status": "Initial",
            "trainType": train_type,
            "params": stored,
            "input_location": self.store.uri(training_input(training_id)),
        }
        return {"statusCode": 200, "job": job, "s3PresignUrl": self._input_urls(training_id, body.get("filenames"))}

    def _reserve_output(self, training_id: str, now: float, output: str, requester) -> None:
        try:
            self.checkpoints.add(output_checkpoint(training_id, now, output, requester))
        except NameTaken as taken:
            raise lambda_error(500, "error", already_exists(taken.name).message) from None

    def _input_urls(self, training_id: str, filenames: object) -> dict | None:
        """§10.4: accepted and signed, but the training does not read them."""
        if not filenames:
            return None
        if not isinstance(filenames, list) or not all(isinstance(f, str) for f in filenames):
            raise lambda_error(500, "error", "filenames must be a list of file names")
        folder = training_input(training_id)
        try:
            names = [check_file_name(f) for f in filenames]
        except OpenESDError as error:
            raise lambda_error(500, "error", error.message) from None
        return {n: self.store.signed_url(f"{folder}/{n}", "PUT", UPLOAD_URL_TTL_S) for n in names}

    # --- PUT /train ---------------------------------------------------------------------------
    def start(self, body: dict, access: Access) -> tuple[dict, TrainingSpec | None]:
        """The answer, and the spec to submit once committed (None: nothing to start). It runs as its creator."""
        training_id, status = body.get("train_job_id"), body.get("status")
        if status != "Training":
            return {"statusCode": 200, "msg": f"not implemented for train job status {status}"}, None
        training = self.trainings.get_for_update(training_id) if isinstance(training_id, str) else None
        if training is None or not access.can_see(training):
            raise lambda_error(500, "error", f"no such train job with id({training_id})")
        try:
            access.check_change(training)
        except Forbidden as error:  # someone else's training (strict mode)
            raise lambda_error(403, "error", error.message) from None
        legacy = training.params.get("legacy")
        if training.job_status != "Initial" or not legacy:
            return {"statusCode": 200, "job": self._job(training)}, None
        request = self._translate(training)
        prompt = _first_concept(training.params["config_params"]).get("instance_prompt") or ""
        requester = self.requesters.auth.principal_for(legacy["creator"])
        try:  # the stored row and its output checkpoint become the 1.5.0 training (undone with the request)
            _, spec = self.service.create(requester, request, reserved=training)
        except OpenESDError as error:
            raise lambda_error(500, "error", error.message) from None
        training.params = {**training.params, "legacy": legacy}
        spec.dataset_prefix = self._kohya_dataset(request.params["training_params"]["dataset"], training_id, prompt)
        return {"statusCode": 200, "job": self._job(training)}, spec

    def _translate(self, training: Training) -> CreateTraining:
        """§10.4's table: the stored legacy body as a 1.5.0 `POST /trainings` request."""
        stored = training.params
        tp, config = stored["training_params"], {**DREAMBOOTH_DEFAULTS, **stored["config_params"]}
        base = self.models.base_of(stored["legacy"]["model_id"], Access())[1]  # checked when it was created
        if base is None or not base.names:
            raise lambda_error(500, "error", "Model not found")
        epochs, rank = _number(config, "num_train_epochs", int), _number(config, "lora_unet_rank", int)
        resolution = _number(config, "resolution", int)
        arguments = {
            "max_train_epochs": epochs,
            "network_dim": rank,
            "network_alpha": rank,
            "unet_lr": _number(config, "lora_learning_rate", float),
            "text_encoder_lr": _number(config, "lora_txt_learning_rate", float),
            "resolution": f"{resolution},{resolution}",
            "train_batch_size": _number(config, "train_batch_size", int),
        }
        output = _output_name(stored["config_params"], stored["legacy"]["model_name"])
        saving = {"output_name": output.removesuffix(".safetensors"), "save_every_n_epochs": epochs}
        params = {
            "training_params": {
                "model": base.names[0],
                "dataset": _dataset_name(tp, config),
                "fm_type": tp.get("fm_type") or self._fm_type(base),
                "training_instance_type": tp.get("training_instance_type") or "",
            },
            "config_params": {"saving_arguments": saving, "training_arguments": arguments},
        }
        return CreateTraining(lora_train_type="kohya", params=params)

    def _fm_type(self, base: Checkpoint) -> str:
        """`sd_xl` when the base file's safetensors header holds SDXL's second text encoder."""
        try:
            with self.store.open(checkpoint_file(base.checkpoint_type, base.id, base.names[0])) as stream:
                (length,) = struct.unpack("<Q", stream.read(8))
                header = json.loads(stream.read(length)) if length < 100 * 1024 * 1024 else {}
        except (OSError, ValueError, struct.error):
            return "sd_1_5"
        sdxl = any(k.startswith("conditioner.embedders.1.") for k in header) if isinstance(header, dict) else False
        return "sd_xl" if sdxl else "sd_1_5"

    def _kohya_dataset(self, name: str, training_id: str, prompt: str) -> str:
        """A plain legacy dataset laid out as one kohya folder `1_<concept>` in the training's input, each
        image without a caption file captioned with the instance prompt; a kohya dataset is used as is."""
        dataset = self.datasets.get(name)
        root = dataset_folder(name) + "/"
        if dataset is None or dataset.prefix:
            return root
        concept = re.sub(r"[^A-Za-z0-9_-]+", "_", prompt).strip("_") or name
        folder = legacy_training_concept(training_id, concept)
        keys = {item.key for item in self.datasets.items(name)}
        for key in sorted(keys):
            path = PurePosixPath(key)
            self.store.put_bytes(f"{folder}/{path.name}", self.store.get_bytes(key))
            if prompt and path.suffix.lower() in IMAGE_SUFFIXES and str(path.with_suffix(".txt")) not in keys:
                self.store.put_bytes(f"{folder}/{path.stem}.txt", prompt.encode())
        return legacy_training_dataset(training_id)

    # --- GET /trains --------------------------------------------------------------------------
    def list(self, types: list[str], statuses: list[str]) -> dict:
        rows = self.trainings.newest_first()
        if not rows and self.requesters.settings.auth_mode != "strict":  # ESD answered before its identity checks
            return {"statusCode": 200, "trainJobs": []}
        requester = list_requester(self.requesters, "400")
        access = self.requesters.access(requester)  # strict: the ownership policy; compat: ESD's owner rule
        rows = (
            access.only_visible(rows)
            if access.checked
            else [t for t in rows if visible(t.allowed_roles_or_users, requester)]
        )
        items = [_item(t) for t in rows]
        items = [
            i for i in items if (not types or i["trainType"] in types) and (not statuses or i["status"] in statuses)
        ]
        return {"statusCode": 200, "trainJobs": items}

    def _job(self, training: Training) -> dict:
        return {
            "id": training.id,
            "status": legacy_status(training.job_status),
            "created": float(training.created),
            "trainType": _train_type(training),
            "params": training.params,
            "input_location": self.store.uri(training_input(training.id)),
        }


def _item(training: Training) -> dict:
    legacy = training.params.get("legacy") or {}
    name = legacy.get("model_name") or training.params.get("training_params", {}).get("model_name") or "not_applied"
    return {
        "id": training.id,
        "modelName": name,
        "status": legacy_status(training.job_status),
        "trainType": _train_type(training),
        "created": float(training.created),
        "sagemakerTrainName": training.sagemaker_train_name or None,
    }


def _train_type(training: Training) -> str:
    return (training.params.get("legacy") or {}).get("train_type") or "Stable-diffusion"


def _output_name(config: dict, model_name: str) -> str:
    name = config.get("model_name") or model_name
    try:
        return check_file_name(f"{name}.safetensors")
    except OpenESDError as error:
        raise lambda_error(500, "error", f"config_params.model_name: {error.message}") from None


def _first_concept(config: dict) -> dict:
    concepts = config.get("concepts_list")
    return concepts[0] if isinstance(concepts, list) and concepts and isinstance(concepts[0], dict) else {}


def _dataset_name(training_params: dict, config: dict) -> str:
    """`…/dataset/<name>[/…]` of data_tar_list[0], else of concepts_list[0].instance_data_dir."""
    tars = training_params.get("data_tar_list")
    first_tar = tars[0] if isinstance(tars, list) and tars else None
    reference = first_tar or _first_concept(config).get("instance_data_dir")
    parts = str(reference or "").strip("/").split("/")
    if "dataset" not in parts[:-1]:
        raise lambda_error(
            500,
            "error",
            "Missing training_params.data_tar_list: give the dataset as s3://<bucket>/dataset/<dataset_name>",
        )
    return parts[parts.index("dataset") + 1]


def _number(config: dict, key: str, kind: type) -> Any:
    try:
        value = kind(config[key])
    except (TypeError, ValueError):
        raise lambda_error(500, "error", f"config_params.{key} must be a number, got {config[key]!r}") from None
    if value <= 0:
        raise lambda_error(500, "error", f"config_params.{key} must be greater than 0, got {config[key]!r}")
    return value


def get_legacy_trainings(
    session: SessionDep, store: StoreDep, service: Trainings, models: LegacyModelsDep, requesters: RequestersDep
) -> LegacyTrainings:
    return LegacyTrainings(session, store, service, models, requesters)


LegacyTrainingsDep = Annotated[LegacyTrainings, Depends(get_legacy_trainings)]
