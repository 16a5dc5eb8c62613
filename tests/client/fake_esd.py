"""A small in-memory ESD for the routes not served yet (§7–§10), as an httpx.MockTransport.

Answers are the spec's shapes (esd-api.md), so the SDK's parsing is checked against the contract;
the end-to-end tests against the real server replace these as those routes land.
"""

from __future__ import annotations

import json
import uuid

import httpx


def envelope(status: int, data=None, message: str | None = None) -> httpx.Response:
    body: dict = {"statusCode": status}
    if data:
        body["data"] = data
    if message:
        body["message"] = message
    return httpx.Response(status, json=body)


class FakeESD:
    def __init__(self):
        self.requests: list[httpx.Request] = []
        self.endpoints: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.objects: dict[str, bytes] = {}
        self.datasets: dict[str, dict] = {}
        self.trainings: dict[str, dict] = {}
        self.polls_until_done = 2
        self.start_answer: int | None = None  # e.g. 504 for a real-time start that times out
        self.fail_jobs = False

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.startswith("/objects/"):
            return self.object(request, path)
        assert path.startswith("/prod/"), path
        if request.headers.get("x-api-key") != "key":
            return httpx.Response(403, json={"message": "Forbidden"})
        parts = path.split("/")[2:]
        body = json.loads(request.content) if request.content else None
        route = getattr(self, f"{request.method.lower()}_{parts[0]}", None)
        if route is None:
            return httpx.Response(403, json={"message": "Missing Authentication Token"})
        return route(parts[1:], body, request)

    def object(self, request, path):
        if request.method == "PUT":
            self.objects[path] = request.content
            return httpx.Response(200, headers={"ETag": '"etag"'})
        if path not in self.objects:
            return httpx.Response(404, text="no such object")
        return httpx.Response(200, content=self.objects[path])

    # -- endpoints ------------------------------------------------------------------------
    def post_endpoints(self, _, body, request):
        name = f"esd-{body['endpoint_type'].lower()}-{body.get('endpoint_name') or 'abc1234'}"
        if name in self.endpoints:
            return envelope(400, message="Cannot create already existing model")
        record = {
            "EndpointDeploymentJobId": str(uuid.uuid4()),
            "endpoint_name": name,
            "endpoint_status": "Creating",
            "endpoint_type": body["endpoint_type"],
            "instance_type": body["instance_type"],
            "current_instance_count": "0",
            "owner_group_or_role": body["assign_to_roles"],
            "error": None,
            "polls": 0,
        }
        self.endpoints[name] = record
        return envelope(202, record, f"Endpoint deployment started: {name}")

    def get_endpoints(self, _, body, request):
        for record in self.endpoints.values():
            record["polls"] += 1
            if record["polls"] > self.polls_until_done and record["endpoint_status"] == "Creating":
                record["endpoint_status"] = "InService"
        # Two pages, the first short, as ESD's cursor lists may be.
        items = list(self.endpoints.values())
        if "exclusive_start_key" not in request.url.params:
            return envelope(200, {"endpoints": items[:1], "last_evaluated_key": "page2" if items[1:] else None})
        return envelope(200, {"endpoints": items[1:], "last_evaluated_key": None})

    def delete_endpoints(self, _, body, request):
        for name in body["endpoint_name_list"]:
            self.endpoints.pop(name, None)
        return httpx.Response(204)

    # -- inferences -----------------------------------------------------------------------
    def post_inferences(self, _, body, request):
        job_id = str(uuid.uuid4())
        job = {
            "InferenceJobId": job_id,
            "taskType": body["task_type"],
            "inference_type": body["inference_type"],
            "status": "created",
            "polls": 0,
            "models": body["models"],
            "payload": body.get("payload_string"),
        }
        self.jobs[job_id] = job
        if body.get("payload_string") is not None:
            return self.put_inferences([job_id, "start"], None, request)
        upload = f"http://testserver/objects/{job_id}/api_param.json"
        return envelope(
            201,
            {"inference": {"id": job_id, "type": body["task_type"], "api_params_s3_upload_url": upload, "models": []}},
            "Created",
        )

    def put_inferences(self, parts, body, request):
        job = self.jobs[parts[0]]
        job["status"] = "inprogress"
        if job["payload"] is None:
            job["payload"] = self.objects[f"/objects/{parts[0]}/api_param.json"].decode()
        if self.start_answer == 504:
            return httpx.Response(504, json={"message": "Endpoint request timed out"})
        return envelope(202, {"inference": {"inference_id": parts[0], "status": "inprogress"}}, "Accepted")

    def get_inferences(self, parts, body, request):
        job = self.jobs.get(parts[0]) if parts else None
        if job is None:
            return envelope(404, message=f"inference with id {parts[0]} not found")
        if parts[1:] == ["events"]:  # ESD has no event stream: the SDK polls, as it does with an ESD server
            return envelope(404, message="Not Found")
        job["polls"] += 1
        view = {k: v for k, v in job.items() if k not in ("polls", "models", "payload")}
        view["img_presigned_urls"] = []
        if job["polls"] <= self.polls_until_done:
            view["progress"] = {"phase": "sampling", "step": job["polls"], "total_steps": 4, "eta_seconds": 1.0}
        elif self.fail_jobs:
            view.update(status="failed", sagemakerRaw="Sampler 'Nope' is not one of: Euler, DDIM")
        else:
            self.objects[f"/objects/out/{job['InferenceJobId']}/image_0.png"] = b"\x89PNG fake image"
            view.update(
                status="succeed",
                image_names=["image_0.png"],
                img_presigned_urls=[f"http://testserver/objects/out/{job['InferenceJobId']}/image_0.png"],
            )
        return envelope(200, view)

    # -- datasets -------------------------------------------------------------------------
    def post_datasets(self, _, body, request):
        name = body["dataset_name"]
        dataset = self.datasets.setdefault(name, {"files": {}, "status": "Initialed"})
        urls = {}
        for item in body["content"]:
            key = f"/objects/dataset/{name}/{body['prefix']}/{item['filename']}"
            dataset["files"][key] = item["type"]
            urls[item["filename"]] = f"http://testserver{key}"
        return envelope(201, {"datasetName": name, "s3PresignUrl": urls}, "Created")

    def put_datasets(self, parts, body, request):
        self.datasets[parts[0]]["status"] = body["status"]
        return envelope(200, {"datasetName": parts[0], "status": body["status"]}, "OK")

    # -- trainings ------------------------------------------------------------------------
    def post_trainings(self, _, body, request):
        training_id = str(uuid.uuid4())
        self.trainings[training_id] = {
            "id": training_id,
            "job_status": "Training",
            "params": body["params"],
            "polls": 0,
        }
        return envelope(201, {"id": training_id, "status": "Training", "params": body["params"]}, "Created")

    def get_trainings(self, parts, body, request):
        if parts[1:] == ["events"]:  # no event stream, as on an ESD server: the SDK polls
            return envelope(404, message="Not Found")
        training = self.trainings[parts[0]]
        training["polls"] += 1
        view = {k: v for k, v in training.items() if k != "polls"}
        if training["job_status"] == "Training" and training["polls"] > self.polls_until_done:
            training["job_status"] = view["job_status"] = "Completed"
        else:
            view["progress"] = {"step": training["polls"], "total_steps": 3, "epoch": 1, "loss": 0.25}
        return envelope(200, view)

    def put_trainings(self, parts, body, request):
        self.trainings[parts[0]]["job_status"] = "Stopped"
        return envelope(200, {"id": parts[0], "status": "Stopped"})
