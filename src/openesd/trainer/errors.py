"""Errors a user can fix in a training request: bad dataset, bad configuration value, wrong base model."""

from __future__ import annotations

from openesd.errors import BadRequest


class TrainingError(BadRequest):
    """A training job that cannot run as asked; the message names the offending value."""

    code = "training_error"
