"""Storage errors, each carrying the HTTP status a client should see, and the boto3 translation table."""

from __future__ import annotations

from openesd.errors import BadRequest, Forbidden, NotFound, OpenESDError


class StorageError(OpenESDError):
    """The object store failed in a way that is not the client's mistake."""

    status_code = 502
    code = "storage"


class StorageUnavailable(StorageError):
    status_code = 503
    code = "storage_unavailable"


class ObjectNotFound(StorageError, NotFound):
    status_code = 404
    code = "object_not_found"


class InvalidKey(StorageError, BadRequest):
    status_code = 400
    code = "invalid_key"


class UploadNotFound(StorageError, NotFound):
    status_code = 404
    code = "upload_not_found"


class BadPart(StorageError, BadRequest):
    """A multipart completion named a part that is missing, duplicated or has another ETag."""

    status_code = 400
    code = "bad_part"


class SignatureError(StorageError, Forbidden):
    """A signed URL that is tampered with, expired, or used for another key or method."""

    status_code = 403
    code = "bad_signature"


# S3 error code -> (error class, message template); `{key}` and `{bucket}` are filled in.
S3_ERRORS: dict[str, tuple[type[StorageError], str]] = {
    "NoSuchKey": (ObjectNotFound, "object {key} not found"),
    "404": (ObjectNotFound, "object {key} not found"),
    "NotFound": (ObjectNotFound, "object {key} not found"),
    "NoSuchUpload": (UploadNotFound, "no multipart upload in progress for {key} with that upload id"),
    "InvalidPart": (BadPart, "a part of {key} was not uploaded or its ETag does not match"),
    "InvalidPartOrder": (BadPart, "the parts of {key} are not in ascending part-number order"),
    "EntityTooSmall": (BadPart, "a part of {key} other than the last is smaller than 5 MiB"),
    "MalformedXML": (BadPart, "no parts were given to complete {key}"),
    "NoSuchBucket": (StorageError, "S3 bucket {bucket} does not exist"),
    "AccessDenied": (StorageError, "S3 refused access to bucket {bucket}: check the S3 credentials"),
    "InvalidAccessKeyId": (StorageError, "S3 does not know the configured access key id"),
    "SignatureDoesNotMatch": (StorageError, "S3 rejected the configured secret access key"),
}
