"""Request bodies and gateway models of the trainings routes (esd-api.md §10)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from openesd.api.validation import array, obj, string
from openesd.endpoints.quota import RUNNING_TRAININGS
from openesd.webhooks.schemas import WEBHOOK_SCHEMA, Webhook

FM_TYPES = ("sd_1_5", "sd_xl")
# Families a LoRA can be asked for but not trained yet: the model_family a checkpoint's upload check
# recorded, and how the fm_type values users try for them start (`flux`, `flux_1`, `sd3`, `sd_3_5`).
UNTRAINABLE_FAMILIES = {"flux": "FLUX.1", "sd3": "SD 3/3.5"}
UNTRAINABLE_FM_PREFIXES = {"flux": "flux", "sd3": "sd3"}
RUNNING = RUNNING_TRAININGS  # they count against the instance quota, so endpoints/quota.py defines them
TERMINAL = ("Completed", "Failed", "Fail", "Stopped")
DEFAULT_INSTANCE_TYPE = "ml.g4dn.2xlarge"  # ESD's default when training_instance_type is empty


class CreateTraining(BaseModel):
    model_config = ConfigDict(extra="ignore")

    lora_train_type: str
    params: dict
    webhook: Webhook | None = None  # OpenESD's addition (webhooks/)


class DeleteTrainings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    training_id_list: list[str]


# The 1.5.0 gateway required model/dataset/saving_arguments/training_arguments, which rejected the
# documented shape (s3_model_path/s3_data_path, optional config_params). Both are accepted (decisions.md),
# so the gateway checks types only and the handler says `Missing <path>` for what a shape lacks.
CREATE_TRAINING_SCHEMA = obj(
    {
        "lora_train_type": string(),
        "params": obj(
            {
                "training_params": obj(
                    {
                        "training_instance_type": {"type": "string"},
                        "model": {"type": "string"},
                        "dataset": {"type": "string"},
                        "fm_type": {"type": "string"},
                        "s3_model_path": {"type": "string"},
                        "s3_data_path": {"type": "string"},
                    }
                ),
                "config_params": {"type": "object"},
            },
            required=["training_params"],
        ),
        "webhook": WEBHOOK_SCHEMA,
    },
    required=["lora_train_type", "params"],
)
DELETE_TRAININGS_SCHEMA = obj({"training_id_list": array(string(), 1, 100)}, required=["training_id_list"])
