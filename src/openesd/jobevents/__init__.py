"""Live job events: stored in `job_events` with the state change they report, streamed as Server-Sent Events."""
