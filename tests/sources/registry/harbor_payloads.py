"""Harbor's replication payloads, replayed by the tests; each names where it comes from.

DOCS: Harbor's documentation, "Configure Webhook Notifications", section Payload Format
(https://goharbor.io/docs/2.8.0/working-with-projects/project-configuration/configure-webhooks),
as published (a pull-mode replication from Docker Hub into the local Harbor).
SOURCE: goharbor/harbor at c50c7ddd6e: the payload ``constructReplicationPayload`` builds in
src/controller/event/handler/webhook/artifact/replication.go from the model in
src/controller/event/model/event.go (``execution_id``/``task_id`` since #21614, 2.13;
``references`` since #19433), one event per task status change
(src/controller/event/handler/init.go: RegisterTaskStatusChangePostFunc). API: the
``ReplicationExecution`` definition of api/v2.0/swagger.yaml and ``convertExecution`` in
src/server/v2.0/handler/replication.go (statuses InProgress/Succeed/Failed/Stopped, triggers
manual/scheduled/event_based, Go's zero time as a running execution's end_time).
"""

from __future__ import annotations

# DOCS, "Replication status changed", Default
DOC_DEFAULT_SUCCESS = {
    "type": "REPLICATION",
    "occur_at": 1680501904,
    "operator": "MANUAL",
    "event_data": {"replication": {
        "harbor_hostname": "localhost", "job_status": "Success", "artifact_type": "image",
        "override_mode": True, "trigger_type": "MANUAL", "policy_creator": "admin",
        "execution_timestamp": 1680501881,
        "src_resource": {"registry_name": "hub", "registry_type": "docker-hub",
                         "endpoint": "https://hub.docker.com", "namespace": "library"},
        "dest_resource": {"registry_type": "harbor", "endpoint": "http://localhost",
                          "namespace": "harbor"},
        "successful_artifact": [{"type": "image", "status": "Success",
                                 "name_tag": "alpine [1 item(s) in total]"}],
    }},
}
# DOCS, "Replication status changed", CloudEvents
DOC_CLOUD_SUCCESS = {
    "specversion": "1.0", "id": "e3005250-ffa8-4a10-af92-91fe25cca22c",
    "requestid": "0d896c4d-353a-422e-b43b-5067d98ec2a3",
    "source": "/projects/2/webhook/policies/15", "type": "harbor.replication.status.changed",
    "datacontenttype": "application/json", "time": "2023-04-03T06:05:04Z",
    "data": {"replication": DOC_DEFAULT_SUCCESS["event_data"]["replication"]},
    "operator": "MANUAL",
}
# DOCS, the CloudEvents example printed under "Artifact pushed": a Running task
DOC_CLOUD_RUNNING = {
    "specversion": "1.0", "id": "66e18103-09c1-41f6-982f-37df223f3eeb",
    "requestid": "51c0b694-0168-4f3c-b0db-282565455d7b",
    "source": "/projects/2/webhook/policies/15", "type": "harbor.replication.status.changed",
    "datacontenttype": "application/json", "time": "2023-04-03T06:04:46Z",
    "data": {"replication": {
        **{k: v for k, v in DOC_DEFAULT_SUCCESS["event_data"]["replication"].items()
           if k != "successful_artifact"},
        "job_status": "Running"}},
    "operator": "MANUAL",
}


def source_task(task_id: int, status: str, name_tag: str, execution_id: int | None = 42,
                occur_at: int = 1717000100) -> dict:
    """SOURCE: a push-mode (local Harbor -> edge) task event in the Default format; the edge
    registry's name is not ASCII. ``execution_id=None`` drops the 2.13 fields, as before."""
    replication = {
        "harbor_hostname": "harbor.example.com", "job_status": status,
        "artifact_type": "image", "authentication_type": "basic", "override_mode": True,
        "trigger_type": "SCHEDULE", "policy_creator": "admin",
        "execution_timestamp": 1717000000,
        "src_resource": {"registry_type": "harbor", "endpoint": "https://harbor.example.com",
                         "namespace": "library"},
        "dest_resource": {"registry_name": "edge-東京", "registry_type": "harbor",
                          "endpoint": "https://edge-tokyo.example.com", "namespace": "library"},
    }
    artifact = {"type": "image", "status": status, "name_tag": name_tag,
                "references": [name_tag.rpartition(":")[2]]}
    if status == "Success":
        replication["successful_artifact"] = [artifact]
    elif status == "Error":
        replication["failed_artifact"] = [{**artifact, "fail_reason": "connection refused"}]
    if execution_id is not None:
        replication |= {"execution_id": execution_id, "task_id": task_id}
    return {"type": "REPLICATION", "occur_at": occur_at, "operator": "scheduler",
            "event_data": {"replication": replication}}


def api_execution(execution_id: int, status: str, end_time: str, *, policy_id: int = 1,
                  trigger: str = "scheduled", succeed: int = 0, failed: int = 0) -> dict:
    """API: one item of ``GET /api/v2.0/replication/executions``."""
    return {"id": execution_id, "policy_id": policy_id, "status": status, "status_text": "",
            "trigger": trigger, "start_time": "2024-05-29T16:00:00.000Z", "end_time": end_time,
            "total": succeed + failed, "failed": failed, "succeed": succeed,
            "in_progress": 0, "stopped": 0}


RUNNING_END = "0001-01-01T00:00:00.000Z"  # API: Go's zero time while an execution runs
# API: GET /api/v2.0/replication/policies/{id} (ReplicationPolicy, the fields read)
POLICIES = {
    1: {"id": 1, "name": "to-edge", "src_registry": None,
        "dest_registry": {"id": 3, "name": "edge-東京", "url": "https://edge-tokyo.example.com"}},
    # pull-mode (a remote into this Harbor): the API lists it whether a webhook came or not
    2: {"id": 2, "name": "from-hub", "dest_registry": None,
        "src_registry": {"id": 4, "name": "hub", "url": "https://hub.docker.com"}},
}
