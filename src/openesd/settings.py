"""Settings: one class, read from `OPENESD_*` environment variables (and `.env`), built once."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPENESD_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".openesd")
    # Deployment API keys (`x-api-key`), comma-separated. Empty: one is generated on first start
    # and kept in `<data_dir>/api_key`.
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Key that encrypts users' passwords (Fernet). Empty: one kept in <data_dir>/password.key. Set the
    # same value on every API replica of a cluster.
    password_key: str | None = None

    database_url: str | None = None  # default: sqlite:///<data_dir>/openesd.db
    object_store_url: str | None = None  # default: file://<data_dir>/objects
    s3_endpoint_url: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_region: str = "us-east-1"
    engine_url: str = "local"

    host: str = "127.0.0.1"
    port: int = 8080
    # Absolute base URL clients reach this server at; signed object URLs are built on it.
    public_url: str | None = None
    stage_prefix: str = "/prod"
    # The AUTOMATIC1111 WebUI's own API under /sdapi/v1 (sdapi/): off, its paths answer 404.
    sdapi_enabled: bool = True

    auth_mode: Literal["compat", "strict"] = "compat"
    # A request without the API key passes the gateway when it carries a valid personal token, and the password
    # login (`POST /tokens`) needs none: how the console and WebUI clients get in without the deployment key.
    # False: ESD's gateway, the key on every request.
    gateway_accepts_tokens: bool = True
    # The web console at /console (the same public API, served from files inside the package).
    console_enabled: bool = True
    # `POST /users {"initial": true}` creates an admin with only the API key, as ESD does.
    bootstrap_enabled: bool = True
    # Password login throttle in strict mode (decisions.md, Gateway and identity): this many wrong passwords
    # within the window lock the user name, or the client address, for the lockout, which doubles with each
    # further failure up to the window; every API replica sees the same count (kept in the database).
    login_max_failures: int = Field(5, ge=1)
    login_max_failures_per_address: int = Field(20, ge=1)
    login_window_s: float = Field(900.0, gt=0)
    login_lockout_s: float = Field(60.0, gt=0)

    # Capacity table overrides: instance type -> instances (decisions.md, Endpoints).
    instance_quotas: dict[str, int] = Field(default_factory=dict)
    instances_per_gpu: int = 1
    cpu_instances_per_type: int = 8

    signed_url_ttl_s: int = 3600

    # Request bodies larger than this are refused (413) before they are read (api/inputs.py); the
    # payload limit is for the routes that carry WebUI payloads with base64 images (esd-api.md §14).
    # Signed-URL uploads stream to disk and are not capped.
    max_body_bytes: int = Field(1024**2, ge=1024)
    max_payload_body_bytes: int = Field(64 * 1024**2, ge=1024)

    # Local engine (decisions.md, Endpoints and Jobs).
    endpoint_idle_s: float = 900.0  # autoscaling endpoints scale in to their minimum after this idle time
    scale_out_backlog: float = 3.0  # queued + running jobs per instance above which one more starts
    worker_start_timeout_s: float = 600.0
    worker_start_attempts: int = 2  # failed starts before a never-ready endpoint is marked Failed
    # A new instance compiles rembg's alpha matting (pymatting's numba code: a minute on a fresh install) in
    # the background, so that the first real-time rembg job does not wait behind the compiler.
    warm_rembg: bool = True
    job_deadline_s: float = 3600.0  # the watchdog fails a job running longer than this
    realtime_timeout_s: float = 600.0  # a real-time start answers 504 after this, the job goes on
    job_lease_s: float = 60.0  # a replica's hold on the jobs it dispatched, renewed every third of it
    # Batching across jobs (decisions.md, Batching): an instance runs up to this many compatible queued txt2img
    # jobs (same model, LoRAs, size, sampler, steps) as one UNet batch; 1 switches it off. The latent pixel cap
    # (width/8 x height/8 x batch_size per job, its hires size when enabled) keeps a batch within the device's
    # memory: 32768 is 8 SD 1.5 images of 512x512 or 2 SDXL images of 1024x1024. The wait holds the first
    # job this long for compatible ones to arrive (0: take what is queued already).
    batch_max_jobs: int = Field(8, ge=1, le=64)
    batch_max_latent_pixels: int = Field(32768, ge=1)
    batch_wait_s: float = Field(0.0, ge=0.0, le=10.0)
    # Live previews (OpenESD's `preview_every` of POST /inferences): a preview every N model calls for jobs
    # that do not say; 0 (no previews) keeps what ESD clients see unchanged.
    preview_every: int = Field(0, ge=0, le=1000)
    job_events_keep_s: float = 86400.0  # live events older than this are pruned (a stream replays no further)

    # GPU fast path of the workers (docs/performance.md; generation/models/fastpath.py): each piece on its own.
    weights_dtype_cuda: Literal["fp16", "bf16", "fp32"] = "fp16"
    weights_dtype_cpu: Literal["fp32", "bf16"] = "fp32"
    sdxl_vae_fp32: bool = True  # with fp16 weights, SDXL's VAE stays fp32 (it overflows in fp16)
    channels_last: bool = False
    attention: Literal["sdpa", "classic"] = "sdpa"  # classic: diffusers' pre-SDPA attention, for comparison
    fuse_qkv: bool = False  # jobs with LoRAs run unfused (peft's LoRA sits on the separate projections)
    # torch.compile of the UNet and VAE decoder, cached under <data_dir>/cache/inductor; such a worker refuses LoRAs.
    compile_mode: Literal["off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "off"
    vae_tiling_pixels: int = Field(0, ge=0)  # tiled+sliced VAE above width*height*batch_size; 0: only when asked
    # FLUX.1 / SD 3.5 memory (generation/quant, docs/models.md): the transformer's storage (auto: as its file
    # holds it; fp8: e4m3 weights, computed in the weights dtype; full: an fp8 file widened) and where the
    # text encoders live (none: on the device; cpu: encode on the CPU; swap: on the device for the encode only).
    flow_transformer_weights: Literal["auto", "fp8", "full"] = "auto"
    text_encoder_offload: Literal["none", "cpu", "swap"] = "none"

    # Checkpoint import by URL: only public addresses unless this is set (tests, trusted LANs).
    allow_private_url_imports: bool = False
    max_import_bytes: int = 50 * 1024**3
    import_timeout_s: float = 30.0

    # Webhooks (decisions.md, Jobs): the same address rules as URL imports unless this is set (closed LANs).
    allow_private_webhooks: bool = False
    webhook_timeout_s: float = Field(10.0, gt=0)  # per POST; a slow receiver is retried later
    webhook_poll_s: float = Field(1.0, ge=0)  # how often a replica looks for due deliveries; 0: never (tests)

    # Legacy routes of the 2023-07-05 API (esd-legacy-api.md §3.4).
    legacy_enabled: bool = True
    legacy_mount: str = "/legacy"
    legacy_on_primary_mount: bool = True
    legacy_mirror_list_keys: bool = False
    legacy_default_user: str = "api"  # requester when a legacy call names none; empty: 401
    legacy_upload_wait_seconds: float = 25.0

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("stage_prefix", "legacy_mount")
    @classmethod
    def _normalise_prefix(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        return value if not value or value.startswith("/") else f"/{value}"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'openesd.db').resolve()}"

    @property
    def resolved_object_store_url(self) -> str:
        return self.object_store_url or (self.data_dir / "objects").resolve().as_uri()

    @property
    def base_url(self) -> str:
        """Where clients reach the server, without the stage prefix."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@lru_cache
def get_settings() -> Settings:
    return Settings()
