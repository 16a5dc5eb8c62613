"""The composition root: the app assembly and the runtime, above every domain (the domains import `api/`,
the HTTP kit)."""
